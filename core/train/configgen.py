"""A typed training spec → an XTuner 0.2.0 config ``.py``.

The file follows XTuner's own config layout (PART 1 settings … PART 5 runtime, as in
``xtuner/configs/*/*_qlora_alpaca_e3.py``). Every value that comes from the user is written with
``repr`` of a plain Python value and checked to read back identically with ``ast.literal_eval``:
user text is never spliced into code. Identifiers (the prompt template, the optimizer) come from
fixed allow-lists.
"""
from __future__ import annotations

import ast
import importlib.util
import os
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, Field, field_validator

from core.errors import UserError
from core.project import Hyperparams, Method, Project
from core.train import preference_config
from core.train.hyperparams import Objective, check_evaluation_inputs, keyword_names, settings, top_level_names
from core.data.templates import PROMPT_TEMPLATES, is_studio_template, template_dict
from core.train import packing, precision

Device = Literal["cpu", "cuda"]

# XTuner's dataset map functions for the formats the app trains on (after conversion).
DATASET_MAP_FNS = {"openai": "openai_map_fn", "alpaca": "alpaca_map_fn"}


E_TEMPLATE = "Unknown prompt template {name}; known: {known}."
E_MISSING = "The project has no {missing} yet: choose them on the Model & Data page."
E_LITERAL = "Cannot write {value} as a Python literal."
E_QLORA_CPU = ("QLoRA needs an NVIDIA GPU: its 4-bit base model (bitsandbytes) cannot train on the CPU. "
               "Choose LoRA or full fine-tuning here, or run on a GPU machine.")
E_NO_SYSTEM = ("The {template} template has no system turn (the model's own chat template folds it into the first "
               "question): leave the system prompt empty, or write it into the questions.")
MESSAGES = [E_TEMPLATE, E_MISSING, E_LITERAL, E_QLORA_CPU, E_NO_SYSTEM]


class ConfigError(UserError):
    """The spec cannot make a config that trains here; the message says what to change."""


def known_template(name: str) -> str:
    """``name`` when it is a prompt template this app knows (XTuner's or its own), else ConfigError."""
    if name not in PROMPT_TEMPLATES:
        raise ConfigError(E_TEMPLATE, name=repr(name), known=", ".join(sorted(PROMPT_TEMPLATES)))
    return name


TemplateName = Annotated[str, AfterValidator(known_template)]  # a spec's prompt template, checked


class TrainSpec(BaseModel):
    method: Method
    model_path: str
    prompt_template: TemplateName
    dataset_path: str
    dataset_format: Literal["openai", "alpaca"] = "openai"
    hyperparams: Hyperparams = Field(default_factory=Hyperparams)
    evaluation_inputs: list[str] = Field(default_factory=list)
    system_prompt: str = ""
    device: Device = "cuda"
    map_num_proc: int = Field(1, ge=1, le=64)
    progress_file: Optional[str] = None
    stop_file: Optional[str] = None
    objective: Objective = "sft"  # dpo / orpo: dataset_path holds preference pairs (core.data.preference)
    load_from: Optional[str] = None  # warm start: weights of another run's checkpoint, fresh optimizer
    trust_remote_code: bool = False  # run the model folder's own code (only after the user opted in)
    gpu_capability: Optional[tuple[int, int]] = None  # lowest CUDA compute capability of the GPUs (NVML); None: unknown
    flash_attn: bool = False  # the flash_attn package is installed where the run trains (XTuner's varlen path)

    @field_validator("evaluation_inputs")
    @classmethod
    def _eval_count(cls, v: list[str]) -> list[str]:
        return check_evaluation_inputs(v)


def spec_from_project(project: Project, device: Device, progress_file: str | None = None,
                      stop_file: str | None = None, gpus: list | None = None) -> TrainSpec:
    """The spec of ``project`` for ``device``; ``gpus``: this machine's (``system.gpus()`` when None)."""
    preference = preference_config.is_preference(project.objective)
    data = project.preference_path if preference else project.dataset_path
    missing = [label for label, value in (("model_path", project.model_path),
                                          ("preference_path" if preference else "dataset_path", data),
                                          ("prompt_template", project.prompt_template)) if not value]
    if missing:
        raise ConfigError(E_MISSING, missing=", ".join(missing))
    return TrainSpec(
        method=project.method,
        model_path=project.model_path,
        prompt_template=project.prompt_template,
        dataset_path=data,
        objective=project.objective,
        hyperparams=project.hyperparams,
        evaluation_inputs=project.evaluation_inputs,
        system_prompt=project.system_prompt,
        device=device,
        map_num_proc=default_map_num_proc(data),
        progress_file=progress_file,
        stop_file=stop_file,
        trust_remote_code=project.trust_remote_code,
        gpu_capability=_capability(project, device, gpus),
        flash_attn=device == "cuda" and packing.flash_attn_installed(),
    )


def _capability(project: Project, device: Device, gpus: list | None) -> tuple[int, int] | None:
    """The lowest compute capability of the GPUs a run of ``project`` would use here."""
    if device != "cuda":
        return None
    if gpus is None:
        from core.machine import system

        gpus = system.gpus()
    return precision.gpu_capability(gpus[:max(1, project.num_gpus)])


def default_map_num_proc(dataset_path: str | None) -> int:
    """Worker processes for XTuner's dataset ``map``: one for small files, else the core count (≤ 16)."""
    try:
        size = os.path.getsize(dataset_path) if dataset_path else 0
    except OSError:
        size = 0
    if size < 8 * 1024 * 1024:
        return 1
    return max(1, min(os.cpu_count() or 1, 16))


def _literal(value) -> str:
    if isinstance(value, str):
        # mmengine's Config.fromfile rewrites "{{ fileDirname }}", "{{$ENV}}" and "{{ _base_.x }}" in a config's
        # text before Python reads it: a brace inside a string is written \x7b so no user text ever matches
        return repr(value).replace("{", "\\x7b") if "{{" in value else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(_literal, value)) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_literal, value)) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def lit(value) -> str:
    """A Python literal for ``value`` that reads back as exactly the same value, also through mmengine's
    ``Config.fromfile`` (which substitutes ``{{ … }}`` placeholders in the file's text)."""
    text = _literal(value)
    if ast.literal_eval(text) != value:  # pragma: no cover - repr of plain values always round-trips
        raise ConfigError(E_LITERAL, value=repr(value))
    return text


def check_trainable(spec: TrainSpec) -> None:
    """Refuse combinations that cannot train on this device, with the reason."""
    if spec.system_prompt and "SYSTEM" not in template_dict(spec.prompt_template):
        raise ConfigError(E_NO_SYSTEM, template=spec.prompt_template)
    if spec.method == "qlora" and spec.device != "cuda":
        raise ConfigError(E_QLORA_CPU)
    if not preference_config.renders_pairs(spec.objective, spec.model_path):
        raise ConfigError(preference_config.E_NO_CHAT_TEMPLATE, path=spec.model_path)


def render_config(spec: TrainSpec) -> str:
    """The XTuner config text for ``spec``."""
    check_trainable(spec)
    hp = spec.hyperparams
    gpu = spec.device == "cuda"
    prec = precision.resolve(hp.precision, spec.device, spec.gpu_capability)
    attn = packing.attention_plan(spec)
    heldout = bool(hp.heldout_ratio) and not preference_config.is_preference(spec.objective)  # SFT data only
    notices = ([(prec.fallback, prec.params)] if prec.fallback else []) + attn.notices
    lines: list[str] = []
    add = lines.append

    add("# Generated by XTuner Studio from XTuner 0.2.0's config layout.")
    add("# User-supplied values below are Python literals; edit them freely.")
    add("import torch")
    add("from datasets import load_dataset")
    add("from mmengine.dataset import DefaultSampler")
    add("from mmengine.hooks import (CheckpointHook, DistSamplerSeedHook, IterTimerHook,")
    add("                            LoggerHook, ParamSchedulerHook)")
    add("from mmengine.optim import AmpOptimWrapper, CosineAnnealingLR, OptimWrapper")
    add("from peft import LoraConfig")
    add("from torch.optim import SGD, AdamW")
    add("from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig")
    add("")
    add("from xtuner.dataset import process_hf_dataset")
    add("from xtuner.dataset.collate_fns import default_collate_fn")
    add(f"from xtuner.dataset.map_fns import {DATASET_MAP_FNS[spec.dataset_format]}, template_map_fn_factory")
    add("from xtuner.engine.hooks import DatasetInfoHook, EvaluateChatHook, VarlenAttnArgsToMessageHubHook")
    add("from xtuner.engine.runner import TrainLoop")
    add("from xtuner.model import SupervisedFinetune")
    add("from xtuner.utils import PROMPT_TEMPLATE")
    lines += preference_config.imports(spec.objective)
    add("")
    tensorboard = importlib.util.find_spec("tensorboard") is not None  # an environment made before it: none
    if tensorboard:
        add("from mmengine.visualization import LocalVisBackend, TensorboardVisBackend, Visualizer")
    add("from core.train.mmhooks import StudioProgressHook, StudioStopHook, WarmupLinearLR")
    if heldout:
        add("from core.train.heldout import split_dataset")
        add("from core.train.mmhooks import StudioHeldoutHook")
    add("from core.train.packing import packed_collate_fn")
    add("")
    add("#######################################################################")
    add("#                          PART 1  Settings                           #")
    add("#######################################################################")
    add("# Model")
    add(f"pretrained_model_name_or_path = {lit(spec.model_path)}")
    add(f"use_varlen_attn = {lit(attn.xtuner_varlen)}  # {attn.comment}")
    add("")
    add("# Data")
    add(f"data_path = {lit(spec.dataset_path)}")
    add(f"studio_prompt_template = {lit(spec.prompt_template)}  # its name (checked against the tokenizer)")
    if is_studio_template(spec.prompt_template):
        add("# XTuner 0.2.0 has no template for this family: the one XTuner Studio derived from the")
        add("# model's chat template (core/data/studio_templates.json), as a literal")
        add(f"prompt_template = {lit(template_dict(spec.prompt_template))}")
    else:
        add(f"prompt_template = PROMPT_TEMPLATE.{spec.prompt_template}")
    add("")
    add("# Hyperparameters, by XTuner's names (XTuner Studio: core/train/hyperparams.py)")
    top_level = top_level_names()
    for item in settings():
        if item.xtuner == "optim_type":  # a class imported above (AdamW or SGD), not a literal
            add(f"optim_type = {'SGD' if hp.optimizer == 'SGD' else 'AdamW'}")
        elif item.xtuner in top_level:
            add(f"{item.xtuner} = {lit(getattr(hp, item.name))}" + (f"  # {item.unit}" if item.unit else ""))
    add("")
    add("# Evaluate the generation performance during the training")
    add(f"SYSTEM = {lit(spec.system_prompt)}")
    add(f"evaluation_inputs = {lit(list(spec.evaluation_inputs))}")
    add("")
    add("# XTuner Studio: progress file and stop request (ignored when None)")
    add(f"studio_progress_file = {lit(spec.progress_file)}")
    add(f"studio_stop_file = {lit(spec.stop_file)}")
    add(f"# Precision: {prec.dtype} ({prec.note.format(**prec.params)})")
    add("# what could not be done as configured: printed at the start of training (core.train.xtuner_entry)")
    add(f"studio_fallbacks = {lit([[t, p] for t, p in notices])}")
    add("")
    add("#######################################################################")
    add("#                      PART 2  Model & Tokenizer                      #")
    add("#######################################################################")
    add("tokenizer = dict(")
    add("    type=AutoTokenizer.from_pretrained,")
    add("    pretrained_model_name_or_path=pretrained_model_name_or_path,")
    add(f"    trust_remote_code={lit(spec.trust_remote_code)},")
    add("    padding_side='right')")
    add("")
    add("model = dict(")
    add(f"    type={preference_config.MODEL_CLASS[spec.objective]},")
    add("    use_varlen_attn=use_varlen_attn,")
    lines += preference_config.model_keywords(spec.objective)
    add("    llm=dict(")
    add("        type=AutoModelForCausalLM.from_pretrained,")
    add("        pretrained_model_name_or_path=pretrained_model_name_or_path,")
    add(f"        trust_remote_code={lit(spec.trust_remote_code)},")
    if gpu and spec.method != "full":
        add(f"        torch_dtype={prec.torch_dtype},")
    else:
        # full fine-tuning keeps fp32 master weights (as XTuner's *_full_* configs do): mixed
        # precision's gradient scaler refuses fp16 weights; the CPU always trains in fp32
        add("        torch_dtype=torch.float32,")
    if spec.method == "qlora":
        add("        quantization_config=dict(")
        add("            type=BitsAndBytesConfig,")
        add("            load_in_4bit=True,")
        add("            load_in_8bit=False,")
        add("            llm_int8_threshold=6.0,")
        add("            llm_int8_has_fp16_weight=False,")
        add(f"            bnb_4bit_compute_dtype={prec.torch_dtype},")
        add("            bnb_4bit_use_double_quant=True,")
        add("            bnb_4bit_quant_type='nf4'),")
    if spec.method == "full":
        add("    ))")
    else:
        add("    ),")
        add("    lora=dict(")
        add("        type=LoraConfig,")
        for arg, name in keyword_names("lora").items():  # r, lora_alpha, lora_dropout, target_modules
            value = getattr(hp, name)
            if value not in (None, []):  # no target modules: XTuner's default (every linear layer)
                add(f"        {arg}={lit(value)},")
        add("        bias='none',")
        add("        task_type='CAUSAL_LM'))")
    add("")
    add("#######################################################################")
    add("#                      PART 3  Dataset & Dataloader                   #")
    add("#######################################################################")
    if preference_config.is_preference(spec.objective):
        lines += preference_config.dataset_lines(spec.map_num_proc)
    else:
        add("train_dataset = dict(")
        add("    type=process_hf_dataset,")
        if heldout:  # the records not held out (XTuner Studio: core/train/heldout.py)
            add("    dataset=dict(type=split_dataset, path=data_path, heldout_ratio=heldout_ratio, part='train'),")
        else:
            add("    dataset=dict(type=load_dataset, path='json', data_files=dict(train=data_path)),")
        add("    tokenizer=tokenizer,")
        add("    max_length=max_length,")
        add(f"    dataset_map_fn={DATASET_MAP_FNS[spec.dataset_format]},")
        add("    template_map_fn=dict(type=template_map_fn_factory, template=prompt_template),")
        add("    remove_unused_columns=True,")
        add("    shuffle_before_pack=True,")
        add("    pack_to_max_length=pack_to_max_length,")
        add(f"    use_varlen_attn={lit(attn.packer_positions)},  # per-sample position ids in packed sequences")
        add(f"    map_num_proc={lit(spec.map_num_proc)})")
        add("")
        if heldout:
            add("# XTuner Studio: the held-out records, for the held-out loss at every checkpoint")
            add("heldout_dataset = train_dataset.copy()")
            add("heldout_dataset.update(")
            add("    dataset=dict(type=split_dataset, path=data_path, heldout_ratio=heldout_ratio, part='test'),")
            add("    shuffle_before_pack=False)")
            add("")
        add("train_dataloader = dict(")
        add("    batch_size=batch_size,")
        add("    num_workers=dataloader_num_workers,")
        add("    dataset=train_dataset,")
        add("    sampler=dict(type=DefaultSampler, shuffle=True),")
        if attn.collate == "packed":
            add("    collate_fn=dict(type=packed_collate_fn))  # samples stay separate: a per-sample attention mask")
        else:
            add("    collate_fn=dict(type=default_collate_fn, use_varlen_attn=use_varlen_attn))")
    add("")
    add("#######################################################################")
    add("#                    PART 4  Scheduler & Optimizer                    #")
    add("#######################################################################")
    add("optim_wrapper = dict(")
    if gpu:
        add("    type=AmpOptimWrapper,")
    else:
        add("    type=OptimWrapper,  # CPU: mmengine's AmpOptimWrapper needs CUDA")
    if hp.optimizer == "AdamW":
        add("    optimizer=dict(type=optim_type, lr=lr, betas=betas, weight_decay=weight_decay),")
    else:
        add("    optimizer=dict(type=optim_type, lr=lr, momentum=betas[0], weight_decay=weight_decay),")
    add("    clip_grad=dict(max_norm=max_norm, error_if_nonfinite=False),")
    if gpu:
        add("    accumulative_counts=accumulative_counts,")
        if prec.dtype == "bf16":
            add("    loss_scale=dict(enabled=False),  # bf16 needs no loss scaling")
        else:
            add("    loss_scale='dynamic',")
        add(f"    dtype={lit(prec.amp_dtype)})")
    else:
        add("    accumulative_counts=accumulative_counts)")
    add("")
    add("# Warmup then cosine decay. WarmupLinearLR is mmengine's LinearLR that keeps at least one")
    add("# warmup iteration (LinearLR raises 'end should be larger than begin' on short runs).")
    add("param_scheduler = [")
    if hp.warmup_ratio > 0:
        add("    dict(type=WarmupLinearLR, start_factor=1e-5, by_epoch=True, begin=0,")
        add("         end=warmup_ratio * max_epochs, convert_to_iter_based=True),")
    add("    dict(type=CosineAnnealingLR, eta_min=0.0, by_epoch=True,")
    add("         begin=warmup_ratio * max_epochs, end=max_epochs, convert_to_iter_based=True),")
    add("]")
    add("")
    add("train_cfg = dict(type=TrainLoop, max_epochs=max_epochs)")
    add("")
    add("#######################################################################")
    add("#                           PART 5  Runtime                           #")
    add("#######################################################################")
    add("custom_hooks = [")
    add("    dict(type=DatasetInfoHook, tokenizer=tokenizer),")
    add("    # EvaluateChatHook runs str.format over the system text once more: braces are doubled so the")
    add("    # model sees SYSTEM exactly as written.")
    add("    dict(type=EvaluateChatHook, tokenizer=tokenizer, every_n_iters=evaluation_freq,")
    add("         evaluation_inputs=evaluation_inputs, prompt_template=prompt_template,")
    add("         system=SYSTEM.replace('{', '{{').replace('}', '}}')),")
    add("    dict(type=StudioProgressHook, progress_file=studio_progress_file),")
    add("    dict(type=StudioStopHook, stop_file=studio_stop_file),")
    if heldout:
        add("    dict(type=StudioHeldoutHook, dataset=heldout_dataset, interval=save_steps, batch_size=batch_size,")
        add(f"         per_sample_mask={lit(attn.collate == 'packed')}),")
    if attn.xtuner_varlen:
        add("    dict(type=VarlenAttnArgsToMessageHubHook),  # XTuner's varlen attention reads the sample bounds here")
    add("]")
    add("")
    add("default_hooks = dict(")
    add("    timer=dict(type=IterTimerHook),")
    add(f"    logger=dict(type=LoggerHook, log_metric_by_epoch=False, interval={lit(hp.logging_interval)}),")
    add("    param_scheduler=dict(type=ParamSchedulerHook),")
    add("    checkpoint=dict(type=CheckpointHook, by_epoch=False, interval=save_steps,")
    add("                    max_keep_ckpts=save_total_limit),")
    add("    sampler_seed=dict(type=DistSamplerSeedHook),")
    add(")")
    add("")
    add("env_cfg = dict(")
    add("    cudnn_benchmark=False,")
    add("    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),")
    add(f"    dist_cfg=dict(backend={lit('nccl' if gpu else 'gloo')}),")
    add(")")
    add("")
    if not gpu:
        add("# CPU: under torchrun (gloo) DDP must not be given a CUDA device id")
        add("model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None)")
    if tensorboard:  # scalars.json as before, and TensorBoard's events beside it (XTuner Studio: Results)
        add("visualizer = dict(type=Visualizer, vis_backends=[dict(type=LocalVisBackend),")
        add("                                                 dict(type=TensorboardVisBackend)])")
    else:
        add("visualizer = None")
    add("log_level = 'INFO'")
    add(f"load_from = {lit(spec.load_from)}  # warm start from a checkpoint's weights (resume=False)")
    add("resume = False")
    add(f"randomness = dict(seed={lit(hp.seed)}, deterministic=False)")
    add("# each logged value is the mean over its logging interval (mmengine's default window is 10)")
    add(f"log_processor = dict(by_epoch=False, window_size={lit(hp.logging_interval)})")
    text = "\n".join(lines) + "\n"
    ast.parse(text)  # a generated config is always valid Python
    return text


def literal_assignments(config_text: str) -> dict:
    """The top-level ``name = <literal>`` assignments of a config, read as syntax (never executed)."""
    values = {}
    for node in ast.parse(config_text).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, SyntaxError, TypeError):
                pass
    return values
