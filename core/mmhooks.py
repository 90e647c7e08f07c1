"""Kept so that configs written before core/ had subpackages (``from core.mmhooks import …``) still
resume: the hooks live in ``core.train.mmhooks``."""
from core.train.mmhooks import StudioProgressHook, StudioStopHook, WarmupLinearLR  # noqa: F401
