"""Evaluation answers checkpoint by checkpoint: the answer without its prompt, and word diffs.

XTuner writes each answer as the whole generated text: the prompt in its template, then the
model's reply, then the stop word (``<|im_end|>`` …). ``core.results.metrics.eval_outputs`` already maps
XTuner's 0-based file names to checkpoint iterations (eval_outputs_iter_9.txt ↔ iter_10.pth).
"""
from __future__ import annotations

import difflib
import html
import os
import re

from core.results.metrics import eval_outputs
from core.data.templates import PROMPT_TEMPLATES, format_prompt
from core.vision.dataset import IMAGE_TOKEN


def answer_only(text: str, template: str | None, question: str, system: str = "") -> str:
    """The reply part of an evaluation output (the text as it was when the prompt is not found)."""
    t = PROMPT_TEMPLATES.get(template or "")
    if t is None:
        return text.strip()
    prompt = format_prompt(template, question, system=system)
    if text.startswith(prompt):
        text = text[len(prompt):]
    else:
        tail = t["INSTRUCTION"].split("{input}", 1)[-1]
        marker = question + tail.replace("{round}", "1").replace("{bot_name}", "BOT")
        at = text.find(marker)
        if at >= 0:
            text = text[at + len(marker):]
    for stop in list(t.get("STOP_WORDS", [])) + [t.get("SUFFIX", "")]:
        if stop and stop.strip() and stop in text:
            text = text.split(stop, 1)[0]
    return text.strip()


def timeline(work_dir: str | os.PathLike, template: str | None, questions: list[str],
             system: str = "", images: bool = False) -> dict[int, list[str]]:
    """{checkpoint iteration: [answer per question]}, oldest first, prompts removed. ``images``: each question
    was asked about an image (a LLaVA run: XTuner puts ``<image>`` and a newline before the question)."""
    asked = [IMAGE_TOKEN + "\n" + q for q in questions] if images else questions
    out = {}
    for iteration, texts in eval_outputs(work_dir).items():
        out[iteration] = [answer_only(text, template, asked[i] if i < len(asked) else "", system)
                          for i, text in enumerate(texts)]
    return out


_TOKEN = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)


def word_diff(a: str, b: str) -> list[tuple[str, str]]:
    """[(op, text)] turning ``a`` into ``b``: op is '=' (same), '-' (only in a) or '+' (only in b)."""
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    out: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=ta, b=tb, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append(("=", "".join(ta[i1:i2])))
        else:
            if i2 > i1:
                out.append(("-", "".join(ta[i1:i2])))
            if j2 > j1:
                out.append(("+", "".join(tb[j1:j2])))
    return out


def diff_html(a: str, b: str) -> str:
    """The word diff as escaped HTML: removed words struck through in red, added ones in green."""
    style = {"-": "background:#ffd7d5;text-decoration:line-through", "+": "background:#ccf0d4"}
    parts = []
    for op, text in word_diff(a, b):
        esc = html.escape(text)
        parts.append(esc if op == "=" else f'<span class="diff-{"del" if op == "-" else "ins"}" '
                                           f'style="{style[op]}">{esc}</span>')
    return '<div style="white-space:pre-wrap;font-family:monospace">' + "".join(parts) + "</div>"


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(a=_TOKEN.findall(a), b=_TOKEN.findall(b), autojunk=False).ratio()
