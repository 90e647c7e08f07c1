"""Per-method starting points, taken from XTuner 0.2.0's own configs.

- QLoRA / LoRA: ``internlm2_chat_1_8b_qlora_alpaca_e3.py`` (lr 2e-4, r 64, alpha 16, dropout 0.1,
  batch 1 × accumulate 16, max_length 2048, warmup 3 %, 3 epochs, save every 500).
- Full: ``internlm2_chat_1_8b_full_alpaca_e3.py`` (lr 2e-5, otherwise the same schedule).
"""
from __future__ import annotations

from core.project import Hyperparams

PRESETS: dict[str, Hyperparams] = {
    "qlora": Hyperparams(),
    "lora": Hyperparams(),
    "full": Hyperparams(lr=2e-5),
}


def preset(method: str) -> Hyperparams:
    return PRESETS[method].model_copy(deep=True)
