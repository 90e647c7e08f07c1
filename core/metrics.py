"""Readers for what a run writes, reading only the bytes added since the last poll.

- ``ScalarsReader``: ``work_dir/<timestamp>/vis_data/scalars.json`` of every start and resume of a
  run, merged by iteration (a resumed run's points replace any earlier ones at the same iteration,
  so the curve has no duplicates); only complete lines are read (mmengine writes the JSON, then
  the newline, separately); a file that shrank or was replaced is read again from its start.
- ``LogTail``: the last lines of a growing log, from the last offset.
- ``eval_outputs``: XTuner's evaluation answers per checkpoint iteration.
"""
from __future__ import annotations

import json
import os
import re
from collections import deque
from pathlib import Path

from core.fsutil import read_json


class _IncrementalFile:
    """Complete lines appended to one file since the last call; survives truncation/replacement."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.inode = None
        self._partial = b""

    def new_lines(self, max_bytes: int | None = None) -> tuple[list[bytes], bool]:
        """(complete new lines, reset) — ``reset`` is True when the file was truncated or replaced."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return [], False
        reset = False
        if self.inode is not None and (st.st_ino != self.inode or st.st_size < self.offset):
            self.offset, self._partial, reset = 0, b"", True
        self.inode = st.st_ino
        if st.st_size == self.offset:
            return [], reset
        if max_bytes is not None and self.offset == 0 and st.st_size > max_bytes:
            # first read of a huge file: start near the end, at a line boundary
            self.offset = st.st_size - max_bytes
            skip_partial = True
        else:
            skip_partial = False
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read(st.st_size - self.offset)
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # '' when the chunk ended with a newline
        if skip_partial and lines:
            lines = lines[1:]
        return lines, reset


class ScalarsReader:
    """All scalars of a run's work_dir, across every ``<timestamp>/`` directory."""

    def __init__(self, work_dir: str | os.PathLike):
        self.work_dir = Path(work_dir)
        self._files: dict[Path, _IncrementalFile] = {}
        self._by_iter: dict[int, dict] = {}
        self._origin: dict[int, Path] = {}

    def _scalar_files(self) -> list[Path]:
        if not self.work_dir.is_dir():
            return []
        return sorted(self.work_dir.glob("*/vis_data/scalars.json"))

    def poll(self) -> int:
        """Read what was added; returns the number of new records."""
        added = 0
        for path in self._scalar_files():  # timestamp names sort chronologically
            reader = self._files.get(path)
            if reader is None:
                reader = self._files[path] = _IncrementalFile(path)
            lines, reset = reader.new_lines()
            if reset:
                for it in [i for i, p in self._origin.items() if p == path]:
                    self._by_iter.pop(it, None)
                    self._origin.pop(it, None)
            for line in lines:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                it = rec.get("iter", rec.get("step"))
                if not isinstance(it, int):
                    continue
                # a later directory (a resume) wins over an earlier one at the same iteration
                prev = self._origin.get(it)
                if prev is not None and prev > path:
                    continue
                self._by_iter[it] = rec
                self._origin[it] = path
                added += 1
        return added

    @property
    def records(self) -> list[dict]:
        return [self._by_iter[i] for i in sorted(self._by_iter)]

    def series(self, key: str) -> tuple[list[int], list[float]]:
        xs, ys = [], []
        for i in sorted(self._by_iter):
            v = self._by_iter[i].get(key)
            if isinstance(v, (int, float)):
                xs.append(i)
                ys.append(float(v))
        return xs, ys


class LogTail:
    """The last ``max_lines`` lines of a growing text file, read incrementally."""

    def __init__(self, path: str | os.PathLike, max_lines: int = 200, first_read_bytes: int = 256 * 1024):
        self._file = _IncrementalFile(Path(path))
        self._lines: deque[str] = deque(maxlen=max_lines)
        self._first_read_bytes = first_read_bytes

    def poll(self) -> list[str]:
        lines, reset = self._file.new_lines(max_bytes=self._first_read_bytes)
        if reset:
            self._lines.clear()
        for line in lines:
            self._lines.append(line.decode("utf-8", errors="replace").rstrip("\r"))
        return list(self._lines)

    def text(self) -> str:
        return "\n".join(self.poll())


def read_progress(path: str | os.PathLike) -> dict | None:
    try:
        return read_json(path)
    except ValueError:
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
