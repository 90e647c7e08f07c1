"""Check a local Hugging Face model folder without loading it (no torch, no transformers).

Reads config.json, the tokenizer's files and the safetensors headers (parameter count and dtype
without reading the weights), finds the XTuner prompt template and cross-checks it: a sample
conversation is rendered with the XTuner template and with the tokenizer's own ``chat_template``
(Jinja, sandboxed) and the differences are reported. Nothing in the folder is executed: a model
that needs its own code (``auto_map``) is only reported, to be trusted by the user's opt-in.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from core.data import chatrender
from core.fsutil import dir_size
from core.data.templates import PROMPT_TEMPLATES, detect_template
from core.models import families

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
               "F8_E4M3": 1, "F8_E5M2": 1}
TORCH_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
GOOD_MATCH = 0.9  # similarity above which a template counts as the model's own

# English texts (i18n keys)
M_NOT_DIR = "{path} is not a folder. Give the folder that holds config.json."
M_NO_CONFIG = "{path} has no config.json: this is not a Hugging Face model folder."
M_BAD_CONFIG = "{file} is not valid JSON ({error}): download the model again, or fix the file."
M_NO_TOKENIZER = "No tokenizer files here (expected one of {files})."
M_NO_WEIGHTS = "No weights here (*.safetensors or *.bin)."
M_MISSING_SHARDS = "The weight index lists files that are missing ({files}): the download is incomplete."
M_BAD_SAFETENSORS = "{file} is damaged or truncated ({error}): download it again."
M_PARTIAL = "Partial download files are present ({count}): the download did not finish."
M_NOT_CAUSAL = "Architecture {arch} is not a causal language model; XTuner fine-tunes causal LMs."
M_NO_TEMPLATE = "No XTuner prompt template matched this model: choose one by hand."
M_REMOTE_CODE = ("This model needs its own Python code ({files}): it runs only if you trust its source "
                 "(trust_remote_code).")
M_QUANTIZED = ("The weights are already quantized ({method}): XTuner fine-tunes 16/32-bit weights (QLoRA "
               "quantizes them itself). Use the original model.")
M_NO_BOS = ("The tokenizer has no bos_token: XTuner adds a BOS token to every sample for this tokenizer class "
            "and will fail. Use a tokenizer with a bos_token.")
M_NO_CHAT_TEMPLATE = ("{file} has no chat_template (a base model's tokenizer?), so the prompt template cannot be "
                      "checked against it: use the chat/instruct model, or choose the template by hand.")
M_TYPE_NEEDS_NEWER = ("{file}: model_type {model_type} ({family}) needs transformers {since} or newer; this environment "
                      "has {version}, so XTuner cannot load it. Update the environment (requirements.txt).")
M_TYPE_UNKNOWN = ("{file}: model_type {model_type} is unknown to transformers {version} here and to XTuner Studio. "
                  "It can only be fine-tuned with the model's own code (auto_map + trust_remote_code).")
M_NO_MODEL_TYPE = "{file} has no model_type: transformers cannot tell which architecture to build."
M_BAD_CONFIG_FIELD = ("{file}: {field} is {value}, which transformers cannot build a model from (a positive whole "
                      "number is needed): download the model again, or fix the file.")
M_BAD_MODEL_TYPE = "{file}: model_type is {value}, not a name: download the model again, or fix the file."
SIZE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
               "vocab_size")
M_TEMPLATE_DIFFERS = ("The {template} template renders the sample conversation differently from the model's own "
                      "chat_template ({percent}% alike): see the differences.")
M_CHAT_TEMPLATE_FAILED = "The model's chat_template could not render the sample: {error}"
MESSAGES = [v for k, v in dict(globals()).items() if k.startswith("M_") and isinstance(v, str)]


@dataclass
class Note:
    text: str
    params: dict = field(default_factory=dict)

    @property
    def message(self) -> str:
        return self.text.format(**self.params)

    def __str__(self) -> str:
        return self.message


@dataclass
class TokenizerInfo:
    tokenizer_class: Optional[str] = None
    bos: str = ""
    eos: str = ""
    chat_template: Optional[str] = None
    has_tokenizer_json: bool = False
    special: dict = field(default_factory=dict)  # bos_token, eos_token, … for chat templates

    @property
    def xtuner_bos(self) -> str:
        """The BOS text XTuner puts before each sample (none for Qwen tokenizers)."""
        return "" if (self.tokenizer_class or "") in chatrender.NO_BOS_TOKENIZERS else self.bos


@dataclass
class TemplateCheck:
    template: str
    xtuner_text: str
    model_text: str
    similarity: float
    differences: list[tuple[str, str, str]]
    candidates: list[tuple[str, float]]  # best XTuner templates by similarity


@dataclass
class ModelReport:
    path: Path
    ok: bool
    errors: list[Note] = field(default_factory=list)
    warnings: list[Note] = field(default_factory=list)
    architecture: Optional[str] = None
    model_type: Optional[str] = None
    family: Optional[str] = None  # the family's label (core.models.families)
    moe: bool = False  # mixture of experts
    template: Optional[str] = None
    template_source: Optional[str] = None  # "model type", "chat template"
    size_bytes: int = 0
    needs_remote_code: bool = False
    remote_code_files: list[str] = field(default_factory=list)
    params: Optional[int] = None
    params_source: Optional[str] = None  # "safetensors headers", "estimated from file size"
    dtype: Optional[str] = None
    weight_files: list[str] = field(default_factory=list)
    hidden_size: Optional[int] = None
    layers: Optional[int] = None
    vocab_size: Optional[int] = None
    context: Optional[int] = None
    tokenizer: TokenizerInfo = field(default_factory=TokenizerInfo)
    check: Optional[TemplateCheck] = None

    def error(self, text: str, **params) -> None:
        self.errors.append(Note(text, params))

    def warn(self, text: str, **params) -> None:
        self.warnings.append(Note(text, params))


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _token_text(value) -> str:
    if isinstance(value, dict):
        return str(value.get("content") or "")
    return value if isinstance(value, str) else ""


def read_tokenizer_info(path: Path) -> TokenizerInfo:
    cfg = _read_json(path / "tokenizer_config.json") or {}
    special = _read_json(path / "special_tokens_map.json") or {}
    info = TokenizerInfo(tokenizer_class=cfg.get("tokenizer_class"),
                         has_tokenizer_json=(path / "tokenizer.json").is_file())
    for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
        text = _token_text(cfg.get(key)) or _token_text(special.get(key))
        info.special[key] = text
    info.bos, info.eos = info.special["bos_token"], info.special["eos_token"]
    tmpl = cfg.get("chat_template")
    if isinstance(tmpl, list):  # named templates: take "default"
        tmpl = next((t.get("template") for t in tmpl if isinstance(t, dict) and t.get("name") == "default"), None)
    if not tmpl and (path / "chat_template.jinja").is_file():
        tmpl = (path / "chat_template.jinja").read_text(encoding="utf-8")
    if not tmpl:
        tmpl = (_read_json(path / "chat_template.json") or {}).get("chat_template")
    info.chat_template = tmpl if isinstance(tmpl, str) and tmpl.strip() else None
    return info


def safetensors_header(path: Path) -> dict:
    """The JSON header of a .safetensors file (tensor names → dtype, shape, offsets), read without the data."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise ValueError("shorter than a header")
        n = int.from_bytes(raw, "little")
        if n <= 0 or n > min(size - 8, 100 * 1024 * 1024):
            raise ValueError(f"header length {n} does not fit the file")
        header = json.loads(f.read(n))
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise ValueError(f"the file has {size} bytes but its tensors need {8 + n + end}")
    return header


def _count_params(report: ModelReport, path: Path, cfg: dict) -> None:
    st_files = sorted(path.glob("*.safetensors"))
    if st_files:
        total = 0
        by_dtype: dict[str, int] = {}
        for f in st_files:
            try:
                header = safetensors_header(f)
            except (OSError, ValueError) as e:
                report.error(M_BAD_SAFETENSORS, file=f.name, error=str(e))
                return
            for name, t in header.items():
                if name == "__metadata__":
                    continue
                n = math.prod(t["shape"])
                total += n
                by_dtype[t["dtype"]] = by_dtype.get(t["dtype"], 0) + n
        report.params, report.params_source = total, "safetensors headers"
        if by_dtype:
            report.dtype = max(by_dtype, key=by_dtype.get).lower().replace("bf16", "bfloat16").replace(
                "f16", "float16").replace("f32", "float32")
        return
    bins = [p for pat in ("*.bin", "*.pt", "*.pth") for p in path.glob(pat)]
    size = sum(p.stat().st_size for p in bins)
    per = TORCH_DTYPE_BYTES.get(str(cfg.get("torch_dtype")), 2)
    if size:
        report.params, report.params_source = size // per, "estimated from file size"


def _check_index(report: ModelReport, path: Path) -> None:
    for index in list(path.glob("*.safetensors.index.json")) + list(path.glob("*.bin.index.json")):
        data = _read_json(index) or {}
        shards = sorted(set((data.get("weight_map") or {}).values()))
        missing = [s for s in shards if not (path / s).is_file()]
        if missing:
            report.error(M_MISSING_SHARDS, files=", ".join(missing[:3]) + (" …" if len(missing) > 3 else ""))


def _match_template(report: ModelReport, path: Path) -> None:
    by_type = detect_template(path)
    tok = report.tokenizer
    if tok.chat_template is None:
        report.template, report.template_source = by_type, "model type" if by_type else None
        if by_type:
            report.warn(M_NO_CHAT_TEMPLATE, file=str(path / "tokenizer_config.json"))
        return
    messages = chatrender.SAMPLE
    try:
        model_text = chatrender.render_chat_template(tok.chat_template, messages, tok.special)
    except chatrender.ChatTemplateError:
        messages = chatrender.SAMPLE[1:]  # some templates (Gemma) refuse a system message
        try:
            model_text = chatrender.render_chat_template(tok.chat_template, messages, tok.special)
        except chatrender.ChatTemplateError as e:
            report.template, report.template_source = by_type, "model type" if by_type else None
            report.warn(M_CHAT_TEMPLATE_FAILED, error=str(e))
            return
    scores = []
    for name in PROMPT_TEMPLATES:
        text = chatrender.render_xtuner(messages, name, tok.xtuner_bos, tok.eos)
        scores.append((chatrender.similarity(text, model_text), name, text))
    scores.sort(key=lambda s: (-s[0], s[1]))
    best_score, best, _ = scores[0]
    chosen, source = by_type, "model type"
    own = next((s for s in scores if s[1] == by_type), None)
    if own is None or (own[0] < GOOD_MATCH and best_score >= GOOD_MATCH):
        chosen, source = (best, "chat template") if best_score >= 0.75 else (by_type, "model type")
    report.template, report.template_source = chosen, (source if chosen else None)
    if chosen:
        score, _, text = next(s for s in scores if s[1] == chosen)
        report.check = TemplateCheck(chosen, text, model_text, score, chatrender.differences(text, model_text),
                                     [(n, round(s, 3)) for s, n, _ in scores[:3]])
        if score < GOOD_MATCH:
            report.warn(M_TEMPLATE_DIFFERS, template=chosen, percent=round(score * 100))


MOE_KEYS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")


def _check_model_type(report: ModelReport, cfg_path: Path, cfg: dict) -> None:
    """Name the family, flag mixture-of-experts, and say when this transformers cannot build the model."""
    report.moe = any(isinstance(cfg.get(k), int) and cfg[k] > 1 for k in MOE_KEYS)
    if not report.model_type:
        report.warn(M_NO_MODEL_TYPE, file=str(cfg_path))
        return
    fam = families.family_of(report.model_type, detect_template(cfg_path.parent))
    report.family = fam.label if fam else None
    known = families.known_model_types()
    if not known or report.model_type in known or report.needs_remote_code:
        return
    version = families.transformers_version() or "?"
    if fam and fam.since:
        report.error(M_TYPE_NEEDS_NEWER, file=str(cfg_path), model_type=report.model_type, family=fam.label,
                     since=fam.since, version=version)
    else:
        report.error(M_TYPE_UNKNOWN, file=str(cfg_path), model_type=report.model_type, version=version)


def inspect_model(path: str | Path) -> ModelReport:
    path = Path(path)
    report = ModelReport(path=path, ok=False)
    if not path.is_dir():
        report.error(M_NOT_DIR, path=str(path))
        return report
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        report.error(M_NO_CONFIG, path=str(path))
        return report
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        if not isinstance(cfg, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as e:
        report.error(M_BAD_CONFIG, file=str(cfg_path), error=str(e))
        return report
    for name in SIZE_FIELDS:  # what transformers' config class would take and the model then fail on
        value = cfg.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            report.error(M_BAD_CONFIG_FIELD, file=str(cfg_path), field=name, value=json.dumps(value))
    if cfg.get("model_type") is not None and not isinstance(cfg["model_type"], str):
        report.error(M_BAD_MODEL_TYPE, file=str(cfg_path), value=json.dumps(cfg["model_type"]))
    if report.errors:
        return report
    archs = cfg.get("architectures") or []
    report.architecture = archs[0] if archs else None
    report.model_type = cfg.get("model_type")
    report.hidden_size = cfg.get("hidden_size")
    report.layers = cfg.get("num_hidden_layers")
    report.vocab_size = cfg.get("vocab_size")
    report.context = cfg.get("max_position_embeddings")
    report.dtype = cfg.get("torch_dtype")
    report.tokenizer = read_tokenizer_info(path)
    tok_cfg = _read_json(path / "tokenizer_config.json") or {}
    report.remote_code_files = sorted(p.name for p in path.glob("*.py"))
    report.needs_remote_code = bool(cfg.get("auto_map") or tok_cfg.get("auto_map"))
    _check_model_type(report, cfg_path, cfg)
    if not any((path / f).exists() for f in TOKENIZER_FILES):
        report.error(M_NO_TOKENIZER, files=", ".join(TOKENIZER_FILES))
    report.weight_files = sorted(p.name for pat in WEIGHT_PATTERNS for p in path.glob(pat))
    if not report.weight_files:
        report.error(M_NO_WEIGHTS)
    _check_index(report, path)
    _count_params(report, path, cfg)
    partials = list(path.rglob("*.incomplete"))
    if partials:
        report.warn(M_PARTIAL, count=len(partials))
    if report.architecture and not report.architecture.endswith("ForCausalLM"):
        report.warn(M_NOT_CAUSAL, arch=report.architecture)
    quant = cfg.get("quantization_config")
    if isinstance(quant, dict):
        report.warn(M_QUANTIZED, method=quant.get("quant_method") or "quantized")
    if not report.tokenizer.xtuner_bos and (report.tokenizer.tokenizer_class or "") not in \
            chatrender.NO_BOS_TOKENIZERS and report.tokenizer.tokenizer_class and report.model_type != "chatglm":
        report.warn(M_NO_BOS)
    _match_template(report, path)
    if report.template is None:
        report.warn(M_NO_TEMPLATE)
    if report.needs_remote_code:
        report.warn(M_REMOTE_CODE, files=", ".join(report.remote_code_files) or "auto_map")
    report.size_bytes = dir_size(path)
    report.ok = not report.errors
    return report
