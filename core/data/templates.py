"""Prompt templates: names, text (for formatting without importing xtuner), detection and the token check.

``prompt_templates.json`` (beside this module) is a copy of ``xtuner.utils.PROMPT_TEMPLATE`` (XTuner 0.2.0); a unit
test checks they stay identical, so chat formatting in the app matches what training saw.
``studio_templates.json`` adds the families XTuner 0.2.0 has no template for (Qwen3 non-thinking, Gemma 3,
Phi-4-mini, the DeepSeek-R1 distills), written from each family's chat template (``chat_templates/``); a
generated config carries those as a Python literal dict. ``template_dict`` is the one definition that
training, the evaluation hook and chat all use.
"""
from __future__ import annotations

import json
from pathlib import Path

_HERE = Path(__file__).parent
# name -> dict(SYSTEM, INSTRUCTION, SUFFIX, SEP, STOP_WORDS, ...): all of XTuner 0.2.0's templates.
XTUNER_TEMPLATES: dict[str, dict] = json.loads((_HERE / "prompt_templates.json").read_text(encoding="utf-8"))
# Templates XTuner 0.2.0 lacks; a config carries them as a literal dict.
STUDIO_TEMPLATES: dict[str, dict] = json.loads((_HERE / "studio_templates.json").read_text(encoding="utf-8"))
PROMPT_TEMPLATES: dict[str, dict] = {**XTUNER_TEMPLATES, **STUDIO_TEMPLATES}

# model_type in config.json -> template
_BY_MODEL_TYPE = {
    "qwen2": "qwen_chat",
    "qwen2_moe": "qwen_chat",
    "qwen": "qwen_chat",
    "qwen3": "qwen3_chat",
    "qwen3_moe": "qwen3_chat",
    "internlm2": "internlm2_chat",
    "internlm3": "internlm2_chat",
    "internlm": "internlm2_chat",
    "llama": "llama3_chat",
    "mistral": "mistral",
    "mixtral": "mistral",
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma3",
    "gemma3_text": "gemma3",
    "phi3": "phi3_chat",
    "deepseek_v2": "deepseek_v2",
}

# Templates of models that can think before they answer (Qwen3): the empty think block that opens the answer
# is how their chat template turns thinking off (``enable_thinking=False``), and what training uses.
NO_THINKING = {"qwen3_chat": "<think>\n\n</think>\n\n"}


def template_names() -> list[str]:
    return sorted(PROMPT_TEMPLATES)


def template_dict(name: str) -> dict:
    """The template ``name`` as training, evaluation during training and chat all use it."""
    return dict(PROMPT_TEMPLATES[name])


def is_studio_template(name: str) -> bool:
    """True for a template XTuner 0.2.0 lacks (the generated config carries it as a literal)."""
    return name in STUDIO_TEMPLATES and name not in XTUNER_TEMPLATES


def can_think(template: str) -> bool:
    """True for a template whose model can think before answering (chat offers thinking on/off)."""
    return template in NO_THINKING


def format_prompt(template: str, user_input: str, system: str = "", history: list[tuple[str, str]] | None = None,
                  thinking: bool = False) -> str:
    """The text a model sees for one turn, exactly as XTuner formats it for training and chat.

    ``thinking`` (templates where ``can_think``): the answer is left open for the model's reasoning, as the chat
    template does with ``enable_thinking=True``; earlier turns keep the format they were trained in.
    """
    t = template_dict(template)
    text = ""
    if system and "SYSTEM" in t:
        text += t["SYSTEM"].format(system=system, round=1, bot_name="BOT")
    turns = list(history or []) + [(user_input, None)]
    for i, (q, a) in enumerate(turns, start=1):
        instruction = t["INSTRUCTION"]
        if a is None and thinking and can_think(template):
            instruction = instruction.removesuffix(NO_THINKING[template])
        text += instruction.format(input=q, round=i, bot_name="BOT")
        if a is not None:
            text += a + t.get("SUFFIX", "") + t.get("SEP", "")
    return text


def stop_words(template: str) -> list[str]:
    return list(template_dict(template).get("STOP_WORDS", []))


def detect_template(model_dir: str | Path) -> str | None:
    """Best XTuner template for a local Hugging Face model directory, or None if unknown."""
    cfg = Path(model_dir) / "config.json"
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model_type = str(data.get("model_type", "")).lower()
    tmpl = _BY_MODEL_TYPE.get(model_type)
    if model_type not in ("llama", "qwen2", "phi3"):
        return tmpl
    chat = _chat_template_text(Path(model_dir))
    if model_type == "llama" and "<|start_header_id|>" not in chat:
        return None
    if model_type == "qwen2" and "<｜Assistant｜>" in chat:  # a DeepSeek-R1 distill on a Qwen2 body
        return "deepseek_r1"
    if model_type == "phi3" and "<|im_sep|>" in chat:  # Phi-4 (14B): no template here
        return None
    if model_type == "phi3" and "'<|' + message['role'] + '|>' + message['content']" in chat:  # Phi-4-mini
        return "phi4_mini_chat"
    return tmpl


def _chat_template_text(model_dir: Path) -> str:
    try:
        chat = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8")).get("chat_template")
    except (OSError, ValueError, AttributeError):
        chat = None
    if not chat and (model_dir / "chat_template.jinja").is_file():
        chat = (model_dir / "chat_template.jinja").read_text(encoding="utf-8")
    return str(chat or "")
