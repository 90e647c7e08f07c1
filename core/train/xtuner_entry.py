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

Before ``train``, the config's fallbacks are printed and its fused kernels applied
(``core.train.kernels``). The config's prompt template is checked against the model's own chat template
(``core.data.template_check``): a template the app derived (XTuner has none for the family) that gives
different tokens stops the run with the differing text; for XTuner's own templates a difference is logged.
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


def check_prompt_template(config_path: str) -> str | None:
    """The reason not to train with this config's prompt template, or None (differences of XTuner's own
    templates are only printed)."""
    from pathlib import Path

    from core.data.template_check import check_template
    from core.data.templates import PROMPT_TEMPLATES, is_studio_template
    from core.train.configgen import literal_assignments

    values = literal_assignments(Path(config_path).read_text(encoding="utf-8"))
    name, model = values.get("studio_prompt_template"), values.get("pretrained_model_name_or_path")
    if name not in PROMPT_TEMPLATES or not model:
        return None
    from transformers import AutoTokenizer

    try:  # never the model's own code here: a tokenizer that needs it is not checked
        result = check_template(AutoTokenizer.from_pretrained(model, trust_remote_code=False), name)
    except Exception as e:  # noqa: BLE001 - the check must not break what trains without it
        if is_studio_template(name):
            return f"the {name} template could not be checked against {model}'s tokenizer: {e}"
        print(f"prompt template check ({name}): skipped ({type(e).__name__}: {e})", flush=True)
        return None
    for note in result.notes:
        print(f"prompt template check ({name}): {note}", flush=True)
    if result.ok:
        print(f"prompt template check ({name}): same tokens as the model's chat template", flush=True)
        return None
    message = result.message(str(Path(model) / "tokenizer_config.json"))
    if is_studio_template(name):
        return message
    print(f"prompt template check: {message}", flush=True)
    return None


def prepare_training(config_path: str) -> None:
    """Before the model is built: print the config's fallbacks (decided when it was written) and apply
    the fused kernels it asks for (or print why not)."""
    from pathlib import Path

    from core.train import fallbacks, kernels
    from core.train.configgen import literal_assignments

    values = literal_assignments(Path(config_path).read_text(encoding="utf-8"))
    for template, params in values.get("studio_fallbacks") or []:
        fallbacks.announce(template, params)
    kernels.apply(values)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in TOOLS:
        print(f"usage: python -m core.train.xtuner_entry {{{','.join(TOOLS)}}} ARGS...", file=sys.stderr)
        return 2
    tool, args = argv[0], argv[1:]
    apply_runtime_fixes()
    if tool == "train" and args:
        problem = check_prompt_template(args[0])
        if problem:
            print(f"error: {problem}", file=sys.stderr, flush=True)
            return 3
        prepare_training(args[0])
    module = TOOLS[tool]
    sys.argv = [module] + args
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
