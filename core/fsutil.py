"""Small file-system helpers: atomic writes, safe reads, the one reader of state files, disk-full
messages."""
from __future__ import annotations

import errno
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` so that readers see either the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """Read a JSON file; ``default`` when it is missing (never on corrupt content)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


@dataclass(frozen=True)
class Unreadable:
    """A state file that exists but cannot be used: which file and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def read_state(path: str | os.PathLike, model=None):
    """The one reader of state files (job.json, project.json, run.json): the content (validated
    into the pydantic ``model`` when given), ``None`` when the file is missing, ``Unreadable`` with
    the reason when it is truncated, corrupt, invalid or cannot be read. Never raises."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        return Unreadable(path, f"cannot be read ({e})")
    if not text.strip():
        return Unreadable(path, "the file is empty")
    try:
        data = json.loads(text)
    except ValueError as e:
        return Unreadable(path, f"not valid JSON ({e})")
    if model is None:
        return data
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "value"
        return Unreadable(path, f"invalid content ({where}: {first['msg']})")


MB = 1024 * 1024


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


E_DISK_FULL = "disk full: {free} MB free in {dir}"
E_DISK_FULL_NEEDS = "disk full: {free} MB free in {dir}, the run needs about {needs} MB"
MESSAGES = [E_DISK_FULL, E_DISK_FULL_NEEDS]


class DiskFull(OSError):
    """Not enough free space for what was asked: how much is free (measured now) and needed."""

    def __init__(self, directory: str | os.PathLike, needs_bytes: int | None = None):
        from core.machine.system import disk_free

        self.text = E_DISK_FULL_NEEDS if needs_bytes else E_DISK_FULL
        self.params = {"free": disk_free(directory) // MB, "dir": str(directory)}
        if needs_bytes:
            self.params["needs"] = -(-needs_bytes // MB)
        super().__init__(errno.ENOSPC, self.text.format(**self.params))

    def __str__(self) -> str:
        return self.strerror


def disk_full_message(directory: str | os.PathLike, needs_bytes: int | None = None) -> str:
    """``disk full: N MB free in DIR, the run needs about M MB`` with the free space measured now."""
    return str(DiskFull(directory, needs_bytes))


def dir_size(path: str | os.PathLike) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def human_duration(seconds, unknown: str = "—") -> str:
    """``m:ss`` or ``h:mm:ss``; ``unknown`` for None."""
    if seconds is None:
        return unknown
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
