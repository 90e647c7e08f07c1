"""A conversation as the model sees it: rendered with an XTuner template (with the loss mask) or with a
tokenizer's own Jinja ``chat_template`` — text only, no tokenizer, no transformers import.

``xtuner_segments`` follows XTuner 0.2.0's ``template_map_fn`` and ``encode_fn`` step by step: per
turn, BOS (unless the previous turn's suffix stood for EOS), system + instruction (not trained), the
answer + ``SUFFIX`` (trained), EOS (trained, unless ``SUFFIX_AS_EOS``), ``SEP`` (not trained).
"""
from __future__ import annotations

import datetime as _dt
import difflib
import json
from dataclasses import dataclass

from core.data.templates import PROMPT_TEMPLATES

# Tokenizer classes for which XTuner adds no BOS token (xtuner/dataset/utils.py get_bos_eos_token_ids).
NO_BOS_TOKENIZERS = ("QWenTokenizer", "QWen2Tokenizer", "Qwen2TokenizerFast", "Qwen2Tokenizer")

SAMPLE = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Who are you?"},
    {"role": "assistant", "content": "I am your assistant."},
    {"role": "user", "content": "What can you do?"},
    {"role": "assistant", "content": "I can answer questions."},
]


@dataclass
class Segment:
    text: str
    trained: bool
    kind: str  # bos, prompt, output, eos, sep


def xtuner_segments(turns: list, template: str, bos: str = "", eos: str = "") -> list[Segment]:
    """``turns`` = [(system, input, output, with_loss)] → the training text in pieces, with the loss mask."""
    t = PROMPT_TEMPLATES[template]
    out: list[Segment] = []
    next_bos = True
    for i, (system, inp, output, loss) in enumerate(turns):
        prompt = t["INSTRUCTION"].format(input=inp or "", round=i + 1)
        if system and t.get("SYSTEM"):
            prompt = t["SYSTEM"].format(system=system) + prompt
        if next_bos and bos:
            out.append(Segment(bos, False, "bos"))
        out.append(Segment(prompt, False, "prompt"))
        out.append(Segment(output + (t.get("SUFFIX") or ""), bool(loss), "output"))
        if not t.get("SUFFIX_AS_EOS", False):
            if eos:
                out.append(Segment(eos, bool(loss), "eos"))
            next_bos = True
        else:
            next_bos = False
        if t.get("SEP"):
            out.append(Segment(t["SEP"], False, "sep"))
    return out


def messages_to_turns(messages: list[dict]) -> list[tuple]:
    """XTuner's openai_map_fn for well-formed messages."""
    turns, system, inp = [], "", ""
    for m in messages:
        if m["role"] == "system":
            system = m["content"]
        elif m["role"] == "user":
            inp += m["content"]
        elif turns or inp or system:
            turns.append((system, inp, m["content"], True))
            system = inp = ""
    return turns


def render_xtuner(messages: list[dict], template: str, bos: str = "", eos: str = "") -> str:
    return "".join(s.text for s in xtuner_segments(messages_to_turns(messages), template, bos, eos))


class ChatTemplateError(ValueError):
    """The tokenizer's chat template cannot render the sample (the message says why)."""


def render_chat_template(template: str, messages: list[dict], special_tokens: dict[str, str]) -> str:
    """Render a Hugging Face ``chat_template`` in a sandbox, the way transformers does."""
    from jinja2 import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise ChatTemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: _dt.datetime.now().strftime(fmt)
    try:
        return env.from_string(template).render(messages=messages, add_generation_prompt=False, tools=None,
                                                documents=None, **special_tokens)
    except ChatTemplateError:
        raise
    except TemplateError as e:
        raise ChatTemplateError(f"the chat template does not render: {e}") from None


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def differences(a: str, b: str) -> list[tuple[str, str, str]]:
    """The places where ``a`` and ``b`` differ: (operation, text in a, text in b)."""
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [(op, a[i1:i2], b[j1:j2]) for op, i1, i2, j1, j2 in sm.get_opcodes() if op != "equal"]
