"""Workspace-wide preferences (``<workspace>/settings.json``), e.g. the UI language."""
from __future__ import annotations

from pathlib import Path

from core.fsutil import atomic_write_json, read_state


def load(workspace: str | Path) -> dict:
    data = read_state(Path(workspace) / "settings.json")
    return data if isinstance(data, dict) else {}


def save(workspace: str | Path, **changes) -> dict:
    data = load(workspace) | changes
    atomic_write_json(Path(workspace) / "settings.json", data)
    return data
