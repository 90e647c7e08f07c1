"""A merged or fully fine-tuned model → one GGUF file for llama.cpp / Ollama / LM Studio (a job).

    <model folder's parent>/gguf/<QUANT>/      e.g. runs/<run>/exports/iter_N/gguf/Q8_0/
        job.json job.log
        model-<QUANT>.gguf    written as *.partial and renamed when complete
        Modelfile             Ollama's recipe beside it (core.deploy.gguf_modelfile)

The step is ``python -m core.deploy.gguf_convert`` (llama.cpp's converter, its quantizer for the
K-quants). The pieces come from the llama-cpp-python sdist, installed by scripts/ensure_env.sh:
``llama_cpp`` in the environment and the converter + gguf-py extracted to ``.llama.cpp/``.
"""
from __future__ import annotations

import ast
import json
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Optional

from core import jobs
from core.errors import UserError
from core.fsutil import DiskFull
from core.jobs import Job, Step
from core.paths import REPO_ROOT, python_executable

CONVERTER_DIR = REPO_ROOT / ".llama.cpp"
LLAMA_CPP_VERSION = "0.3.36"
INSTALL_LINE = "sudo apt-get install cmake build-essential && scripts/ensure_env.sh"
PARTIAL_SUFFIX = ".partial"
# written by llama.cpp's converter itself (its --outtype)
DIRECT_TYPES = {"F16": "f16", "BF16": "bf16", "Q8_0": "q8_0"}
# made from an F16 intermediate by llama.cpp's quantizer (llama_cpp constants)
K_QUANTS = {"Q6_K": "LLAMA_FTYPE_MOSTLY_Q6_K", "Q5_K_M": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
            "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}
QUANTS = list(DIRECT_TYPES) + list(K_QUANTS)
# bits per weight of each type (llama.cpp's block sizes; K_M mixes are llama.cpp's published averages)
BITS = {"F16": 16.0, "BF16": 16.0, "Q8_0": 8.5, "Q6_K": 6.56, "Q5_K_M": 5.69, "Q4_K_M": 4.89}
GGUF_RESERVE = 64 * 1024 * 1024  # free space kept beyond the estimate

E_NO_CONVERTER = "llama.cpp is not installed here ({missing}). It is compiled from source; install it with: `{line}`"
E_ARCH = "llama.cpp's converter does not know the architecture {arch}. It converts: {known}."
E_NOT_MODEL = "{path} is not a whole Hugging Face model (config.json and weights): merge an adapter first."
E_QUANT = "Unknown GGUF type {quant}; choose one of {known}."
MESSAGES = [E_NO_CONVERTER, E_ARCH, E_NOT_MODEL, E_QUANT]


def converter_missing() -> Optional[str]:
    """What of llama.cpp's pieces is missing here (None: export can run)."""
    import importlib.util

    if not (CONVERTER_DIR / "convert_hf_to_gguf.py").is_file():
        return f"{CONVERTER_DIR}/convert_hf_to_gguf.py"
    if importlib.util.find_spec("llama_cpp") is None:
        return f"the llama_cpp package (llama-cpp-python=={LLAMA_CPP_VERSION})"
    return None


def check_installed() -> None:
    missing = converter_missing()
    if missing:
        raise UserError(E_NO_CONVERTER, missing=missing, line=INSTALL_LINE)


@lru_cache(maxsize=1)
def supported_architectures() -> tuple[str, ...]:
    """The HF architectures llama.cpp's converter registers (read from its source, never imported here)."""
    names = set()
    for f in sorted((CONVERTER_DIR / "conversion").glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "register" \
                    and getattr(node.func, "value", None) is not None \
                    and getattr(node.func.value, "id", "") == "ModelBase":
                names.update(a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return tuple(sorted(names))


def model_architecture(model_dir: Path) -> str:
    cfg = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    archs = cfg.get("architectures") or [cfg.get("model_type", "?")]
    return archs[0]


def check_model(model_dir: Path) -> None:
    """A whole HF model whose architecture the converter knows, or a UserError saying which ones it knows."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file() or not (any(model_dir.glob("*.safetensors"))
                                                          or any(model_dir.glob("*.bin"))):
        raise UserError(E_NOT_MODEL, path=str(model_dir))
    arch = model_architecture(model_dir)
    known = supported_architectures()
    if arch not in known:
        causal = [a for a in known if a.endswith("ForCausalLM")]
        raise UserError(E_ARCH, arch=arch, known=", ".join(causal))


def estimate_bytes(model_dir: Path, quant: str) -> int:
    """The GGUF's size before export: parameters × bits per weight, plus the vocabulary."""
    from core.models.estimate import model_shape

    params = model_shape(model_dir).total_params
    vocab = sum(f.stat().st_size for f in Path(model_dir).glob("tokenizer*.json"))
    return int(params * BITS[quant] / 8) + vocab


def gguf_job_dir(model_dir: Path, quant: str) -> Path:
    return Path(model_dir).parent / "gguf" / quant


def gguf_path(job_dir: Path, quant: str) -> Path:
    return Path(job_dir) / f"model-{quant}.gguf"


def start_gguf_export(model_dir: str | Path, quant: str, system: str = "", name: str = "model",
                      template: Optional[str] = None, job_dir: Optional[Path] = None) -> Job:
    """Export ``model_dir`` to GGUF ``quant`` with a Modelfile (``system``: its SYSTEM; ``template``: the
    XTuner prompt template of its TEMPLATE, default the one detected; ``name``: the Ollama model name).
    Checks the pieces, the architecture and the free space first."""
    if quant not in QUANTS:
        raise UserError(E_QUANT, quant=quant, known=", ".join(QUANTS))
    check_installed()
    model_dir = Path(model_dir).resolve()
    check_model(model_dir)
    job_dir = Path(job_dir or gguf_job_dir(model_dir, quant))
    job_dir.mkdir(parents=True, exist_ok=True)
    # a K-quant holds its F16 intermediate and the result at once
    needs = estimate_bytes(model_dir, quant) + (estimate_bytes(model_dir, "F16") if quant in K_QUANTS else 0)
    if shutil.disk_usage(job_dir).free < needs + GGUF_RESERVE:
        raise DiskFull(job_dir, needs + GGUF_RESERVE)
    py = python_executable()
    out = gguf_path(job_dir, quant)
    step = Step(
        name=f"gguf {quant}",
        argv=[py, "-m", "core.deploy.gguf_convert", str(model_dir), str(out), quant, f"--system={system}",
              f"--name={name}"] + ([f"--template={template}"] if template else []),
        cwd=str(REPO_ROOT),
        cleanup_argv=[py, "-m", "core.deploy.gguf_convert", "clean", str(job_dir)],
    )
    return jobs.start_job(job_dir, [step], kind="gguf", title=f"GGUF {quant}",
                          meta={"model": str(model_dir), "quant": quant, "estimate_bytes": needs,
                                "needs_bytes": needs})


def clean(job_dir: Path) -> list[Path]:
    """Remove a failed or stopped export's partial files (only ``*.partial`` in a gguf job folder)."""
    removed = []
    for f in Path(job_dir).glob(f"*{PARTIAL_SUFFIX}"):
        f.unlink(missing_ok=True)
        removed.append(f)
    return removed


def finished_gguf(job_dir: Path) -> Optional[Path]:
    """The GGUF of a succeeded export in ``job_dir``, or None."""
    job = jobs.read_job(job_dir)
    if job is None or job.state != "succeeded":
        return None
    path = gguf_path(job_dir, job.meta.get("quant", ""))
    return path if path.is_file() else None


def metadata(path: Path) -> dict:
    """The GGUF's key/value metadata as Python values (llama.cpp's own gguf-py reader)."""
    import sys

    if str(CONVERTER_DIR / "gguf-py") not in sys.path:  # appended: gguf-py also holds a `tests` package
        sys.path.append(str(CONVERTER_DIR / "gguf-py"))
    from gguf import GGUFReader
    from gguf.constants import GGUFValueType

    out = {}
    for key, field in GGUFReader(str(path)).fields.items():
        if not field.types:
            continue
        if field.types[0] == GGUFValueType.ARRAY:
            if key.startswith("tokenizer.ggml.") and key != "tokenizer.ggml.pre":
                continue  # the vocabulary itself: large and not needed here
            out[key] = field.contents()
        else:
            out[key] = field.contents()
    return out
