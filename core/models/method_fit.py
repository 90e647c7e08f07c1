"""Which fine-tuning method fits which GPU memory, for a catalog model before it is downloaded.

The memory estimate (``core.models.estimate``) of the entry's config.json sizes with each method's default
settings (batch 1, max_length 2048, packed, LoRA r 64), one GPU, no DeepSpeed, against common GPU sizes.
"""
from __future__ import annotations

from typing import Optional

from core.models.estimate import GIB, estimate, shape_from_config
from core.train.hyperparams import METHODS, defaults

GPU_SIZES_GB = (8, 12, 16, 24, 32, 40, 48, 80, 96, 141, 192)  # common single-GPU memory sizes


def method_fits(entry) -> dict[str, Optional[int]]:
    """Method → the smallest common GPU size (GB) its training fits on; None: more than one GPU.
    Empty when the entry has no config sizes."""
    if not entry.config:
        return {}
    shape = shape_from_config(entry.config)
    shape.remote_code = entry.remote_code  # its own code: eager attention assumed
    fits: dict[str, Optional[int]] = {}
    for method in METHODS:
        need = estimate(shape, method, defaults(method)).with_overhead
        fits[method] = next((gb for gb in GPU_SIZES_GB if need <= gb * GIB), None)
    return fits
