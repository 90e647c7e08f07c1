"""XTuner prompt templates: names, text (for formatting without importing xtuner) and detection.

``prompt_templates.json`` (beside this module) is a copy of ``xtuner.utils.PROMPT_TEMPLATE`` (XTuner 0.2.0); a unit
test checks they stay identical, so chat formatting in the app matches what training saw.
"""
from __future__ import annotations

import json
from pathlib import Path

# name -> dict(SYSTEM, INSTRUCTION, SUFFIX, SEP, STOP_WORDS, ...): all of XTuner 0.2.0's templates.
PROMPT_TEMPLATES: dict[str, dict] = json.loads(
    (Path(__file__).parent / "prompt_templates.json").read_text(encoding="utf-8")
)

# model_type in config.json -> template
_BY_MODEL_TYPE = {
    "qwen2": "qwen_chat",
    "qwen2_moe": "qwen_chat",
    "qwen": "qwen_chat",
    "internlm2": "internlm2_chat",
    "internlm": "internlm2_chat",
    "llama": "llama3_chat",
    "mistral": "mistral",
    "mixtral": "mistral",
    "gemma": "gemma",
    "gemma2": "gemma",
    "phi3": "phi3_chat",
    "deepseek_v2": "deepseek_v2",
}


def template_names() -> list[str]:
    return sorted(PROMPT_TEMPLATES)


def format_prompt(template: str, user_input: str, system: str = "", history: list[tuple[str, str]] | None = None) -> str:
    """The text a model sees for one turn, exactly as XTuner formats it for training and chat."""
    t = PROMPT_TEMPLATES[template]
    text = ""
    if system and "SYSTEM" in t:
        text += t["SYSTEM"].format(system=system, round=1, bot_name="BOT")
    turns = list(history or []) + [(user_input, None)]
    for i, (q, a) in enumerate(turns, start=1):
        text += t["INSTRUCTION"].format(input=q, round=i, bot_name="BOT")
        if a is not None:
            text += a + t.get("SUFFIX", "") + t.get("SEP", "")
    return text


def stop_words(template: str) -> list[str]:
    return list(PROMPT_TEMPLATES[template].get("STOP_WORDS", []))


def detect_template(model_dir: str | Path) -> str | None:
    """Best XTuner template for a local Hugging Face model directory, or None if unknown."""
    cfg = Path(model_dir) / "config.json"
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model_type = str(data.get("model_type", "")).lower()
    tmpl = _BY_MODEL_TYPE.get(model_type)
    if model_type == "llama":
        tok_cfg = Path(model_dir) / "tokenizer_config.json"
        try:
            chat = json.loads(tok_cfg.read_text(encoding="utf-8")).get("chat_template") or ""
        except (OSError, ValueError):
            chat = ""
        if "<|start_header_id|>" not in str(chat):
            return None
    return tmpl
