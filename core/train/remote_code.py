"""A model that brings its own Python code (``auto_map``) runs only after the user's opt-in (the project's
``trust_remote_code``, ticked on Model & Data). Checked before a run starts and before chat loads the model,
from the JSON files alone, so the refusal names the file and what to do instead of failing inside transformers.
"""
from __future__ import annotations

import json
from pathlib import Path

from core.train.configgen import ConfigError

E_NOT_TRUSTED = ("{file} asks to run the model's own code ({names}) and this project does not allow it. On "
                 "Model & Data, check this model and tick \"I trust this model's code\", or choose another model.")
MESSAGES = [E_NOT_TRUSTED]


class RemoteCodeNotAllowed(ConfigError):
    """The model needs its own code and the user has not opted in."""


def auto_map(model_dir: str | Path) -> tuple[Path, list[str]] | None:
    """The first of config.json / tokenizer_config.json that names the model's own code, and what it names."""
    for name in ("config.json", "tokenizer_config.json"):
        path = Path(model_dir) / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        mapping = data.get("auto_map") if isinstance(data, dict) else None
        if mapping:
            values = mapping.values() if isinstance(mapping, dict) else [mapping]
            names = sorted({v if isinstance(v, str) else str(next((x for x in v if x), "")) for v in values})
            return path, names
    return None


def check_allowed(model_dir: str | Path | None, allowed: bool) -> None:
    """Raise ``RemoteCodeNotAllowed`` when ``model_dir`` needs its own code and ``allowed`` is False."""
    found = None if allowed or not model_dir else auto_map(model_dir)
    if found:
        path, names = found
        raise RemoteCodeNotAllowed(E_NOT_TRUSTED, file=str(path), names=", ".join(names))
