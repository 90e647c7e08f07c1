"""The one way a page shows an error: translated message on top, raw text only in a "Details" block.

``show_error(e)`` takes a ``core.errors.UserError`` (or one stored as a dict by a job), a pydantic
``ValidationError``, an ``OSError`` or any other exception; only the first is a message written for a
person, the others get a short translated summary and their own words under "Details".
"""
from __future__ import annotations

from typing import Literal, Union

import streamlit as st
from pydantic import ValidationError

from core.errors import UserError
from core.fsutil import DiskFull, is_disk_full
from ui.i18n import state_label, t


def describe(err: Union[BaseException, dict]) -> tuple[str, str]:
    """(the translated message, the raw details or "")."""
    if isinstance(err, dict):
        err = UserError.from_dict(err)
    if isinstance(err, UserError):
        return t(err.text, **err.params), err.details
    if isinstance(err, ValidationError):
        fields = ", ".join(".".join(map(str, e["loc"])) for e in err.errors()) or "—"
        return t("Some values are not valid: {fields}.", fields=fields), str(err)
    if isinstance(err, DiskFull):
        return t(err.text, **err.params), ""
    if isinstance(err, OSError) and is_disk_full(err):
        return (t("The disk is full ({path}): free some space and try again.", path=err.filename or "—"),
                f"{type(err).__name__}: {err}")
    if isinstance(err, FileNotFoundError):
        return t("Not found: {path}.", path=err.filename or "—"), f"{type(err).__name__}: {err}"
    if isinstance(err, OSError):
        return (t("Reading or writing {path} failed (see the details).", path=err.filename or "—"),
                f"{type(err).__name__}: {err}")
    return t("Unexpected error ({kind}): see the details.", kind=type(err).__name__), f"{type(err).__name__}: {err}"


def show_error(err: Union[BaseException, dict], lead: str = "",
               level: Literal["error", "warning", "info"] = "error") -> None:
    """Show ``err``; ``lead``: an already translated sentence put before it ("Cannot load the model:")."""
    text, details = describe(err)
    sep = " " if lead[-1:].isascii() else ""  # "Cannot load the model: …" but "无法加载模型：…"
    getattr(st, level)(f"{lead}{sep}{text}" if lead else text)
    if details:
        with st.expander(t("Details")):
            st.code(details, language=None)


def show_job_end(job, what: str, level: Literal["error", "warning", "info"] = "error") -> None:
    """A job that failed or was stopped: "{what}: failed." translated, its reason (the job runner's own
    words) under "Details"; a job that stored a ``UserError`` (``job.meta["error"]``) shows that instead."""
    stored = (job.meta or {}).get("error")
    if stored:
        show_error(stored, lead=t("{what}:", what=what), level=level)
        return
    getattr(st, level)(t("{what}: {state}. See the details and the log.", what=what, state=state_label(job.state)))
    details = "\n".join(x for x in (job.reason, getattr(job, "escalation", None)) if x)
    if details:
        with st.expander(t("Details")):
            st.code(details, language=None)
