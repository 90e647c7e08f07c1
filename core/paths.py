"""Where things live: the repository, the default workspace, the interpreter."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from core.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
E_EMPTY = "The path is empty: type an absolute path such as /data/models/my-model."
E_NUL = "The path contains a NUL character."
MESSAGES = [E_EMPTY, E_NUL]


def default_workspace() -> Path:
    """The workspace used when the user has not chosen one.

    ``XTUNER_STUDIO_HOME`` overrides it (tests point it at a temporary directory).
    """
    env = os.environ.get("XTUNER_STUDIO_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return (Path.home() / "xtuner-studio").resolve()


def python_executable() -> str:
    """The interpreter of this environment: jobs run with it, never with whatever `python` is on PATH."""
    return sys.executable


def resolve_user_path(raw: str) -> Path:
    """Resolve a path typed by a user (``~`` expanded, made absolute, symlinks resolved).

    Raises ``ValueError`` with a readable message for empty input or NUL bytes.
    """
    raw = (raw or "").strip()
    if not raw:
        raise UserError(E_EMPTY)
    if "\x00" in raw:
        raise UserError(E_NUL)
    return Path(raw).expanduser().resolve()
