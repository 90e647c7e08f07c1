"""The Configure page's hyperparameter widgets, generated from the schema (core.train.hyperparams).

Labels, help, bounds, steps and formats all come from the schema; a setting that does not apply to
the project's method (or is not used by its objective: SFT, DPO, ORPO) is shown disabled.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from core.errors import UserError
from core.train.hyperparams import E_NOT_A_NUMBER, Hyperparams, Setting, settings
from ui.i18n import t


def label_of(s: Setting) -> str:
    return t("{label} ({unit})", label=t(s.label), unit=t(s.unit)) if s.unit else t(s.label)


def _number(box, label: str, s: Setting, value, **extra):
    """A number input bounded by the schema's inclusive bounds (exclusive ones are checked on save)."""
    cast = int if s.kind == "int" else float
    widget = {k: v for k, v in s.widget.items() if k in ("format", "step")}
    return box.number_input(label, value=cast(value), min_value=_bound(s, "ge", cast),
                            max_value=_bound(s, "le", cast), help=t(s.help), **widget, **extra)


def _bound(s: Setting, which: str, cast):
    return cast(s.bounds[which]) if which in s.bounds else None


def _widget(box, s: Setting, value, disabled: bool) -> Any:
    """The raw value the widget holds (text for the text inputs, parsed by ``parse``)."""
    label = label_of(s)
    if s.kind == "bool":
        return box.checkbox(label, value=value, help=t(s.help), disabled=disabled)
    if s.kind == "choice":
        return box.selectbox(label, s.choices, index=s.choices.index(value), help=t(s.help), disabled=disabled)
    if s.kind == "names":
        return box.text_input(label, value=", ".join(value or []), placeholder=s.widget.get("placeholder"),
                              help=t(s.help), disabled=disabled)
    if s.kind == "optional_int":
        return box.text_input(label, value="" if value is None else str(value), help=t(s.help), disabled=disabled)
    return _number(box, label, s, value, disabled=disabled)


def parse(s: Setting, raw) -> Any:
    """The setting's value from what its widget holds; ValueError for text that is not one."""
    if s.kind == "names":
        return [x.strip() for x in raw.split(",") if x.strip()] or None
    if s.kind == "optional_int":
        return int(raw) if raw.strip() else None
    if s.kind == "pair":
        return tuple(raw)
    return raw


def hyperparams_widgets(hp: Hyperparams, method: str, objective: str = "sft") -> dict[str, Any]:
    """Every setting's widget, basic ones then advanced ones (in an expander), three columns wide;
    returns {name: raw value}."""
    st.subheader(t("Basic"))
    raw = _group(st.container(), "basic", hp, method, objective)
    raw |= _group(st.expander(t("Advanced")), "advanced", hp, method, objective)
    return raw


def _group(container, group: str, hp: Hyperparams, method: str, objective: str) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    with container:
        cols, slot = st.columns(3), 0
        group_settings = [s for s in settings() if s.group == group]
        for s in [s for s in group_settings if s.kind != "bool"] + [s for s in group_settings if s.kind == "bool"]:
            value, disabled = getattr(hp, s.name), not (s.applies_to(method) and s.used_by(objective))
            if s.kind == "bool":  # a check box takes the whole width, below the columns
                raw[s.name] = _widget(st, s, value, disabled)
            elif s.kind == "pair":
                raw[s.name] = [_number(cols[(slot + i) % 3], part, s, v, disabled=disabled)
                               for i, (part, v) in enumerate(zip(s.widget["parts"], value))]
                slot += len(value)
            else:
                raw[s.name] = _widget(cols[slot % 3], s, value, disabled)
                slot += 1
    return raw


class NotANumber(UserError):
    """A text widget holds something that is not a whole number (``label``: the widget's translated label)."""

    def __init__(self, label: str):
        super().__init__(E_NOT_A_NUMBER, label=label)


def hyperparams_from(hp: Hyperparams, raw: dict[str, Any]) -> Hyperparams:
    """``hp`` updated with the widgets' values; NotANumber, or pydantic's ValidationError for a value
    out of the schema's bounds."""
    values = {}
    for s in settings():
        if s.name in raw:
            try:
                values[s.name] = parse(s, raw[s.name])
            except ValueError:
                raise NotANumber(label_of(s)) from None
    return Hyperparams(**(hp.model_dump() | values))
