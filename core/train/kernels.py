"""Fused GPU kernels (Liger) applied inside the training process, before the model is built.

``python -m core.train.xtuner_entry train`` calls ``apply(config_values)``. With the setting
``fused_kernels`` on, Liger's patch for the model's family (its own table,
``MODEL_TYPE_TO_APPLY_LIGER_FN``: Llama, Qwen2/3, Gemma 2/3, Mistral, Phi-3, …) replaces RMSNorm,
RoPE, SwiGLU and the output head + cross-entropy (fused: the logits are never held whole) in the
transformers classes. Anything in the way — the CPU, the package missing or failing to import, a
family Liger does not cover, a kernel failing its probe on this GPU — leaves the model as it is with
one fallback line; training never fails for it. ``liger-kernel==0.7.0`` is the last release for
transformers 4.x (0.8 needs transformers 5).
"""
from __future__ import annotations

import json
from pathlib import Path

from core.train import fallbacks

F_CPU = "Fused kernels are off: they need an NVIDIA GPU, and this run trains on the CPU."
F_MISSING = "Fused kernels are off: the liger-kernel package is not installed (pip install liger-kernel==0.7.0)."
F_IMPORT = "Fused kernels are off: liger-kernel failed to import ({error})."
F_ARCH = "Fused kernels are off: Liger has no kernels for {model_type} models."
F_FAILED = "Fused kernels are off: they failed on this GPU ({error})."
MESSAGES = [F_CPU, F_MISSING, F_IMPORT, F_ARCH, F_FAILED]


def _model_type(model_path: str | None) -> str:
    try:
        return str(json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8")).get("model_type"))
    except (OSError, ValueError, TypeError):
        return "unknown"


def _probe() -> None:
    """One Liger RMSNorm forward + backward on the GPU: a kernel that cannot compile here fails now."""
    import torch
    from liger_kernel.transformers import LigerRMSNorm

    norm = LigerRMSNorm(64).cuda()
    x = torch.randn(4, 64, device="cuda", requires_grad=True)
    norm(x).sum().backward()
    torch.cuda.synchronize()


def apply(values: dict) -> bool:
    """Apply the fused kernels a config asks for (``studio_fused_kernels``); True when applied."""
    if not values.get("studio_fused_kernels"):
        return False
    import torch

    if not torch.cuda.is_available():
        fallbacks.announce(F_CPU)
        return False
    try:
        from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] == "liger_kernel":
            fallbacks.announce(F_MISSING)
        else:
            fallbacks.announce(F_IMPORT, {"error": f"{type(e).__name__}: {e}"})
        return False
    except Exception as e:  # noqa: BLE001 - any import failure falls back
        fallbacks.announce(F_IMPORT, {"error": f"{type(e).__name__}: {e}"})
        return False
    model_type = _model_type(values.get("pretrained_model_name_or_path"))
    patch = MODEL_TYPE_TO_APPLY_LIGER_FN.get(model_type)
    if patch is None:
        fallbacks.announce(F_ARCH, {"model_type": model_type})
        return False
    try:
        _probe()
        patch()
    except Exception as e:  # noqa: BLE001 - a kernel that fails here must not fail the run
        fallbacks.announce(F_FAILED, {"error": f"{type(e).__name__}: {e}"})
        return False
    print(f"fused kernels: Liger applied to {model_type} models", flush=True)
    return True
