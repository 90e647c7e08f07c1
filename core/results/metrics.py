"""Readers for what a run writes, reading only the bytes added since the last poll.

- ``ScalarsReader``: ``work_dir/<timestamp>/vis_data/scalars.json`` of every start and resume of a
  run, merged into one curve. A resume writes a new ``<timestamp>/`` whose first record is the
  iteration after its checkpoint; points an earlier start logged at or after that iteration belong
  to the stretch that was abandoned (a stop after the checkpoint, or a resume from an older
  checkpoint) and are dropped, so the curve has no gap and no duplicate. A second record of the same
  iteration in the same file (the held-out loss, written after the training record) adds its keys. Only complete lines are
  read (mmengine writes the JSON, then the newline, separately); a file that shrank, was replaced
  or was rewritten is read again from its start.
- ``scalars_csv``: every point of a run, for download.
- ``LogTail``: the last lines of a growing log, from the last offset.
- ``last_record``: the newest training record of a run, read from the end of its newest file.
- ``eval_outputs``: XTuner's evaluation answers per checkpoint iteration.
"""
from __future__ import annotations

import bisect
import csv
import io
import json
import os
import re
from collections import deque
from pathlib import Path

from core.fsutil import read_state

_HEAD = 64  # bytes remembered from a file's start, to notice a rewrite of the same length or more
_MAX_PARTIAL = 1 << 20  # an unfinished line longer than this keeps only its end (tqdm bars)


class _IncrementalFile:
    """Complete lines appended to one file since the last call; survives truncation/replacement."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.inode = None
        self.head = b""
        self._partial = b""

    def _restart(self) -> None:
        self.offset, self.head, self._partial = 0, b"", b""

    def new_lines(self, max_bytes: int | None = None) -> tuple[list[bytes], bool]:
        """(complete new lines, reset) — ``reset`` is True when the file was truncated or replaced."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return [], False
        reset = False
        if self.inode is not None and (st.st_ino != self.inode or st.st_size < self.offset):
            self._restart()
            reset = True
        self.inode = st.st_ino
        if st.st_size == self.offset:
            return [], reset
        with open(self.path, "rb") as f:
            if self.offset and self.head:
                if f.read(len(self.head)) != self.head:  # rewritten in place, now at least as long
                    self._restart()
                    reset = True
            skip_first = False
            if max_bytes is not None and self.offset == 0 and st.st_size > max_bytes:
                # first read of a huge file: start near the end, after a line boundary
                f.seek(0)
                self.head = f.read(_HEAD)
                self.offset = st.st_size - max_bytes
                skip_first = True
            f.seek(self.offset)
            chunk = f.read(st.st_size - self.offset)
        if self.offset == 0:
            self.head = chunk[:_HEAD]
        self.offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # b'' when the chunk ended with a newline
        if len(self._partial) > _MAX_PARTIAL:
            self._partial = self._partial[-_MAX_PARTIAL // 16:]
        if skip_first and lines:
            lines = lines[1:]
        return lines, reset


class ScalarsReader:
    """All scalars of a run's work_dir, across every ``<timestamp>/`` directory, in iteration order.

    ``poll()`` costs what was appended since the last poll; ``series(key)`` extends its cached
    lists with the new records only (it is rebuilt only after a resume cut, a rewritten file or a
    record completed by a later line of its iteration).
    """

    def __init__(self, work_dir: str | os.PathLike):
        self.work_dir = Path(work_dir)
        self._clear()

    def _scalar_files(self) -> list[Path]:
        if not self.work_dir.is_dir():
            return []
        return sorted(self.work_dir.glob("*/vis_data/scalars.json"))  # timestamp names sort in time order

    def _clear(self) -> None:
        self._files: dict[Path, _IncrementalFile] = {}
        self._iters: list[int] = []  # sorted; parallel to _recs and _src
        self._recs: list[dict] = []
        self._src: list[Path] = []
        self._first: dict[Path, int] = {}  # first iteration each file logged
        self._version = getattr(self, "_version", 0) + 1  # bumped by every change other than an append
        self._cache: dict[str, tuple[int, int, list[int], list[float]]] = {}

    def poll(self) -> int:
        """Read what was added; returns the number of new records."""
        added = 0
        for path in self._scalar_files():
            reader = self._files.get(path)
            if reader is None:
                reader = self._files[path] = _IncrementalFile(path)
            lines, reset = reader.new_lines()
            if reset:  # a rewritten file is rare: start over from every file's beginning
                self._clear()
                return self.poll()
            for line in lines:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                it = rec.get("iter", rec.get("step")) if isinstance(rec, dict) else None
                if isinstance(it, int) and self._add(path, it, rec):
                    added += 1
        return added

    def _add(self, path: Path, it: int, rec: dict) -> bool:
        if path not in self._first:
            self._first[path] = it
            self._cut(path, it)
        # a record of an earlier start, at or after where a later start took over, is not shown
        if any(other > path and first <= it for other, first in self._first.items()):
            return False
        if not self._iters or it > self._iters[-1]:
            self._iters.append(it)
            self._recs.append(rec)
            self._src.append(path)
            return True
        i = bisect.bisect_left(self._iters, it)
        if i < len(self._iters) and self._iters[i] == it:
            # the same file: a second record of that iteration (held-out loss) adds its keys
            self._recs[i] = {**self._recs[i], **rec} if self._src[i] == path else rec
            self._src[i] = path
        else:
            self._iters.insert(i, it)
            self._recs.insert(i, rec)
            self._src.insert(i, path)
        self._version += 1
        return True

    def _cut(self, path: Path, it: int) -> None:
        """A later start begins at ``it``: drop what earlier starts logged from ``it`` on."""
        i = bisect.bisect_left(self._iters, it)
        keep = [j for j in range(i, len(self._iters)) if self._src[j] >= path]
        if len(keep) == len(self._iters) - i:
            return
        self._iters[i:] = [self._iters[j] for j in keep]
        self._recs[i:] = [self._recs[j] for j in keep]
        self._src[i:] = [self._src[j] for j in keep]
        self._version += 1

    @property
    def records(self) -> list[dict]:
        return list(self._recs)

    @property
    def version(self) -> int:
        """Changes whenever the records change other than by an append (a resume cut, a rewritten file)."""
        return self._version

    def __len__(self) -> int:
        return len(self._iters)

    def items_from(self, start: int) -> list[tuple[int, dict]]:
        """(iteration, record) from position ``start`` on: what was appended since a caller's last look."""
        return list(zip(self._iters[start:], self._recs[start:]))

    @property
    def last_iter(self) -> int | None:
        return self._iters[-1] if self._iters else None

    def resumes(self) -> list[int]:
        """Iterations at which a later start (a resume) took over the curve."""
        firsts = [it for _, it in sorted(self._first.items())]
        return firsts[1:]

    def keys(self) -> list[str]:
        """Numeric keys seen in the records (``iter``/``step`` excluded), in first-seen order."""
        seen: dict[str, None] = {}
        for rec in self._recs[-50:] + self._recs[:50]:
            for k, v in rec.items():
                if k not in ("iter", "step") and isinstance(v, (int, float)) and not isinstance(v, bool):
                    seen.setdefault(k, None)
        return list(seen)

    def series(self, key: str) -> tuple[list[int], list[float]]:
        version, done, xs, ys = self._cache.get(key, (-1, 0, [], []))
        if version != self._version:
            done, xs, ys = 0, [], []
        for it, rec in zip(self._iters[done:], self._recs[done:]):
            v = rec.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                xs.append(it)
                ys.append(float(v))
        self._cache[key] = (self._version, len(self._iters), xs, ys)
        return list(xs), list(ys)


class LogTail:
    """The last ``max_lines`` lines of a growing text file, read incrementally.

    A line rewritten with carriage returns (progress bars) shows its last state, as a terminal would.
    """

    def __init__(self, path: str | os.PathLike, max_lines: int = 200, first_read_bytes: int = 256 * 1024):
        self._file = _IncrementalFile(Path(path))
        self._lines: deque[str] = deque(maxlen=max_lines)
        self._first_read_bytes = first_read_bytes

    def poll(self) -> list[str]:
        lines, reset = self._file.new_lines(max_bytes=self._first_read_bytes)
        if reset:
            self._lines.clear()
        for line in lines[-self._lines.maxlen:] if self._lines.maxlen else lines:
            text = line.decode("utf-8", errors="replace").rstrip("\r")
            self._lines.append(text.rsplit("\r", 1)[-1])
        return list(self._lines)

    def text(self) -> str:
        return "\n".join(self.poll())


def scalars_csv(work_dir: str | os.PathLike) -> str:
    """Every logged point of a run as CSV (one row per iteration, one column per key): the full data
    behind the downsampled charts."""
    reader = ScalarsReader(work_dir)
    reader.poll()
    keys = reader.keys()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["iter", *keys])
    for it, rec in reader.items_from(0):
        writer.writerow([it, *(rec.get(k, "") for k in keys)])
    return out.getvalue()


def read_progress(path: str | os.PathLike) -> dict | None:
    data = read_state(path)
    return data if isinstance(data, dict) else None


def last_record(work_dir: str | os.PathLike, tail_bytes: int = 64 * 1024) -> dict | None:
    """The newest complete scalars record of a run (read from the end of its newest file)."""
    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        return None
    for path in sorted(work_dir.glob("*/vis_data/scalars.json"), reverse=True):
        try:
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - tail_bytes))
                data = f.read()
        except OSError:
            continue
        for line in reversed(data.split(b"\n")[:-1]):  # the part after the last newline is unfinished
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "iter" in rec:  # a training record, not a held-out loss
                return rec
    return None


_EVAL_FILE = re.compile(r"eval_outputs_iter_(\d+)\.txt$")
_EVAL_SPLIT = re.compile(r"(?:^|\n)Eval output (\d+):\n")


def eval_outputs(work_dir: str | os.PathLike) -> dict[int, list[str]]:
    """{checkpoint iteration (1-based, as in iter_N.pth): [generated text per question]}.

    XTuner names the files with the 0-based iteration (iter_10.pth ↔ eval_outputs_iter_9.txt).
    """
    out: dict[int, list[str]] = {}
    for path in sorted(Path(work_dir).glob("*/vis_data/eval_outputs_iter_*.txt")):
        m = _EVAL_FILE.search(path.name)
        if not m:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        parts = _EVAL_SPLIT.split(text)
        answers = [parts[i + 1].rstrip("\n") for i in range(1, len(parts) - 1, 2)]
        out[int(m.group(1)) + 1] = answers
    return dict(sorted(out.items()))
