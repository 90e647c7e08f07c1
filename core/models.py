"""Check a local Hugging Face model directory without loading it (no torch import)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from core.fsutil import dir_size
from core.templates import detect_template

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


@dataclass
class ModelReport:
    path: Path
    ok: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    architecture: str | None = None
    model_type: str | None = None
    template: str | None = None
    size_bytes: int = 0
    needs_remote_code: bool = False


def inspect_model(path: str | Path) -> ModelReport:
    path = Path(path)
    report = ModelReport(path=path, ok=False)
    if not path.is_dir():
        report.errors.append(f"{path} is not a directory. Give the folder that holds config.json.")
        return report
    cfg_path = path / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        report.errors.append(f"{cfg_path} is missing: this is not a Hugging Face model folder.")
        return report
    except ValueError as e:
        report.errors.append(f"{cfg_path} is not valid JSON ({e}).")
        return report
    archs = cfg.get("architectures") or []
    report.architecture = archs[0] if archs else None
    report.model_type = cfg.get("model_type")
    report.needs_remote_code = bool(cfg.get("auto_map"))
    if not any((path / f).exists() for f in TOKENIZER_FILES):
        report.errors.append(f"No tokenizer files in {path} (expected one of {', '.join(TOKENIZER_FILES)}).")
    if not any(any(path.glob(p)) for p in WEIGHT_PATTERNS):
        report.errors.append(f"No weights in {path} (*.safetensors or *.bin).")
    if report.architecture and not report.architecture.endswith("ForCausalLM"):
        report.warnings.append(f"Architecture {report.architecture} is not a causal LM; XTuner fine-tunes causal LMs.")
    report.template = detect_template(path)
    if report.template is None:
        report.warnings.append("No XTuner prompt template matched this model: choose one by hand.")
    if report.needs_remote_code:
        report.warnings.append("This model needs its own code (trust_remote_code): only load it if you trust its source.")
    report.size_bytes = dir_size(path)
    report.ok = not report.errors
    return report
