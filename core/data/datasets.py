"""Datasets: whole-file streaming validation, format detection and conversion to OpenAI JSONL.

Every record is read once, in flat memory (see ``core.data.datareader``), and checked the way XTuner
will read it. Formats (detected from the first record):

- ``openai``   ``{"messages": [{"role", "content"}, …]}`` (JSONL or a JSON array) — XTuner's
  ``openai_map_fn``
- ``xtuner``   ``{"conversation": [{"system"?, "input", "output"}, …]}`` — XTuner's own format
- ``alpaca``   ``{"instruction", "input", "output"}`` (also the ``*_zh`` keys) — ``alpaca_map_fn``
- ``sharegpt`` ``{"conversations": [{"from", "value"}, …], "system"?}``
- ``oasst1``   ``{"text": "### Human: … ### Assistant: …"}`` — ``oasst1_map_fn`` (guanaco)

Each record becomes XTuner's *turns* — ``(system, input, output, with_loss)``, what
``dataset_map_fn`` produces — which is what previews, token statistics and conversion use.

Every issue has the file, the line, the field and an English message template (the i18n key) with
its parameters. Validation never writes; conversion writes a temporary file and renames it into
place only when the whole input was read without an error.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable, Iterator, Optional

from core.data.datareader import BadRecord, ReadError, iter_records, sniff

Turn = tuple  # (system: str, input: str, output: str, with_loss: bool)

FORMATS = {
    "openai": "OpenAI messages",
    "xtuner": "XTuner conversation",
    "alpaca": "Alpaca",
    "sharegpt": "ShareGPT",
    "oasst1": "oasst1 / guanaco text",
}
CONTAINERS = {"jsonl": "JSONL", "json": "JSON array", "parquet": "Parquet"}
ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "model": "assistant",
                  "system": "system"}

# --- messages: English templates, also the keys of the Chinese catalog ----------------------------
T_CANNOT_READ = "Cannot read the file: {error}."
T_NO_RECORDS = "The file holds no records."
T_NOTHING_TO_TRAIN = ("No record has an assistant message: there is nothing to train on. Each record needs at least "
                      "one answer (role assistant / gpt / output).")
T_NOT_OBJECT = "Each record must be a JSON object; this one is {got}."
T_UNKNOWN_FORMAT = ("The record's keys ({keys}) match no known format. Expected messages (OpenAI), conversation "
                    "(XTuner), conversations (ShareGPT), instruction/input/output (Alpaca) or text (oasst1).")
T_MISMATCH = "This record is in {found} format, but the file started in {expected} format: use one format per file."
T_MISSING = "Missing: every {format} record needs this field."
T_TYPE = "Must be {expected}, got {got}."
T_EMPTY_LIST = "Is an empty list: a record needs at least one message."
T_ROLE = "{role!r} is not a known role. Use one of: {allowed}."
T_CONTENT_PARTS = ("Is a list of content parts (images, …): XTuner's openai_map_fn needs plain text. "
                   "Join the text parts into one string.")
T_NO_HUMAN = "The text has no '### Human:' / '### Assistant:' turns."
T_IMAGE_DATASET = ("This is an image dataset (LLaVA: an \"image\" field and \"<image>\" in the conversation): "
                   "as text its images would be lost. Switch to vision-language.")
# warnings
W_DUPLICATE = "Same conversation as line {first} ({count} duplicate records in the file): duplicates make the model memorise."
W_LEADING_ASSISTANT = "The conversation starts with an assistant message: XTuner skips it."
W_NO_ASSISTANT = "No assistant message: nothing to learn here, XTuner drops this record."
W_SYSTEM_MIDDLE = "A system message in the middle of the conversation: XTuner applies it to the next turn only."
W_EMPTY = "Is empty."
W_TRAILING_USER = "The conversation ends with a user message that has no answer: XTuner drops that message."
W_CONSECUTIVE_USER = "Two user messages in a row: XTuner joins them without a separator."
W_CONSECUTIVE_ASSISTANT = "Two assistant messages in a row: the second one is trained with an empty prompt."
W_NOOUTPUT = "Output is '<nooutput>': XTuner drops this record."

MESSAGES = [v for k, v in dict(globals()).items() if k.startswith(("T_", "W_")) and isinstance(v, str)]
MAX_ISSUES = 100  # errors kept in a report (all are counted)
MAX_EXAMPLES = 20  # warnings of one kind kept in a report (all are counted)


@dataclass
class Issue:
    code: str
    text: str  # English message template with str.format names (the i18n key)
    params: dict = field(default_factory=dict)
    line: Optional[int] = None
    field: str = ""
    file: str = ""

    @property
    def message(self) -> str:
        return self.text.format(**self.params)

    def __str__(self) -> str:
        where = [self.file] if self.file else []
        where += [f"line {self.line}"] if self.line else []
        where += [self.field] if self.field else []
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass(kw_only=True)
class IssueLog:
    """A file's errors and warnings as a check finds them: every one counted, the first ones kept."""
    path: Path
    errors: list[Issue] = field(default_factory=list)
    error_count: int = 0
    warnings: list[Issue] = field(default_factory=list)
    warning_counts: dict[str, int] = field(default_factory=dict)

    def err(self, code: str, text: str, _line=None, _field: str = "", **params) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ISSUES:
            self.errors.append(Issue(code, text, params, _line, _field, self.path.name))

    def warn(self, code: str, text: str, _line=None, _field: str = "", **params) -> None:
        n = self.warning_counts.get(code, 0)
        self.warning_counts[code] = n + 1
        if n < MAX_EXAMPLES:
            self.warnings.append(Issue(code, text, params, _line, _field, self.path.name))


@dataclass
class DatasetReport(IssueLog):
    container: Optional[str] = None
    format: Optional[str] = None
    records: int = 0  # readable records (in the detected format)
    trainable: int = 0  # records with at least one assistant turn
    turns: int = 0
    preview: list[dict] = field(default_factory=list)
    preview_turns: list[list[Turn]] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0
    duplicate_lines: set[int] = field(default_factory=set)  # filled only when asked for

    @property
    def ok(self) -> bool:
        return self.records > 0 and self.error_count == 0

    @property
    def label(self) -> str:
        parts = [FORMATS.get(self.format or "", "unknown format"), CONTAINERS.get(self.container or "", "")]
        return " · ".join(p for p in parts if p)

def type_name(v) -> str:
    """A JSON value's type in the words the messages use."""
    if v is None:
        return "null"
    return {str: "text", bool: "true/false", int: "a number", float: "a number", list: "a list",
            dict: "an object"}.get(type(v), type(v).__name__)


def as_object(rec, line, report: IssueLog) -> Optional[dict]:
    """``rec`` when it is a JSON object; otherwise (a damaged line, another JSON value) an error in
    ``report`` and None."""
    if type(rec) is dict:
        return rec
    if isinstance(rec, BadRecord):
        report.err(rec.code, rec.text, line, rec.field, **rec.params)
    else:
        report.err("not_object", T_NOT_OBJECT, line, got=type_name(rec))
    return None


# --- per-format checks: a record → its turns (None when it has errors) --------------------------
def _where(name: str, offset: int, j: int) -> str:
    return f"{name}[{j - offset}]" if j >= offset else "system"


def _messages_to_turns(msgs: list, line, r: DatasetReport, name: str, offset: int = 0) -> list[Turn]:
    """XTuner's openai_map_fn over checked ``(role, content, with_loss)`` triples, with its warnings.

    ``offset``: triples before the file's own list (ShareGPT's top-level ``system``)."""
    n = len(msgs)
    start = 0
    while start < n and msgs[start][0] == "assistant":
        start += 1
    if start:
        r.warn("leading_assistant", W_LEADING_ASSISTANT, line, _where(name, offset, 0))
    turns: list[Turn] = []
    system = inp = ""
    prev = None
    seen_turn = False
    for j in range(start, n):
        role, content, loss = msgs[j]
        if not content or content.isspace():
            r.warn("empty_content", W_EMPTY, line, _where(name, offset, j))
        if role == "user":
            if prev == "user":
                r.warn("consecutive_user", W_CONSECUTIVE_USER, line, _where(name, offset, j))
            inp += content
            seen_turn = True
        elif role == "assistant":
            if prev == "assistant":
                r.warn("consecutive_assistant", W_CONSECUTIVE_ASSISTANT, line, _where(name, offset, j))
            turns.append((system, inp, content, loss))
            system = inp = ""
            seen_turn = True
        else:
            if seen_turn:
                r.warn("system_middle", W_SYSTEM_MIDDLE, line, _where(name, offset, j))
            system = content
        prev = role
    if prev == "user" and turns:
        r.warn("trailing_user", W_TRAILING_USER, line, _where(name, offset, n - 1))
    if not turns:
        r.warn("no_assistant", W_NO_ASSISTANT, line, name)
    return turns


def _loss(m: dict) -> bool:
    return str(m.get("loss", "True")).lower() == "true"


def _plain_turns(msgs: list) -> Optional[list[Turn]]:
    """The turns of the usual record — an optional system message, then user/assistant pairs, every
    content non-blank text — in one pass; None for anything else (the full check then says what)."""
    turns: list[Turn] = []
    system = ""
    user = None
    for m in msgs:
        if type(m) is not dict:
            return None
        role = m.get("role")
        content = m.get("content")
        if type(content) is not str or not content or content.isspace():
            return None
        if role == "user" and user is None:
            user = content
        elif role == "assistant" and user is not None:
            turns.append((system, user, content, "loss" not in m or _loss(m)))
            system = ""
            user = None
        elif role == "system" and not turns and user is None and not system:
            system = content
        else:
            return None
    return turns if turns and user is None else None


def _check_openai(rec: dict, line, r: DatasetReport) -> Optional[list[Turn]]:
    msgs = rec.get("messages")
    if type(msgs) is not list:
        r.err("wrong_type", T_TYPE, line, "messages", expected="a list of {role, content}", got=type_name(msgs))
        return None
    if not msgs:
        r.err("empty_list", T_EMPTY_LIST, line, "messages")
        return None
    turns = _plain_turns(msgs)
    if turns is not None:
        return turns
    triples = []
    append = triples.append
    for m in msgs:  # every message an object with a known role and text: XTuner's turns, with warnings
        if type(m) is not dict:
            break
        role = m.get("role")
        content = m.get("content")
        if role not in ROLES or type(content) is not str:
            break
        append((role, content, role != "assistant" or "loss" not in m or _loss(m)))
    else:
        return _messages_to_turns(triples, line, r, "messages")
    for i, m in enumerate(msgs):  # report every problem of the record
        if type(m) is not dict:
            r.err("wrong_type", T_TYPE, line, f"messages[{i}]", expected="an object {role, content}", got=type_name(m))
            continue
        role = m.get("role")
        content = m.get("content")
        if role not in ROLES:
            if "role" not in m:
                r.err("missing_field", T_MISSING, line, f"messages[{i}].role", format="OpenAI")
            else:
                r.err("bad_role", T_ROLE, line, f"messages[{i}].role", role=role, allowed=", ".join(ROLES))
        if type(content) is not str:
            if "content" not in m:
                r.err("missing_field", T_MISSING, line, f"messages[{i}].content", format="OpenAI")
            elif type(content) is list:
                r.err("content_parts", T_CONTENT_PARTS, line, f"messages[{i}].content")
            else:
                r.err("wrong_type", T_TYPE, line, f"messages[{i}].content", expected="text", got=type_name(content))
    return None


def _check_sharegpt(rec: dict, line, r: DatasetReport) -> Optional[list[Turn]]:
    convs = rec.get("conversations")
    if type(convs) is not list:
        r.err("wrong_type", T_TYPE, line, "conversations", expected="a list of {from, value}", got=type_name(convs))
        return None
    if not convs:
        r.err("empty_list", T_EMPTY_LIST, line, "conversations")
        return None
    triples = []
    ok = True
    system = rec.get("system")
    if system is not None:
        if type(system) is not str:
            r.err("wrong_type", T_TYPE, line, "system", expected="text", got=type_name(system))
            ok = False
        elif system:
            triples.append(("system", system, True))
    for i, m in enumerate(convs):
        if type(m) is not dict:
            r.err("wrong_type", T_TYPE, line, f"conversations[{i}]", expected="an object {from, value}", got=type_name(m))
            ok = False
            continue
        src = m.get("from")
        role = SHAREGPT_ROLES.get(src) if isinstance(src, str) else None
        if role is None:
            if "from" not in m:
                r.err("missing_field", T_MISSING, line, f"conversations[{i}].from", format="ShareGPT")
            else:
                r.err("bad_role", T_ROLE, line, f"conversations[{i}].from", role=src,
                      allowed="human, gpt, system")
            ok = False
        value = m.get("value")
        if type(value) is not str:
            if "value" not in m:
                r.err("missing_field", T_MISSING, line, f"conversations[{i}].value", format="ShareGPT")
            else:
                r.err("wrong_type", T_TYPE, line, f"conversations[{i}].value", expected="text", got=type_name(value))
            ok = False
        if ok:
            triples.append((role, value, True))
    if not ok:
        return None
    offset = 1 if system else 0  # field names follow the file's own indices
    return _messages_to_turns(triples, line, r, "conversations", offset)


def _check_xtuner(rec: dict, line, r: DatasetReport) -> Optional[list[Turn]]:
    conv = rec.get("conversation")
    if type(conv) is not list:
        r.err("wrong_type", T_TYPE, line, "conversation", expected="a list of {input, output}", got=type_name(conv))
        return None
    if not conv:
        r.err("empty_list", T_EMPTY_LIST, line, "conversation")
        return None
    turns = []
    ok = True
    for i, t in enumerate(conv):
        where = f"conversation[{i}]"
        if type(t) is not dict:
            r.err("wrong_type", T_TYPE, line, where, expected="an object {input, output}", got=type_name(t))
            ok = False
            continue
        inp = t.get("input", "")
        out = t.get("output")
        system = t.get("system", "")
        loss = t.get("output_with_loss", True)
        for name, value, required in (("input", inp, False), ("output", out, True), ("system", system, False)):
            if type(value) is not str and not (value is None and not required):
                if name not in t:
                    r.err("missing_field", T_MISSING, line, f"{where}.{name}", format="XTuner")
                else:
                    r.err("wrong_type", T_TYPE, line, f"{where}.{name}", expected="text", got=type_name(value))
                ok = False
        if type(loss) is not bool:
            r.err("wrong_type", T_TYPE, line, f"{where}.output_with_loss", expected="true/false", got=type_name(loss))
            ok = False
        if not ok:
            continue
        if system and i > 0:
            r.warn("system_middle", W_SYSTEM_MIDDLE, line, f"{where}.system")
        if not out.strip():
            r.warn("empty_content", W_EMPTY, line, f"{where}.output")
        if not (inp or "").strip() and i > 0:
            r.warn("empty_content", W_EMPTY, line, f"{where}.input")
        turns.append((system or "", inp or "", out, loss))
    return turns if ok else None


def _alpaca_keys(rec: dict) -> tuple[str, str, str]:
    if "instruction" not in rec and "instruction_zh" in rec:
        return "instruction_zh", "input_zh", "output_zh"
    return "instruction", "input", "output"


def _check_alpaca(rec: dict, line, r: DatasetReport) -> Optional[list[Turn]]:
    ki, kin, ko = _alpaca_keys(rec)
    instr, inp, out = rec.get(ki), rec.get(kin, ""), rec.get(ko)
    ok = True
    for name, value, required in ((ki, instr, True), (kin, inp, False), (ko, out, True)):
        if type(value) is not str and not (value is None and not required):
            if name not in rec:
                r.err("missing_field", T_MISSING, line, name, format="Alpaca")
            else:
                r.err("wrong_type", T_TYPE, line, name, expected="text", got=type_name(value))
            ok = False
    if not ok:
        return None
    if out == "<nooutput>":
        r.warn("nooutput", W_NOOUTPUT, line, ko)
        return []
    if not instr.strip():
        r.warn("empty_content", W_EMPTY, line, ki)
    if not out.strip():
        r.warn("empty_content", W_EMPTY, line, ko)
    # XTuner's alpaca_map_fn writes f"{instruction}\n{input}"; with no input we leave out the newline.
    prompt = f"{instr}\n{inp}" if inp else instr
    return [("", prompt, out, True)]


def _check_oasst1(rec: dict, line, r: DatasetReport) -> Optional[list[Turn]]:
    text = rec.get("text")
    if type(text) is not str:
        r.err("wrong_type", T_TYPE, line, "text", expected="text", got=type_name(text))
        return None
    parts = []
    for sentence in text.strip().split("###"):  # XTuner's oasst1_map_fn
        sentence = sentence.strip()
        if sentence[:6] == "Human:":
            parts.append(sentence[6:].strip())
        elif sentence[:10] == "Assistant:":
            parts.append(sentence[10:].strip())
    if not parts:
        r.err("no_turns", T_NO_HUMAN, line, "text")
        return None
    if len(parts) % 2:
        parts.pop()
        if parts:
            r.warn("trailing_user", W_TRAILING_USER, line, "text")
    turns = [("", parts[i], parts[i + 1], True) for i in range(0, len(parts), 2)]
    if not turns:
        r.warn("no_assistant", W_NO_ASSISTANT, line, "text")
    return turns


CHECKERS: dict[str, Callable] = {"openai": _check_openai, "xtuner": _check_xtuner, "alpaca": _check_alpaca,
                                 "sharegpt": _check_sharegpt, "oasst1": _check_oasst1}
_KEY = {"openai": "messages", "xtuner": "conversation", "sharegpt": "conversations", "oasst1": "text"}


def detect_format(rec) -> Optional[str]:
    """The format of one record, or None."""
    if not isinstance(rec, dict):
        return None
    if "messages" in rec:
        return "openai"
    if "conversation" in rec:
        return "xtuner"
    if "conversations" in rec:
        return "sharegpt"
    if ("instruction" in rec and "output" in rec) or ("instruction_zh" in rec and "output_zh" in rec):
        return "alpaca"
    if isinstance(rec.get("text"), str) and "###" in rec["text"]:
        return "oasst1"
    return None


def is_image_record(rec: dict) -> bool:
    """A LLaVA record: an ``image`` field, or ``<image>`` in a ShareGPT conversation."""
    if rec.get("image") is not None or rec.get("images") is not None:
        return True
    conv = rec.get("conversations")
    return isinstance(conv, list) and any(isinstance(m, dict) and "<image>" in str(m.get("value", "")) for m in conv)


def _required_keys(fmt: str, rec: dict) -> list[str]:
    """The format's top-level keys missing from ``rec``."""
    if fmt != "alpaca":
        return [_KEY[fmt]]
    ki, _kin, ko = _alpaca_keys(rec)
    return [k for k in (ki, ko) if k not in rec]


def _has_key(fmt: str, rec: dict) -> bool:
    if fmt == "alpaca":
        return ("instruction" in rec or "instruction_zh" in rec) and ("output" in rec or "output_zh" in rec)
    return _KEY[fmt] in rec


# --- the scan ---------------------------------------------------------------------------------------
Sink = Callable[[int, dict, list], None]


def _scan(path: Path, sink: Optional[Sink] = None, preview_rows: int = 5,
          collect_duplicates: bool = False) -> DatasetReport:
    started = time.monotonic()
    report = DatasetReport(path=path)
    try:
        report.bytes = path.stat().st_size
        report.container = sniff(path)
    except ReadError as e:
        report.err(e.code, e.text, e.line, **e.params)
        return report
    except OSError as e:
        report.err("cannot_read", T_CANNOT_READ, error=e.strerror or str(e))
        return report
    fmt = None
    check = None
    hashes = array("q")
    lines = array("q")
    try:
        for line, rec in iter_records(path, report.container):
            if as_object(rec, line, report) is None:
                continue
            if fmt is None:
                fmt = detect_format(rec)
                if fmt is None:
                    report.err("unknown_format", T_UNKNOWN_FORMAT, line, keys=", ".join(sorted(rec)[:8]) or "none")
                    continue
                report.format = fmt
                check = CHECKERS[fmt]
            elif not _has_key(fmt, rec):
                found = detect_format(rec)
                if found is not None:
                    report.err("format_mismatch", T_MISMATCH, line, found=FORMATS[found], expected=FORMATS[fmt])
                else:
                    for key in _required_keys(fmt, rec):
                        report.err("missing_field", T_MISSING, line, key, format=FORMATS[fmt])
                continue
            if fmt == "sharegpt" and is_image_record(rec):
                report.err("image_dataset", T_IMAGE_DATASET, line, "image" if "image" in rec else "conversations")
                break
            turns = check(rec, line, report)
            if turns is None:
                continue
            report.records += 1
            if turns:
                report.trainable += 1
                report.turns += len(turns)
                hashes.append(hash(tuple(turns)))
                lines.append(line)
            if len(report.preview) < preview_rows:
                report.preview.append(rec)
                report.preview_turns.append(turns)
            if sink is not None:
                sink(line, rec, turns)
    except ReadError as e:
        report.err(e.code, e.text, e.line, **e.params)
    except OSError as e:
        report.err("cannot_read", T_CANNOT_READ, error=e.strerror or str(e))
    if report.records == 0 and report.error_count == 0:
        report.err("no_records", T_NO_RECORDS)
    elif report.records and not report.trainable:
        report.err("nothing_to_train", T_NOTHING_TO_TRAIN)
    _find_duplicates(report, hashes, lines, collect_duplicates)
    report.seconds = time.monotonic() - started
    return report


def _find_duplicates(report: DatasetReport, hashes: array, lines: array, collect: bool) -> None:
    """Records with the same turns, from their 8-byte hashes (no record text is kept in memory)."""
    ordered = sorted(hashes)
    repeated = {b for a, b in zip(ordered, islice(ordered, 1, None)) if a == b}
    del ordered
    if not repeated:
        return
    first: dict[int, int] = {}
    dups: list[tuple[int, int]] = []  # (line, line of its first copy), in file order
    for h, line in zip(hashes, lines):
        if h in repeated:
            if h in first:
                dups.append((line, first[h]))
            else:
                first[h] = line
    report.warning_counts["duplicate"] = len(dups)
    for line, first_line in dups[:MAX_EXAMPLES]:
        report.warnings.append(Issue("duplicate", W_DUPLICATE, {"first": first_line, "count": len(dups)},
                                     line, "", report.path.name))
    if collect:
        report.duplicate_lines = {line for line, _first in dups}


def validate(path: str | os.PathLike, preview_rows: int = 5) -> DatasetReport:
    """Read the whole file and report every problem (file, line, field); writes nothing."""
    return _scan(Path(path), preview_rows=preview_rows)


# --- conversion --------------------------------------------------------------------------------------
def turns_to_messages(turns: list[Turn]) -> list[dict]:
    msgs: list[dict] = []
    for system, inp, out, loss in turns:
        if system:
            msgs.append({"role": "system", "content": system})
        msgs.append({"role": "user", "content": inp})
        msg = {"role": "assistant", "content": out}
        if not loss:
            msg["loss"] = False
        msgs.append(msg)
    return msgs


@dataclass
class ConvertResult:
    report: DatasetReport
    out_path: Optional[Path] = None
    written: int = 0
    dropped_duplicates: int = 0
    dropped_untrainable: int = 0


def convert(path: str | os.PathLike, out_path: str | os.PathLike, drop_duplicates: bool = False,
            drop_untrainable: bool = False) -> ConvertResult:
    """Write ``path`` as OpenAI-messages JSONL to ``out_path`` — only if the input has no error.

    OpenAI records keep their messages as they are; other formats become the messages XTuner would
    train on. The output appears at once (temporary file + rename) or not at all.
    """
    path, out_path = Path(path), Path(out_path)
    report = _scan(path, preview_rows=0, collect_duplicates=drop_duplicates)
    result = ConvertResult(report)
    if not report.ok:
        return result
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    dups = report.duplicate_lines
    openai = report.format == "openai"
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for line, rec in iter_records(path, report.container):
                if type(rec) is not dict:
                    continue
                turns = CHECKERS[report.format](rec, line, DatasetReport(path=path))
                if turns is None:  # cannot happen after a clean scan; never write a bad record
                    continue
                if line in dups:
                    result.dropped_duplicates += 1
                    continue
                if drop_untrainable and not turns:
                    result.dropped_untrainable += 1
                    continue
                msgs = rec["messages"] if openai else turns_to_messages(turns)
                out.write(json.dumps({"messages": msgs}, ensure_ascii=False) + "\n")
                result.written += 1
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    result.out_path = out_path
    return result


def converted_name(path: str | os.PathLike) -> str:
    """``data.json`` → ``data.openai.jsonl``."""
    stem = Path(path).name
    for suffix in (".jsonl", ".json", ".parquet"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return f"{stem}.openai.jsonl"


# --- reading for previews, statistics and builders ---------------------------------------------------
def iter_turns(path: str | os.PathLike) -> Iterator[tuple[int, list[Turn]]]:
    """``(line, turns)`` of every readable record (bad ones are skipped: validate reports them)."""
    path = Path(path)
    container = sniff(path)
    fmt = None
    scratch = DatasetReport(path=path)
    for line, rec in iter_records(path, container):
        if type(rec) is not dict:
            continue
        if fmt is None:
            fmt = detect_format(rec)
            if fmt is None:
                continue
        if not _has_key(fmt, rec):
            continue
        scratch.errors.clear()
        scratch.warnings.clear()
        turns = CHECKERS[fmt](rec, line, scratch)
        if turns is not None:
            yield line, turns


def preview_records(path: str | os.PathLike, n: int = 3) -> list[dict]:
    """The first ``n`` records as they are in the file (streaming; a broken file gives fewer)."""
    out: list[dict] = []
    try:
        for _line, rec in iter_records(Path(path)):
            if isinstance(rec, dict):
                out.append(rec)
                if len(out) >= n:
                    break
    except (OSError, ReadError):
        pass
    return out


def preview_turns(path: str | os.PathLike, n: int = 3) -> list[tuple[int, list[Turn]]]:
    """The first ``n`` readable records as XTuner turns, with their lines."""
    out = []
    try:
        for item in iter_turns(path):
            out.append(item)
            if len(out) >= n:
                break
    except (OSError, ReadError):
        pass
    return out


DATA_SUFFIXES = (".jsonl", ".json", ".parquet")


def data_files(folder: str | os.PathLike) -> list[Path]:
    """Dataset files in a downloaded dataset folder (largest first; hidden folders skipped)."""
    folder = Path(folder)
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.endswith(DATA_SUFFIXES) and not name.startswith("."):
                p = Path(root) / name
                found.append((p.stat().st_size, p))
    return [p for _s, p in sorted(found, key=lambda x: (-x[0], str(x[1])))]
