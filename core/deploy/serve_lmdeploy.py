"""LMDeploy's OpenAI-compatible ``api_server`` for GPU machines: the command only (not run here).

LMDeploy 0.18.0 needs CUDA and a newer transformers than XTuner's, so it lives in its own environment,
made on demand: ``scripts/ensure_env.sh --lmdeploy`` → ``.venv-lmdeploy``. A merged model is served by
TurboMind; an adapter, unmerged, only by the PyTorch engine (``--adapters name=path``). Not yet checked
on a GPU machine.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

from core.paths import REPO_ROOT

LMDEPLOY_VENV = REPO_ROOT / ".venv-lmdeploy"
SETUP_LINE = "scripts/ensure_env.sh --lmdeploy"


def lmdeploy_argv(model_dir: str | Path, port: int, name: str = "model", adapter: Optional[str | Path] = None,
                  host: str = "127.0.0.1") -> list[str]:
    """``lmdeploy serve api_server`` on ``model_dir`` (the base model when ``adapter`` is given)."""
    argv = [str(LMDEPLOY_VENV / "bin" / "lmdeploy"), "serve", "api_server", str(model_dir),
            "--server-name", host, "--server-port", str(port), "--model-name", name]
    if adapter is not None:
        return argv + ["--backend", "pytorch", "--adapters", f"{name}={adapter}"]
    return argv + ["--backend", "turbomind"]


def command_line(argv: list[str]) -> str:
    """The argv as one shell line, every value quoted."""
    return shlex.join(argv)
