"""The one place each training hyperparameter is declared.

A field of ``Hyperparams`` carries everything about its setting: default, bounds (pydantic's
``ge``/``le``/``gt``/``lt``), the help text (``description``, a translation key) and, through
``setting(...)``, its label, unit, group (basic/advanced), the methods it applies to, a per-method
default and its name in an XTuner config. The Configure widgets, the presets, config import and
config generation read it from here; adding a hyperparameter is one ``setting`` + its translation.

XTuner names: a plain name is a top-level config variable (``lr = 2e-4``); ``lora.r`` is a keyword of
the model's ``LoraConfig``; ``randomness.seed`` and ``LoggerHook.interval`` are keywords of those dicts;
``optim_type`` holds a class name (AdamW or SGD), not a literal.

Defaults follow XTuner 0.2.0's own QLoRA configs (``*_qlora_alpaca_e3.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional, get_args, get_origin

from pydantic import BaseModel, Field

from core.errors import UserError

E_NOT_A_NUMBER = "{label} must be a whole number, or empty."  # a text widget of a whole-number setting
E_TOO_MANY_QUESTIONS = "At most {n} evaluation questions."
MESSAGES = [E_NOT_A_NUMBER, E_TOO_MANY_QUESTIONS]

METHODS = ("qlora", "lora", "full")
ADAPTER = ("qlora", "lora")
# what a run learns from: supervised answers, or preference pairs (XTuner's DPO / ORPO models)
Objective = Literal["sft", "dpo", "orpo"]
OBJECTIVES: tuple[str, ...] = get_args(Objective)
PREFERENCE = ("dpo", "orpo")
DPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "kto_pair", "sppo_hard", "nca_pair", "robust")  # xtuner.model.dpo
MAX_EVALUATION_QUESTIONS = 10  # XTuner asks every one at each evaluation; more makes evaluation slow


def check_evaluation_inputs(questions: list[str]) -> list[str]:
    """The evaluation questions of a project or a training spec (a pydantic validator's body)."""
    if len(questions) > MAX_EVALUATION_QUESTIONS:
        raise UserError(E_TOO_MANY_QUESTIONS, n=MAX_EVALUATION_QUESTIONS)
    return questions


def setting(default: Any, *, label: str, help: str, xtuner: str, group: str = "basic", unit: str = "",
            methods: tuple[str, ...] = METHODS, method_defaults: dict | None = None, widget: dict | None = None,
            objectives: tuple[str, ...] = OBJECTIVES, **bounds) -> Any:
    """A hyperparameter field: pydantic bounds in ``bounds``, the rest in ``json_schema_extra``."""
    extra = {"label": label, "xtuner": xtuner, "group": group, "unit": unit, "methods": list(methods),
             "method_defaults": method_defaults or {}, "widget": widget or {}, "objectives": list(objectives)}
    return Field(default, description=help, json_schema_extra=extra, **bounds)


Beta = Annotated[float, Field(ge=0, lt=1)]


class Hyperparams(BaseModel):
    """Training hyperparameters, in the order the Configure page shows them."""

    # basic
    lr: float = setting(2e-4, gt=0, lt=1, label="Learning rate", xtuner="lr", method_defaults={"full": 2e-5},
                        widget={"format": "%.2e", "step": 1e-5},
                        help="Learning rate: how big each update step is. LoRA/QLoRA ~2e-4, full ~2e-5.")
    max_epochs: int = setting(3, ge=1, le=1000, label="Epochs", xtuner="max_epochs",
                              help="Passes over the whole dataset.")
    max_length: int = setting(2048, ge=16, le=1_048_576, label="Max length", unit="tokens", xtuner="max_length",
                              widget={"step": 256}, help="Longest sample in tokens; longer ones are cut.")
    batch_size: int = setting(1, ge=1, le=1024, label="Batch size per device", xtuner="batch_size",
                              help="Sequences per GPU per step.")
    accumulative_counts: int = setting(
        16, ge=1, le=4096, label="Gradient accumulation", xtuner="accumulative_counts",
        help="Gradient accumulation: steps summed before one update (effective batch = batch × this × GPUs).")
    warmup_ratio: float = setting(0.03, ge=0, lt=1, label="Warmup ratio", xtuner="warmup_ratio",
                                  widget={"step": 0.01},
                                  help="Share of training during which the learning rate ramps up from ~0.")
    save_steps: int = setting(500, ge=1, label="Save every", unit="iterations", xtuner="save_steps",
                              help="Save a checkpoint every this many iterations (the last one is always saved).")
    save_total_limit: int = setting(2, ge=-1, label="Checkpoints kept", xtuner="save_total_limit",
                                    help="Checkpoints kept on disk; older ones are deleted (-1: keep all).")
    evaluation_freq: int = setting(500, ge=1, label="Evaluate every", unit="iterations", xtuner="evaluation_freq",
                                   help="Ask the evaluation questions every this many iterations.")
    heldout_ratio: float = setting(
        0.0, ge=0, le=0.5, label="Held-out share", xtuner="heldout_ratio", widget={"format": "%.2f", "step": 0.01},
        objectives=("sft",),
        help="Share of the dataset kept out of training: its loss is measured at every checkpoint (0: none).")
    pack_to_max_length: bool = setting(
        True, label="Pack samples to max length", xtuner="pack_to_max_length", objectives=("sft",),
        help="Pack several short samples into one max_length sequence: much faster on short data.")
    preference_beta: float = setting(
        0.1, gt=0, le=100, label="Preference β", xtuner="loss_beta", objectives=PREFERENCE, widget={"step": 0.05},
        help="DPO: how far the model may move from the base (reference) model; smaller moves further. "
             "ORPO: the weight of the odds-ratio term beside the chosen answers' loss.")
    # advanced
    optimizer: Literal["AdamW", "SGD"] = setting("AdamW", label="Optimizer", xtuner="optim_type", group="advanced",
                                                 help="AdamW is XTuner's default and the usual choice.")
    weight_decay: float = setting(0.0, ge=0, label="Weight decay", xtuner="weight_decay", group="advanced",
                                  widget={"format": "%.4f"}, help="L2 penalty on weights; 0 is XTuner's default.")
    max_norm: float = setting(1.0, gt=0, label="Gradient clip (max norm)", xtuner="max_norm", group="advanced",
                              help="Gradient clipping: gradients are scaled down above this norm.")
    betas: tuple[Beta, Beta] = setting((0.9, 0.999), label="β1, β2", xtuner="betas", group="advanced",
                                       widget={"format": "%.5f", "parts": ["β1", "β2"]},
                                       help="AdamW's momentum coefficients (β1, β2).")
    logging_interval: int = setting(10, ge=1, label="Log every", unit="iterations", xtuner="LoggerHook.interval",
                                    group="advanced", help="Log loss and learning rate every this many iterations.")
    lora_r: int = setting(64, ge=1, le=1024, label="LoRA r", xtuner="lora.r", group="advanced", methods=ADAPTER,
                          help="LoRA rank: adapter size. Higher learns more, costs more memory.")
    lora_alpha: int = setting(16, ge=1, label="LoRA alpha", xtuner="lora.lora_alpha", group="advanced",
                              methods=ADAPTER, help="LoRA scaling: the adapter's update is multiplied by alpha / r.")
    lora_dropout: float = setting(0.1, ge=0, lt=1, label="LoRA dropout", xtuner="lora.lora_dropout",
                                  group="advanced", methods=ADAPTER, widget={"step": 0.01},
                                  help="Dropout inside the adapter, against overfitting.")
    lora_target_modules: Optional[list[str]] = setting(
        None, label="LoRA target modules", xtuner="lora.target_modules", group="advanced", methods=ADAPTER,
        widget={"placeholder": "q_proj, v_proj"},
        help="Layers that get an adapter; empty: every linear layer (XTuner's default).")
    seed: Optional[int] = setting(None, label="Seed", xtuner="randomness.seed", group="advanced",
                                  help="Random seed for reproducible runs; empty: random.")
    precision: Literal["auto", "bf16", "fp16"] = setting(
        "auto", label="Precision", xtuner="studio_precision", group="advanced",
        help="GPU number format: auto is bf16 where the GPU has it (no loss scaling), else fp16 with loss scaling.")
    fused_kernels: bool = setting(
        False, label="Fused kernels (Liger)", xtuner="studio_fused_kernels", group="advanced",
        help="Liger's fused GPU kernels for Llama, Qwen, Gemma, Mistral and Phi-3: less memory; off on the CPU.")
    dpo_loss_type: Literal[DPO_LOSS_TYPES] = setting(
        "sigmoid", label="DPO loss", xtuner="dpo_loss_type", group="advanced", objectives=("dpo",),
        help="The DPO variant: sigmoid is the paper's loss; ipo, hinge, robust and others as in XTuner's DPO model.")
    label_smoothing: float = setting(0.0, ge=0, lt=0.5, label="Label smoothing", xtuner="label_smoothing",
                                     group="advanced", objectives=("dpo",), widget={"step": 0.05},
                                     help="DPO (sigmoid/robust): the share of pairs assumed to be labelled the wrong "
                                          "way round; 0 trusts every pair.")
    dataloader_num_workers: int = setting(0, ge=0, le=64, label="Dataloader workers", xtuner="dataloader_num_workers",
                                          group="advanced",
                                          help="Processes loading data in parallel; 0 loads in the training process.")


@dataclass(frozen=True)
class Setting:
    """One hyperparameter as the schema declares it."""

    name: str
    kind: str  # "float", "int", "bool", "choice", "pair", "names", "optional_int"
    default: Any
    label: str
    help: str
    unit: str
    group: str
    methods: tuple[str, ...]
    xtuner: str
    bounds: dict  # ge / le / gt / lt, those declared
    widget: dict  # presentation: format, step, placeholder, parts
    choices: tuple = ()
    objectives: tuple[str, ...] = OBJECTIVES

    def applies_to(self, method: str) -> bool:
        return method in self.methods

    def used_by(self, objective: str) -> bool:
        """Whether a run with this objective (sft, dpo, orpo) uses the setting."""
        return objective in self.objectives


_BOUNDS = ("ge", "le", "gt", "lt")


def _bounds(metadata) -> dict:
    return {b: getattr(m, b) for m in metadata for b in _BOUNDS if getattr(m, b, None) is not None}


def _kind(annotation) -> tuple[str, tuple, list]:
    """(kind, choices, metadata of the element type for pairs)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is bool:
        return "bool", (), []
    if annotation in (int, float):
        return annotation.__name__, (), []
    if origin is Literal:
        return "choice", args, []
    if origin is tuple:
        return "pair", (), list(get_args(args[0])[1:]) if get_origin(args[0]) is Annotated else []
    inner = [a for a in args if a is not type(None)]
    if inner == [int]:
        return "optional_int", (), []
    if inner and get_origin(inner[0]) is list:
        return "names", (), []
    raise TypeError(f"No widget kind for {annotation!r}")  # pragma: no cover - a new kind of setting


def settings() -> list[Setting]:
    """Every hyperparameter, in display order."""
    out = []
    for name, f in Hyperparams.model_fields.items():
        extra = f.json_schema_extra
        kind, choices, element_meta = _kind(f.annotation)
        bounds = _bounds(element_meta) if kind == "pair" else _bounds(f.metadata)
        for field_meta in element_meta:  # Annotated[float, Field(...)] puts a FieldInfo in the metadata
            bounds |= _bounds(getattr(field_meta, "metadata", []))
        out.append(Setting(name=name, kind=kind, default=f.default, label=extra["label"], help=f.description,
                           unit=extra["unit"], group=extra["group"], methods=tuple(extra["methods"]),
                           xtuner=extra["xtuner"], bounds=bounds, choices=choices, widget=extra["widget"],
                           objectives=tuple(extra["objectives"])))
    return out


def defaults(method: str) -> Hyperparams:
    """The schema's defaults for ``method`` (XTuner's own values for that method)."""
    per_method = {name: f.json_schema_extra["method_defaults"][method]
                  for name, f in Hyperparams.model_fields.items()
                  if method in f.json_schema_extra["method_defaults"]}
    return Hyperparams(**per_method)


def top_level_names() -> dict[str, str]:
    """{config variable: field} of the settings an XTuner config holds as plain top-level literals."""
    return {s.xtuner: s.name for s in settings() if "." not in s.xtuner and s.xtuner != "optim_type"}


def keyword_names(owner: str) -> dict[str, str]:
    """{keyword: field} of the settings held as keywords of ``owner`` (``lora``, ``randomness``, ``LoggerHook``)."""
    prefix = owner + "."
    return {s.xtuner[len(prefix):]: s.name for s in settings() if s.xtuner.startswith(prefix)}
