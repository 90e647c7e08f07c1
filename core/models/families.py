"""The model families the app knows: model_type → family, prompt template, the transformers version that
first knows the type, remote code, mixture of experts. No transformers import: what this environment's
transformers knows is read from its source text (``known_model_types``).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class Family:
    key: str  # the name ``python -m core.smoke --arch`` takes
    label: str
    model_types: tuple[str, ...]
    template: Optional[str]  # prompt template (core/data/templates.py)
    since: str  # first transformers release that knows the model type ("" = remote code only)
    chat_template: Optional[str] = None  # core/data/chat_templates/<name>.jinja (the tiny model's tokenizer)
    remote_code: bool = False  # the model's own Python code runs (trust_remote_code)
    moe: bool = False


FAMILIES: tuple[Family, ...] = (
    Family("qwen2", "Qwen2 / Qwen2.5", ("qwen2",), "qwen_chat", "4.37.0", "qwen2"),
    Family("qwen3", "Qwen3 (dense)", ("qwen3",), "qwen3_chat", "4.51.0", "qwen3"),
    Family("qwen3_moe", "Qwen3-MoE (e.g. Qwen3-30B-A3B)", ("qwen3_moe",), "qwen3_chat", "4.51.0", "qwen3", moe=True),
    Family("llama3", "Llama 3.x", ("llama",), "llama3_chat", "4.40.0", "llama3"),
    Family("mistral", "Mistral", ("mistral",), "mistral", "4.34.0", "mistral"),
    Family("gemma2", "Gemma 2", ("gemma2",), "gemma", "4.42.0", "gemma2"),
    Family("gemma3", "Gemma 3 (text)", ("gemma3_text", "gemma3"), "gemma3", "4.50.0", "gemma3"),
    Family("phi3", "Phi-3 / Phi-3.5", ("phi3",), "phi3_chat", "4.40.0", "phi3"),
    Family("phi4_mini", "Phi-4-mini", ("phi3",), "phi4_mini_chat", "4.40.0", "phi4_mini"),
    Family("r1_distill", "DeepSeek-R1-Distill-Qwen", ("qwen2",), "deepseek_r1", "4.37.0", "deepseek_r1_distill"),
    Family("internlm3", "InternLM2 / InternLM3", ("internlm2", "internlm3"), "internlm2_chat", "", "internlm2",
           remote_code=True),
)
BY_KEY = {f.key: f for f in FAMILIES}


def family_of(model_type: str | None, template: str | None = None) -> Optional[Family]:
    """The family of a model_type (the template tells apart families that share one, e.g. R1 distills)."""
    matches = [f for f in FAMILIES if model_type and model_type.lower() in f.model_types]
    for f in matches:
        if template and f.template == template:
            return f
    return matches[0] if matches else None


def transformers_version() -> Optional[str]:
    try:
        return importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def known_model_types() -> frozenset[str]:
    """The model_types this environment's transformers can build (read from its auto-config table, not imported)."""
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.origin:
        return frozenset()
    table = Path(spec.origin).parent / "models" / "auto" / "configuration_auto.py"
    try:
        text = table.read_text(encoding="utf-8")
    except OSError:
        return frozenset()
    start = text.find("CONFIG_MAPPING_NAMES")
    end = text.find("])", start)
    return frozenset(re.findall(r'\(\s*"([a-z0-9_\-]+)"\s*,\s*"[A-Za-z0-9_]+Config"\s*\)', text[start:end]))


def trainable_here(family: Family) -> bool:
    """This environment's transformers has the family's model code (remote-code families never do)."""
    if family.remote_code:
        return False
    return family.model_types[0] in known_model_types()
