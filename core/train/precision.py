"""Training precision by what the GPUs can do, decided from the machine facts (NVML, no torch import).

bf16 needs no loss scaling and is what XTuner's newer configs use; it runs natively on NVIDIA GPUs
of compute capability 8.0 and later (A100, H100, H200, RTX 30xx/40xx, L4, …), where
``torch.cuda.is_bf16_supported()`` is true. Older GPUs (V100, T4) train in fp16 with dynamic loss
scaling. The CPU always trains in fp32. The setting ``precision`` (auto / bf16 / fp16) chooses; bf16
asked for on a GPU without it falls back to fp16 with one line in the log and on the Train page.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

BF16_MIN_CAPABILITY = (8, 0)

# Shown on Configure (through ui.i18n.t) and, for a fallback, in the log and on the Train page.
N_BF16 = "bf16: this GPU supports it (no loss scaling)."
N_FP16 = "fp16 with dynamic loss scaling: this GPU has no bf16 (compute capability {capability})."
N_FP16_CHOSEN = "fp16 with dynamic loss scaling, as chosen."
N_BF16_CHOSEN = "bf16, as chosen (no GPU here to check that it has bf16)."
N_UNKNOWN = "No GPU here: a config for a GPU machine uses fp16 with dynamic loss scaling, which every GPU runs."
N_CPU = "The CPU trains in fp32."
F_NO_BF16 = ("bf16 was chosen but this GPU has none (compute capability {capability}): training in fp16 with "
             "dynamic loss scaling instead.")
MESSAGES = [N_BF16, N_FP16, N_FP16_CHOSEN, N_BF16_CHOSEN, N_UNKNOWN, N_CPU, F_NO_BF16]


@dataclass(frozen=True)
class Precision:
    dtype: str  # "bf16" | "fp16" | "fp32"
    note: str  # one of the N_* templates (why this dtype)
    params: dict
    fallback: Optional[str] = None  # F_NO_BF16 when the choice could not be honoured

    @property
    def torch_dtype(self) -> str:
        return {"bf16": "torch.bfloat16", "fp16": "torch.float16", "fp32": "torch.float32"}[self.dtype]

    @property
    def amp_dtype(self) -> str:
        return {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[self.dtype]


def gpu_capability(gpus: list) -> Optional[tuple[int, int]]:
    """The lowest compute capability of ``gpus`` (the run uses all of them), or None when unknown."""
    caps = [g.compute_capability for g in gpus if getattr(g, "compute_capability", None)]
    return min(caps) if caps and len(caps) == len(gpus) else None


def resolve(choice: str, device: str, capability: Optional[tuple[int, int]]) -> Precision:
    """The dtype a run trains in: ``choice`` (auto / bf16 / fp16) on ``device`` with GPUs of ``capability``."""
    if device != "cuda":
        return Precision("fp32", N_CPU, {})
    cap = f"{capability[0]}.{capability[1]}" if capability else "?"
    if choice == "fp16":
        return Precision("fp16", N_FP16_CHOSEN, {})
    if capability is None:  # a config written here for some other GPU machine
        return Precision("bf16", N_BF16_CHOSEN, {}) if choice == "bf16" else Precision("fp16", N_UNKNOWN, {})
    if tuple(capability) >= BF16_MIN_CAPABILITY:
        return Precision("bf16", N_BF16, {})
    return Precision("fp16", N_FP16, {"capability": cap}, fallback=F_NO_BF16 if choice == "bf16" else None)
