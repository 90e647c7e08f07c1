"""Preference datasets (DPO / ORPO): streaming validation with line and field, conversion to XTuner's form.

XTuner 0.2.0's ``xtuner.dataset.preference_dataset`` trains on JSONL records
``{"prompt": [messages], "chosen": [messages], "rejected": [messages]}`` and renders
``prompt + chosen`` / ``prompt + rejected`` with the tokenizer's own chat template. Accepted here
(detected from the first record), every record becomes that form:

- ``prompt``   ``{"prompt", "chosen", "rejected"}`` — each a text or a list of ``{role, content}``
  (XTuner's own form; TRL's "standard" and "conversational" preference formats); ``system`` optional
- ``orca``     ``{"system"?, "question", "chosen", "rejected"}`` — Intel/orca_dpo_pairs
  (XTuner's ``intel_orca_dpo_map_fn``)
- ``implicit`` ``{"chosen": [messages], "rejected": [messages]}``: two whole conversations that share
  everything but the last answer (XTuner's ``orpo_dpo_mix_40k_map_fn``; Anthropic HH as messages)

Errors name the file, the line and the field; validation never writes; conversion writes a temporary
file and renames it into place only when the whole input has no error.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from core.data.datareader import ReadError, iter_records, sniff
from core.data.datasets import (CONTAINERS, ROLES, T_CANNOT_READ, T_MISMATCH, T_MISSING, T_NO_RECORDS, T_ROLE, T_TYPE, DatasetReport, as_object, type_name)

PREFERENCE_FORMATS = {
    "prompt": "prompt / chosen / rejected",
    "orca": "system / question / chosen / rejected (orca_dpo_pairs)",
    "implicit": "chosen / rejected conversations",
}

T_UNKNOWN = ("The record's keys ({keys}) match no preference format. Expected prompt / chosen / rejected "
             "(XTuner, TRL), system / question / chosen / rejected (orca_dpo_pairs) or two conversations chosen / "
             "rejected that differ only in their last answer.")
T_EMPTY = "Is empty: a preference pair needs text here."
T_SAME = "Chosen and rejected are the same answer: the pair teaches nothing. Change or remove this record."
T_PROMPT_END = "The prompt must end with a user message: the chosen and rejected answers follow it."
T_NOT_ASSISTANT = "Holds a {role!r} message: chosen and rejected hold the assistant's answer only."
T_NOT_SHARED = ("Chosen and rejected must be the same conversation up to their last message, and that message "
                "must be the assistant's answer.")
MESSAGES = [T_UNKNOWN, T_EMPTY, T_SAME, T_PROMPT_END, T_NOT_ASSISTANT, T_NOT_SHARED]

Pair = dict  # {"prompt": [messages], "chosen": [messages], "rejected": [messages]}


class PreferenceReport(DatasetReport):
    """A preference file's report: ``records`` pairs; ``canonical`` when XTuner can read the file as it is."""

    canonical: bool = True

    @property
    def label(self) -> str:
        parts = [PREFERENCE_FORMATS.get(self.format or "", "unknown format"), CONTAINERS.get(self.container or "", "")]
        return " · ".join(p for p in parts if p)

    @property
    def needs_conversion(self) -> bool:
        return not (self.canonical and self.container == "jsonl")


def detect_format(rec) -> Optional[str]:
    """The preference format of one record, or None."""
    if not isinstance(rec, dict) or "chosen" not in rec or "rejected" not in rec:
        return None
    if "prompt" in rec:
        return "prompt"
    if "question" in rec:
        return "orca"
    return "implicit"


def _messages(value, line, r: DatasetReport, name: str, fmt: str) -> Optional[list[dict]]:
    """A checked list of ``{role, content}`` (a text becomes one message of ``role`` user/assistant)."""
    ok = True
    if type(value) is not list:
        r.err("wrong_type", T_TYPE, line, name, expected="text or a list of {role, content}", got=type_name(value))
        return None
    if not value:
        r.err("empty", T_EMPTY, line, name)
        return None
    out = []
    for i, m in enumerate(value):
        where = f"{name}[{i}]"
        if type(m) is not dict:
            r.err("wrong_type", T_TYPE, line, where, expected="an object {role, content}", got=type_name(m))
            ok = False
            continue
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            if "role" not in m:
                r.err("missing_field", T_MISSING, line, f"{where}.role", format=PREFERENCE_FORMATS[fmt])
            else:
                r.err("bad_role", T_ROLE, line, f"{where}.role", role=role, allowed=", ".join(ROLES))
            ok = False
        if type(content) is not str:
            if "content" not in m:
                r.err("missing_field", T_MISSING, line, f"{where}.content", format=PREFERENCE_FORMATS[fmt])
            else:
                r.err("wrong_type", T_TYPE, line, f"{where}.content", expected="text", got=type_name(content))
            ok = False
        elif not content.strip():
            r.err("empty", T_EMPTY, line, f"{where}.content")
            ok = False
        if ok:
            out.append({"role": role, "content": content})
    return out if ok else None


def _field(value, line, r: DatasetReport, name: str, fmt: str, role: str) -> Optional[list[dict]]:
    """A text or a list of messages → messages."""
    if type(value) is str:
        if not value.strip():
            r.err("empty", T_EMPTY, line, name)
            return None
        return [{"role": role, "content": value}]
    return _messages(value, line, r, name, fmt)


def _answer(value, line, r: DatasetReport, name: str, fmt: str) -> Optional[list[dict]]:
    msgs = _field(value, line, r, name, fmt, "assistant")
    if msgs is None:
        return None
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            r.err("not_assistant", T_NOT_ASSISTANT, line, f"{name}[{i}].role", role=m["role"])
            return None
    return msgs


def _prompt_ends_with_user(prompt: list[dict], line, r: DatasetReport, name: str) -> bool:
    if prompt[-1]["role"] != "user":
        r.err("prompt_end", T_PROMPT_END, line, name)
        return False
    return True


def check_record(rec: dict, fmt: str, line, r: DatasetReport) -> Optional[Pair]:
    """One record → XTuner's pair, or None (its errors are in ``r``)."""
    missing = [k for k in {"prompt": ("prompt", "chosen", "rejected"), "orca": ("question", "chosen", "rejected"),
                           "implicit": ("chosen", "rejected")}[fmt] if k not in rec]
    for key in missing:
        r.err("missing_field", T_MISSING, line, key, format=PREFERENCE_FORMATS[fmt])
    if missing:
        return None
    if fmt == "implicit":
        chosen = _messages(rec["chosen"], line, r, "chosen", fmt)
        rejected = _messages(rec["rejected"], line, r, "rejected", fmt)
        if chosen is None or rejected is None:
            return None
        if (len(chosen) < 2 or chosen[:-1] != rejected[:-1] or chosen[-1]["role"] != "assistant"
                or rejected[-1]["role"] != "assistant"):
            r.err("not_shared", T_NOT_SHARED, line, "chosen, rejected")
            return None
        prompt, chosen, rejected = chosen[:-1], chosen[-1:], rejected[-1:]
        if not _prompt_ends_with_user(prompt, line, r, "chosen"):
            return None
    else:
        key = "prompt" if fmt == "prompt" else "question"
        prompt = _field(rec[key], line, r, key, fmt, "user")
        chosen = _answer(rec["chosen"], line, r, "chosen", fmt)
        rejected = _answer(rec["rejected"], line, r, "rejected", fmt)
        system = rec.get("system")
        if system is not None and type(system) is not str:
            r.err("wrong_type", T_TYPE, line, "system", expected="text", got=type_name(system))
            return None
        if prompt is None or chosen is None or rejected is None:
            return None
        if not _prompt_ends_with_user(prompt, line, r, key):
            return None
        if system and system.strip() and prompt[0]["role"] != "system":
            prompt = [{"role": "system", "content": system}] + prompt
    if chosen == rejected:
        r.err("same", T_SAME, line, "chosen, rejected")
        return None
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _canonical(rec: dict) -> bool:
    return set(rec) == {"prompt", "chosen", "rejected"} and all(type(rec[k]) is list for k in rec)


def _scan(path: Path, sink=None, preview_rows: int = 5) -> PreferenceReport:
    started = time.monotonic()
    report = PreferenceReport(path=path)
    try:
        report.bytes = path.stat().st_size
        report.container = sniff(path)
    except ReadError as e:
        report.err(e.code, e.text, e.line, **e.params)
        return report
    except OSError as e:
        report.err("cannot_read", T_CANNOT_READ, error=e.strerror or str(e))
        return report
    try:
        for line, rec in iter_records(path, report.container):
            if as_object(rec, line, report) is None:
                continue
            fmt = detect_format(rec)
            if report.format is None:
                if fmt is None:
                    report.err("unknown_format", T_UNKNOWN, line, keys=", ".join(sorted(rec)[:8]) or "none")
                    continue
                report.format = fmt
            elif fmt is not None and fmt != report.format:
                report.err("format_mismatch", T_MISMATCH, line, found=PREFERENCE_FORMATS[fmt],
                           expected=PREFERENCE_FORMATS[report.format])
                continue
            pair = check_record(rec, report.format, line, report)
            if pair is None:
                continue
            report.records += 1
            report.trainable += 1
            report.canonical = report.canonical and _canonical(rec)
            if len(report.preview) < preview_rows:
                report.preview.append(pair)
            if sink is not None:
                sink(pair)
    except ReadError as e:
        report.err(e.code, e.text, e.line, **e.params)
    except OSError as e:
        report.err("cannot_read", T_CANNOT_READ, error=e.strerror or str(e))
    if report.records == 0 and report.error_count == 0:
        report.err("no_records", T_NO_RECORDS)
    report.seconds = time.monotonic() - started
    return report


def validate(path: str | os.PathLike, preview_rows: int = 5) -> PreferenceReport:
    """Read the whole file and report every problem (file, line, field); writes nothing."""
    return _scan(Path(path), preview_rows=preview_rows)


@dataclass
class ConvertResult:
    report: PreferenceReport
    out_path: Optional[Path] = None
    written: int = 0


def convert(path: str | os.PathLike, out_path: str | os.PathLike) -> ConvertResult:
    """Write ``path`` as XTuner's preference JSONL to ``out_path``: all of it, only if it has no error."""
    path, out_path = Path(path), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            report = _scan(path, sink=lambda pair: out.write(json.dumps(pair, ensure_ascii=False) + "\n"),
                           preview_rows=0)
            out.flush()
            os.fsync(out.fileno())
        if not report.ok:
            Path(tmp).unlink()
            return ConvertResult(report)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ConvertResult(report, out_path, report.records)


def converted_name(path: str | os.PathLike) -> str:
    """``pairs.json`` → ``pairs.preference.jsonl``."""
    stem = Path(path).name
    for suffix in (".jsonl", ".json", ".parquet"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return f"{stem}.preference.jsonl"
