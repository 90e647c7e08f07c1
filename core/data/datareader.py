"""Stream the records of a dataset file with their line numbers, in flat memory.

Containers: JSON Lines (one record per line), one JSON array of records (read element by element,
never whole), and Parquet (row groups in batches). A problem that makes the rest of the file
unreadable (binary data, UTF-16, a broken JSON array) raises :class:`ReadError`; a bad line of a
JSONL file is yielded as a :class:`BadRecord` and reading goes on, so one pass finds them all.

JSONL lines are decoded by orjson (UTF-8 checked on the way, about twice as fast as the standard
library); a line it refuses is decoded again by the standard library, which says where the problem
is, or accepts it (NaN, Infinity: as before). A lone UTF-16 surrogate escape
(``"\\ud800"``) cannot be tokenized or written back as UTF-8: it is a bad record, with its field.
"""
from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Union

import orjson

CHUNK = 1 << 20  # bytes read at a time from a JSON array
MAX_RECORD_BYTES = 64 << 20  # one record larger than this is refused (memory guard)
_DECODER = json.JSONDecoder()
_WS = " \t\r\n"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # may hold a lone surrogate (a cheap first look)


@dataclass
class ReadError(Exception):
    """The file cannot be read further. ``text`` is an English message template (an i18n key)."""

    code: str
    text: str
    line: int | None = None
    params: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.text.format(**self.params)


@dataclass
class BadRecord:
    """One unreadable line of a JSONL file (reading goes on)."""

    code: str
    text: str
    params: dict = field(default_factory=dict)
    field: str = ""  # where in the record, e.g. messages[1].content


Item = Union[object, BadRecord]

# the English texts are the i18n keys (ui/locales/zh/model_data.json)
T_BINARY = "This is a binary file, not JSON text."
T_GZIP = "This file is compressed (gzip): decompress it first (gunzip)."
T_ZIP = "This is a ZIP archive: unpack it and give the JSON/JSONL file inside."
T_UTF16 = "This file is UTF-16 text: save it as UTF-8 and try again."
T_EMPTY = "The file is empty."
T_NOT_UTF8 = "Not UTF-8 text (byte {byte} of the line is invalid): save the file as UTF-8."
T_NOT_UTF8_ARRAY = "Not UTF-8 text near line {line}: save the file as UTF-8."
T_BAD_JSON = "Not valid JSON at column {column} ({error})."
T_TRUNCATED_LINE = "Not valid JSON at column {column} ({error}). The file ends here: it looks truncated."
T_PRETTY = ("This looks like one pretty-printed JSON object. JSONL needs each record on one line: save the file "
            "as a JSON array of records or with one record per line.")
T_ARRAY_SYNTAX = "The JSON array is broken here: {error} (column {column}). Nothing after this point can be read."
T_ARRAY_TRUNCATED = "The JSON array ends early (file truncated?): the record starting at line {line} is incomplete."
T_ARRAY_NOT_CLOSED = "The JSON array is not closed with ']': the file looks truncated."
T_ARRAY_JUNK = "Text after the end of the JSON array: {snippet!r}."
T_TOP_LEVEL = ("The file is one JSON {kind}, not a list of records. Expected a JSON array of records or one "
               "record per line (JSONL).")
T_TOO_LARGE = "A single record larger than {mb} MB starts at line {line}: split the file or check its format."
T_PARQUET = "Cannot read this Parquet file: {error}"
T_SURROGATE = ("Holds a lone UTF-16 surrogate escape ({escape}): it is not a character, cannot be tokenized or "
               "saved as UTF-8. Remove it or write the whole character.")
MESSAGES = [v for k, v in dict(globals()).items() if k.startswith("T_") and isinstance(v, str)]


def sniff(path: str | Path) -> str:
    """The container of ``path``: ``jsonl``, ``json`` (an array) or ``parquet``; ReadError if none."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head.strip():
        raise ReadError("empty_file", T_EMPTY)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x1f\x8b"):
        raise ReadError("gzip", T_GZIP)
    if head.startswith(b"PK\x03\x04"):
        raise ReadError("zip", T_ZIP)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or _looks_utf16(head):
        raise ReadError("utf16", T_UTF16)
    if b"\x00" in head:
        raise ReadError("binary", T_BINARY)
    text = head[3:] if head.startswith(codecs.BOM_UTF8) else head
    first = text.lstrip()[:1]
    return "json" if first == b"[" else "jsonl"


def _looks_utf16(head: bytes) -> bool:
    sample = head[:200]
    return len(sample) >= 4 and (sample[1::2].count(0) > len(sample) // 4 or sample[0::2].count(0) > len(sample) // 4)


def iter_records(path: str | Path, container: str | None = None) -> Iterator[tuple[int, Item]]:
    """Yield ``(line, record)`` for every record; ``line`` is 1-based (the row number for Parquet)."""
    container = container or sniff(path)
    if container == "jsonl":
        return _iter_jsonl(path)
    if container == "json":
        return _iter_json_array(path)
    return _iter_parquet(path)


def _iter_jsonl(path) -> Iterator[tuple[int, Item]]:
    loads = orjson.loads
    with open(path, "rb") as f:
        size_hint = Path(path).stat().st_size
        lineno = 0
        for raw in f:
            lineno += 1
            try:
                rec = loads(raw)
            except orjson.JSONDecodeError:  # blank, a BOM, bad UTF-8 or JSON, NaN, a lone surrogate…
                rec = _refused_line(raw, lineno, lambda: f.tell() >= size_hint)
                if rec is None:
                    continue
            yield lineno, rec


def _refused_line(raw: bytes, lineno: int, at_end) -> Item | None:
    """A line orjson refused, read by the standard library: the record, a BadRecord, or None if blank."""
    if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
        raw = raw[3:]
    if not raw.strip():
        return None
    if lineno == 1 and raw.strip() == b"{":
        raise ReadError("pretty", T_PRETTY, 1)
    try:
        rec = _DECODER.decode(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        return BadRecord("bad_encoding", T_NOT_UTF8, {"byte": e.start + 1})
    except json.JSONDecodeError as e:
        return _bad_json_line(e, raw, lineno, at_end())
    return _surrogate_check(rec)


def _surrogate_check(rec) -> Item:
    """``rec``, or a BadRecord naming the first string that holds a lone surrogate."""
    found = _lone_surrogate(rec, "")
    if found is None:
        return rec
    where, char = found
    return BadRecord("surrogate", T_SURROGATE, {"escape": f"\\u{ord(char):04x}"}, where)


def _lone_surrogate(obj, where: str) -> tuple[str, str] | None:
    """``(field, character)`` of the first lone surrogate in ``obj``'s strings (keys too), or None."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError as e:
            return where, obj[e.start]
        return None
    if isinstance(obj, dict):
        for key, value in obj.items():
            inner = f"{where}.{key}" if where else str(key)
            inner = inner.encode("utf-8", "backslashreplace").decode("utf-8")  # a bad key stays printable
            found = _lone_surrogate(key, inner) or _lone_surrogate(value, inner)
            if found:
                return found
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found = _lone_surrogate(value, f"{where}[{i}]")
            if found:
                return found
    return None


def _bad_json_line(e: json.JSONDecodeError, raw: bytes, lineno: int, at_end: bool) -> BadRecord:
    # the column on this line: json counts the line's own newline as the start of a line 2 ("column 1")
    params = {"error": e.msg, "column": min(e.pos, len(e.doc.rstrip("\r\n"))) + 1}
    if at_end and not raw.endswith(b"\n"):
        return BadRecord("truncated", T_TRUNCATED_LINE, params)
    return BadRecord("bad_json", T_BAD_JSON, params)


class _ArrayReader:
    """Text of a JSON array in a sliding window: elements are decoded one at a time."""

    def __init__(self, f):
        self.f = f
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.buf = ""
        self.pos = 0
        self.line = 1  # line number at self.pos
        self.eof = False

    def fill(self) -> bool:
        """Read one more chunk; False at end of file."""
        if self.eof:
            return False
        chunk = self.f.read(CHUNK)
        self.eof = not chunk
        try:
            text = self.decoder.decode(chunk, final=self.eof)
        except UnicodeDecodeError:
            raise ReadError("bad_encoding", T_NOT_UTF8_ARRAY, self.line + self.buf.count("\n", self.pos),
                            {"line": self.line + self.buf.count("\n", self.pos)}) from None
        self.buf = self.buf[self.pos:] + text
        self.pos = 0
        return bool(text) or not self.eof

    def skip_ws(self) -> str:
        """The next non-blank character ('' at end of file), advancing past blanks and counting lines."""
        while True:
            buf, pos, n = self.buf, self.pos, len(self.buf)
            while pos < n and buf[pos] in _WS:
                pos += 1
            self.line += buf.count("\n", self.pos, pos)
            self.pos = pos
            if pos < n:
                return buf[pos]
            if not self.fill():
                return ""

    def advance(self, end: int) -> None:
        self.line += self.buf.count("\n", self.pos, end)
        self.pos = end

    def column(self, at: int) -> int:
        return at - (self.buf.rfind("\n", 0, at) + 1) + 1

    def decode_one(self) -> Item:
        """Decode the element at ``pos``; returns it (or a BadRecord for a lone surrogate) and moves past it."""
        start_line = self.line
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as e:
                if not self.eof and (e.msg.startswith("Unterminated string") or e.pos >= len(self.buf) - 16):
                    self._grow(start_line)
                    continue
                if self.eof and (e.msg.startswith("Unterminated string") or e.pos >= len(self.buf) - 1):
                    raise ReadError("truncated", T_ARRAY_TRUNCATED, start_line, {"line": start_line}) from None
                line = self.line + self.buf.count("\n", self.pos, e.pos)
                raise ReadError("bad_json", T_ARRAY_SYNTAX, line,
                                {"error": e.msg, "column": self.column(e.pos)}) from None
            if end >= len(self.buf) and not self.eof:  # a number or literal may go on in the next chunk
                self._grow(start_line)
                continue
            maybe_surrogate = _SURROGATE_ESCAPE.search(self.buf, self.pos, end)
            self.advance(end)
            return _surrogate_check(obj) if maybe_surrogate else obj

    def _grow(self, start_line: int) -> None:
        if len(self.buf) - self.pos > MAX_RECORD_BYTES:
            raise ReadError("too_large", T_TOO_LARGE, start_line, {"mb": MAX_RECORD_BYTES >> 20, "line": start_line})
        self.fill()


def _iter_json_array(path) -> Iterator[tuple[int, Item]]:
    with open(path, "rb") as f:
        r = _ArrayReader(f)
        if r.skip_ws() != "[":
            raise ReadError("not_a_list", T_TOP_LEVEL, 1, {"kind": "value"})
        r.advance(r.pos + 1)
        first = True
        while True:
            c = r.skip_ws()
            if c == "":
                raise ReadError("truncated", T_ARRAY_NOT_CLOSED, r.line)
            if c == "]":
                r.advance(r.pos + 1)
                break
            if not first:
                if c != ",":
                    raise ReadError("bad_json", T_ARRAY_SYNTAX, r.line,
                                    {"error": "Expecting ',' delimiter", "column": r.column(r.pos)})
                r.advance(r.pos + 1)
                c = r.skip_ws()
                if c == "":
                    raise ReadError("truncated", T_ARRAY_NOT_CLOSED, r.line)
            first = False
            line = r.line
            yield line, r.decode_one()
        c = r.skip_ws()
        if c:
            raise ReadError("junk", T_ARRAY_JUNK, r.line, {"snippet": r.buf[r.pos:r.pos + 20]})


def _iter_parquet(path) -> Iterator[tuple[int, Item]]:
    import pyarrow.parquet as pq  # only for Parquet files

    try:
        pf = pq.ParquetFile(path)
        row = 0
        for batch in pf.iter_batches(batch_size=1024):
            for rec in batch.to_pylist():
                row += 1
                yield row, rec
    except (OSError, ValueError) as e:  # pyarrow.ArrowInvalid is a ValueError
        raise ReadError("parquet", T_PARQUET, None, {"error": str(e)}) from None

