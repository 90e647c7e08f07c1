"""Dataset checks: stream a whole file and report problems with file, line and field.

Formats: OpenAI ``messages`` as JSONL or as a JSON array (the seeds' ``personal_assistant.json``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

ROLES = {"system", "user", "assistant"}


@dataclass
class Issue:
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}, {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


@dataclass
class DatasetReport:
    path: Path
    format: str | None = None
    records: int = 0
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    preview: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.records > 0 and not self.errors


def _check_record(rec, line: int | None, report: DatasetReport) -> None:
    if not isinstance(rec, dict) or "messages" not in rec:
        report.errors.append(Issue(line, "messages", "each record must be an object with a 'messages' list"))
        return
    msgs = rec["messages"]
    if not isinstance(msgs, list) or not msgs:
        report.errors.append(Issue(line, "messages", "must be a non-empty list of {role, content}"))
        return
    for i, m in enumerate(msgs):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            report.errors.append(Issue(line, where, "must be an object with 'role' and 'content'"))
            continue
        if m.get("role") not in ROLES:
            report.errors.append(Issue(line, f"{where}.role", f"{m.get('role')!r} is not one of system, user, assistant"))
        if not isinstance(m.get("content"), str):
            report.errors.append(Issue(line, f"{where}.content", "must be a string"))
        elif not m["content"].strip():
            report.warnings.append(Issue(line, f"{where}.content", "is empty"))
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in msgs):
        report.warnings.append(Issue(line, "messages", "has no assistant turn: nothing to learn from this record"))


def validate(path: str | Path, max_issues: int = 50, preview_rows: int = 5) -> DatasetReport:
    path = Path(path)
    report = DatasetReport(path=path)
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        report.errors.append(Issue(None, "", f"cannot read {path}: {e.strerror or e}"))
        return report
    if b"\x00" in head:
        report.errors.append(Issue(None, "", "this is a binary file, not JSON text"))
        return report
    first = head.lstrip()[:1]
    try:
        if first == b"[":
            report.format = "openai-json"
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            for i, rec in enumerate(data, start=1):
                _check_record(rec, None, report)
                if len(report.preview) < preview_rows and isinstance(rec, dict):
                    report.preview.append(rec)
                report.records += 1
        else:
            report.format = "openai-jsonl"
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except ValueError as e:
                        report.errors.append(Issue(lineno, "", f"not valid JSON ({e.msg} at column {e.colno})"))
                    else:
                        _check_record(rec, lineno, report)
                        if len(report.preview) < preview_rows and isinstance(rec, dict):
                            report.preview.append(rec)
                        report.records += 1
                    if len(report.errors) >= max_issues:
                        break
    except UnicodeDecodeError as e:
        report.errors.append(Issue(None, "", f"not UTF-8 text (byte {e.start}): save the file as UTF-8"))
    except ValueError as e:
        report.errors.append(Issue(None, "", f"not valid JSON: {e}"))
    if report.records == 0 and not report.errors:
        report.errors.append(Issue(None, "", "the file holds no records"))
    return report


def preview_records(path: str | Path, n: int = 3, max_array_bytes: int = 20 * 1024 * 1024) -> list[dict]:
    """The first ``n`` records, reading as little of the file as possible."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            first = f.read(1)
            while first and first.isspace():
                first = f.read(1)
            if first == "[":
                if path.stat().st_size > max_array_bytes:
                    return []
                f.seek(0)
                data = json.load(f)
                return [r for r in data[:n] if isinstance(r, dict)]
            f.seek(0)
            out = []
            for line in f:
                if line.strip():
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(rec, dict):
                        out.append(rec)
                if len(out) >= n:
                    break
            return out
    except (OSError, UnicodeDecodeError, ValueError):
        return []
