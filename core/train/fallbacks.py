"""What a run could not do as configured (bf16, fused kernels, separate packed samples): one line each in
its log, read back by the Train page and shown translated.

A line is ``[xtuner-studio fallback] {"message": TEMPLATE, "params": {...}}``: the English template
(the i18n key) and its parameters, so the page shows it in the user's language.
"""
from __future__ import annotations

import json
from pathlib import Path

PREFIX = "[xtuner-studio fallback] "
HEAD_BYTES = 4 * 1024 * 1024  # fallbacks are printed before training starts: the log's head holds them


def line(template: str, params: dict | None = None) -> str:
    return PREFIX + json.dumps({"message": template, "params": params or {}}, ensure_ascii=False)


def announce(template: str, params: dict | None = None) -> None:
    """Print the fallback line (the training process's output goes to the run's log)."""
    print(line(template, params), flush=True)


def read(log_path: str | Path) -> list[tuple[str, dict]]:
    """The fallbacks announced in a log, in order, each once."""
    try:
        with open(log_path, "rb") as f:
            head = f.read(HEAD_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return []
    return read_text(head)


def read_text(log_text: str) -> list[tuple[str, dict]]:
    """The fallbacks in a log's text, in order, each once."""
    found: list[tuple[str, dict]] = []
    for text in log_text.splitlines():
        if not text.startswith(PREFIX):
            continue
        try:
            item = json.loads(text[len(PREFIX):])
            entry = (str(item["message"]), dict(item.get("params") or {}))
        except (ValueError, KeyError, TypeError):
            continue
        if entry not in found:  # several ranks print the same line
            found.append(entry)
    return found
