"""Run one XTuner 0.2.0 tool module in this interpreter, with the fixes it needs here.

    python -m core.train.xtuner_entry train CONFIG [xtuner train args...]
    python -m core.train.xtuner_entry pth_to_hf CONFIG PTH OUT [...]
    python -m core.train.xtuner_entry merge BASE ADAPTER OUT [...]

Why not the ``xtuner`` command: it re-launches ``python`` from PATH and always exits 0, even
when training crashed. Running the tool module here gives the real exit code and the real PID,
and lets the fixes below run inside the process before the tool:

- ``torch.cpu.is_bf16_supported`` is missing on CPU builds, and xtuner/model/sft.py calls it;
- torch ≥ 2.6 loads checkpoints ``weights_only`` by default, which breaks ``--resume``;
- on a machine without CUDA, mmengine's torchrun setup calls ``torch.cuda.set_device`` before
  ``init_process_group``: made a no-op there, so several CPU processes train over ``gloo`` (how the
  multi-process launch path is tested without a GPU). Nothing changes where CUDA is available.

Under ``torchrun`` every worker runs this module, so every rank gets the same fixes.
"""
from __future__ import annotations

import os
import runpy
import sys

TOOLS = {
    "train": "xtuner.tools.train",
    "pth_to_hf": "xtuner.tools.model_converters.pth_to_hf",
    "merge": "xtuner.tools.model_converters.merge",
    "chat": "xtuner.tools.chat",
}


def apply_runtime_fixes() -> None:
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    import torch

    if not hasattr(torch.cpu, "is_bf16_supported"):
        torch.cpu.is_bf16_supported = lambda *args, **kwargs: False
    if "LOCAL_RANK" in os.environ and not torch.cuda.is_available():
        torch.cuda.set_device = lambda *args, **kwargs: None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in TOOLS:
        print(f"usage: python -m core.train.xtuner_entry {{{','.join(TOOLS)}}} ARGS...", file=sys.stderr)
        return 2
    tool, args = argv[0], argv[1:]
    apply_runtime_fixes()
    module = TOOLS[tool]
    sys.argv = [module] + args
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
