"""Environment doctor: what this machine has and whether each part of the stack works here.

Two halves:
- ``quick_facts()`` — instant, import-free: GPUs (NVML), package versions (metadata), disk.
- the *probe* — ``python -m core.machine.doctor probe OUT.json`` — imports torch, transformers, xtuner,
  mmengine, peft, bitsandbytes and deepspeed and runs a tiny operation with each, in its own
  process (run as a job, never in the app's server). Its result is cached per environment
  fingerprint, so it runs once per machine/environment.
"""
from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from core.machine import system
from core.fsutil import atomic_write_json, read_state

PACKAGES = ["torch", "transformers", "xtuner", "mmengine", "peft", "bitsandbytes", "deepspeed",
            "accelerate", "datasets", "huggingface_hub", "modelscope", "streamlit"]


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cuda_driver_version() -> str | None:
    """The CUDA version the NVIDIA driver supports (e.g. '13.0'), via NVML; None without a driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            v = pynvml.nvmlSystemGetCudaDriverVersion()
        finally:
            pynvml.nvmlShutdown()
        return f"{v // 1000}.{(v % 1000) // 10}"
    except Exception:
        return None


@dataclass
class QuickFacts:
    python: str
    platform: str
    gpus: list[dict]
    cuda_driver: str | None
    packages: dict[str, str | None]
    cpu_count: int
    memory_total: int
    memory_available: int


def quick_facts() -> QuickFacts:
    total, avail = system.memory()
    return QuickFacts(
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
        gpus=[asdict(g) for g in system.gpus()],
        cuda_driver=cuda_driver_version(),
        packages=package_versions(),
        cpu_count=system.cpu_count(),
        memory_total=total,
        memory_available=avail,
    )


def fingerprint(facts: QuickFacts | None = None) -> str:
    """Changes when the environment or the GPUs change: the cached probe is then stale."""
    facts = facts or quick_facts()
    key = json.dumps([facts.python, facts.packages, [g["name"] for g in facts.gpus], facts.cuda_driver,
                      sys.executable], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


# --- the probe (runs in its own process) ---------------------------------------------------------

def _check(name: str, fn) -> dict:
    t0 = time.monotonic()
    try:
        detail = fn()
        return {"name": name, "ok": True, "detail": detail or "", "seconds": round(time.monotonic() - t0, 2)}
    except Exception as exc:  # the probe reports every failure, it never stops at one
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return {"name": name, "ok": False, "detail": last, "seconds": round(time.monotonic() - t0, 2)}


def _probe_torch():
    import torch

    x = torch.ones(4, 4) @ torch.ones(4, 4)
    assert float(x[0, 0]) == 4.0
    if torch.cuda.is_available():
        y = (torch.ones(256, 256, device="cuda") @ torch.ones(256, 256, device="cuda")).sum().item()
        assert y == 256 ** 3
        return (f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s), "
                f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}")
    return f"torch {torch.__version__}, CPU only (CUDA build {torch.version.cuda or 'none'}; no usable GPU)"


def _probe_transformers():
    import transformers
    from transformers import Qwen2Config, Qwen2ForCausalLM

    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1))
    import torch

    out = model(torch.tensor([[1, 2, 3]]))
    assert out.logits.shape == (1, 3, 32)
    return f"transformers {transformers.__version__}: built and ran a 1-layer model"


def _probe_xtuner():
    from core.train.xtuner_entry import apply_runtime_fixes

    apply_runtime_fixes()
    import xtuner
    from xtuner.model import SupervisedFinetune  # noqa: F401  (imports peft, mmengine, transformers)
    from xtuner.utils import PROMPT_TEMPLATE

    return f"xtuner {xtuner.__version__}: model and {len(PROMPT_TEMPLATE)} prompt templates import"


def _probe_mmengine():
    import mmengine
    from mmengine.runner import Runner  # noqa: F401

    return f"mmengine {mmengine.__version__}"


def _probe_peft():
    import peft
    import torch
    from peft import LoraConfig, get_peft_model

    base = torch.nn.Sequential(torch.nn.Linear(8, 8))
    model = get_peft_model(base, LoraConfig(r=2, target_modules=["0"]))
    model(torch.ones(1, 8))
    return f"peft {peft.__version__}: LoRA wrapped and ran a layer"


def _probe_bitsandbytes():
    import bitsandbytes as bnb
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(f"bitsandbytes {bnb.__version__} imports, but 4-bit QLoRA needs an NVIDIA GPU")
    layer = bnb.nn.Linear4bit(64, 64, compute_dtype=torch.float16, quant_type="nf4").cuda()
    out = layer(torch.ones(1, 64, device="cuda", dtype=torch.float16))
    assert out.shape == (1, 64)
    return f"bitsandbytes {bnb.__version__}: a 4-bit (nf4) layer ran on the GPU"


def _probe_deepspeed():
    import deepspeed
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(f"deepspeed {deepspeed.__version__} imports, but DeepSpeed training needs an NVIDIA GPU")
    from deepspeed.accelerator import get_accelerator

    return f"deepspeed {deepspeed.__version__}, accelerator {get_accelerator().device_name()}"


PROBES = [("torch", _probe_torch), ("transformers", _probe_transformers), ("mmengine", _probe_mmengine),
          ("peft", _probe_peft), ("xtuner", _probe_xtuner), ("bitsandbytes", _probe_bitsandbytes),
          ("deepspeed", _probe_deepspeed)]


def run_probe(out_path: str | Path) -> dict:
    facts = quick_facts()
    result = {
        "fingerprint": fingerprint(facts),
        "finished_at": time.time(),
        "checks": [_check(name, fn) for name, fn in PROBES],
    }
    atomic_write_json(out_path, result)
    return result


def cached_probe(path: str | Path) -> dict | None:
    """The cached probe result if it matches this environment, else None."""
    data = read_state(path)
    if not isinstance(data, dict) or data.get("fingerprint") != fingerprint():
        return None
    return data


def capabilities(facts: QuickFacts, probe: dict | None) -> list[tuple[str, bool, str, str]]:
    """(capability, available, reason, technical detail) — what the machine means for the user.

    ``capability`` and ``reason`` come from a fixed set of sentences (the UI translates them);
    ``detail`` is the probe's own output (versions, an error line), shown as is.
    """
    checks = {c["name"]: c for c in (probe or {}).get("checks", [])}
    has_gpu = bool(facts.gpus)

    def probed(name: str) -> tuple[bool | None, str]:
        c = checks.get(name)
        return (None, "") if c is None else (c["ok"], c["detail"])

    caps = []
    ok, detail = probed("xtuner")
    if ok is False:
        caps.append(("LoRA / full fine-tuning", False, "XTuner does not work in this environment", detail))
    elif has_gpu:
        caps.append(("LoRA / full fine-tuning", True, "on the GPU", detail))
    else:
        caps.append(("LoRA / full fine-tuning", True, "on the CPU: fine for the demo, slow for real models", detail))
    if not has_gpu:
        caps.append(("QLoRA", False, "needs an NVIDIA GPU (4-bit bitsandbytes)", ""))
        caps.append(("DeepSpeed", False, "needs an NVIDIA GPU", ""))
        return caps
    for cap, name in (("QLoRA", "bitsandbytes"), ("DeepSpeed", "deepspeed")):
        ok, detail = probed(name)
        reason = {None: "not checked yet: press Check every part now", True: "works here",
                  False: "unavailable here"}[ok]
        caps.append((cap, ok is not False, reason, detail))
    n = len(facts.gpus)
    caps.append(("Multi-GPU (torchrun)", n > 1, "several GPUs found" if n > 1 else "one GPU here", f"{n} GPU(s)"))
    return caps


REMOTE_CODE = "the model's own code (trust_remote_code)"


def architectures() -> list[tuple[str, bool, str]]:
    """(family, trainable with this environment's transformers, what it needs otherwise: ``REMOTE_CODE``
    or "transformers ≥ X") for each family the app knows; import-free."""
    from core.models import families

    out = []
    for f in families.FAMILIES:
        if f.remote_code:
            out.append((f.label, False, REMOTE_CODE))
        else:
            ok = families.trainable_here(f)
            out.append((f.label, ok, "" if ok else f"transformers ≥ {f.since}"))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2 or argv[0] != "probe":
        print("usage: python -m core.machine.doctor probe OUT.json", file=sys.stderr)
        return 2
    result = run_probe(argv[1])
    for c in result["checks"]:
        print(f"{'OK  ' if c['ok'] else 'FAIL'} {c['name']:<13} {c['detail']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
