"""A typed LLaVA spec → an XTuner 0.2.0 config ``.py`` for stage 1 (pretrain) or stage 2 (finetune).

Laid out as XTuner's own ``configs/llava/*/{pretrain,finetune}/`` files. Stage 1: the LLM and the vision
encoder frozen, the projector trained on captions. Stage 2: the projector from a stage-1 checkpoint
(``pretrained_pth``) trained further with LoRA on the LLM (optionally on the encoder too). As in
``core.train.configgen``, every user value is a checked Python literal; identifiers come from allow-lists.
"""
from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, Field, field_validator, model_validator

from core.data.templates import is_studio_template, template_dict
from core.train.configgen import E_QLORA_CPU, ConfigError, TemplateName, lit
from core.train.hyperparams import check_evaluation_inputs
from core.vision.dataset import check_image

E_NO_PROJECTOR = ("Stage 2 needs the projector trained in stage 1: choose a stage-1 checkpoint ({path} is not "
                  "one).")
E_NOT_ENCODER = ("{path} is not a vision encoder XTuner's LLaVA can use (its config.json has model_type "
                 "{model_type}; expected a CLIP vision model).")
E_NO_CONFIG = "{path} has no readable config.json: {error}."
E_PAIR_CHANGED = ("The stage-1 projector maps a {theirs_vision}-wide encoder to a {theirs_llm}-wide LLM, but this "
                  "pair is {ours_vision} → {ours_llm} (hidden sizes): use the encoder and LLM of stage 1.")
E_EVAL_LENGTHS = "{images} evaluation images for {questions} questions: give one image per question."
E_EVAL_NO_IMAGE = "Evaluation image {path} does not exist (a relative path is read in the image folder)."
MESSAGES = [E_NO_PROJECTOR, E_NOT_ENCODER, E_NO_CONFIG, E_PAIR_CHANGED, E_EVAL_LENGTHS, E_EVAL_NO_IMAGE]
ENCODER_TYPES = ("clip", "clip_vision_model")
EVAL_MAX_NEW_TOKENS = 64  # per evaluation answer: the hook asks every question before training, at each
# checkpoint and after training, in both stages (XTuner's default of 600 would dominate a small run)


class VisionSpec(BaseModel):
    stage: Literal[1, 2]
    method: Literal["lora", "qlora"] = "lora"  # stage 2, on the LLM
    llm_path: str
    encoder_path: str
    data_path: str
    image_folder: str
    prompt_template: TemplateName
    device: Literal["cpu", "cuda"] = "cuda"
    pretrained_pth: Optional[str] = None  # stage 2: the stage-1 checkpoint (its projector)
    encoder_lora: bool = False  # stage 2: LoRA on the vision encoder too
    lr: float = Field(1e-3, gt=0, le=1)
    max_epochs: int = Field(1, ge=1, le=100)
    batch_size: int = Field(1, ge=1, le=1024)
    max_length: int = Field(2048, ge=32, le=131072)
    lora_r: int = Field(64, ge=1, le=1024)
    lora_alpha: int = Field(16, ge=1, le=4096)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    save_steps: int = Field(500, ge=1)
    save_total_limit: int = Field(2, ge=-1)
    logging_interval: int = Field(10, ge=1)
    seed: int = 0
    visual_hidden_size: int = 0  # recorded from the encoder's config.json (checked between stages)
    llm_hidden_size: int = 0
    progress_file: Optional[str] = None
    stop_file: Optional[str] = None
    evaluation_images: list[str] = Field(default_factory=list)  # one per question; checked() makes them absolute
    evaluation_inputs: list[str] = Field(default_factory=list)

    @field_validator("evaluation_inputs")
    @classmethod
    def _eval_count(cls, v: list[str]) -> list[str]:
        return check_evaluation_inputs(v)

    @model_validator(mode="after")
    def _eval_pairs(self) -> "VisionSpec":
        if len(self.evaluation_images) != len(self.evaluation_inputs):
            raise ConfigError(E_EVAL_LENGTHS, images=len(self.evaluation_images),
                              questions=len(self.evaluation_inputs))
        return self


def eval_image(path: str, image_folder: str) -> str:
    """An evaluation image's real absolute path (a relative one in the image folder); ConfigError unless PIL
    reads the file as an image (``core.vision.dataset.check_image``)."""
    shown = os.path.join(image_folder, os.path.expanduser(path))  # an absolute path stays itself
    real = Path(os.path.realpath(shown))
    if not real.is_file():
        raise ConfigError(E_EVAL_NO_IMAGE, path=shown)
    error, _info = check_image(real, shown)
    if error is not None:
        _code, text, params = error
        raise ConfigError(text, **params)
    return str(real)


def hidden_size(folder: str, vision: bool) -> int:
    """The hidden size from a model folder's config.json (the vision part of a CLIP model)."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(E_NO_CONFIG, path=str(folder), error=getattr(e, "strerror", None) or str(e)) from e
    if vision:
        if config.get("model_type") not in ENCODER_TYPES:
            raise ConfigError(E_NOT_ENCODER, path=str(folder), model_type=repr(config.get("model_type")))
        config = config.get("vision_config") or config
    return int(config.get("hidden_size") or 0)


def stage1_spec(pth: str) -> dict:
    """The spec of the stage-1 run a checkpoint belongs to (``runs/<id>/work_dir/iter_N.pth``), or ``{}``."""
    try:
        info = json.loads((Path(pth).parent.parent / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    spec = info.get("spec") or {}
    return spec if spec.get("stage") == 1 else {}


def checked(spec: VisionSpec) -> VisionSpec:
    """The spec with its hidden sizes read from the folders; ``ConfigError`` for a pair that cannot train."""
    if spec.method == "qlora" and spec.device != "cuda":
        raise ConfigError(E_QLORA_CPU)
    spec = spec.model_copy(update={"visual_hidden_size": hidden_size(spec.encoder_path, True),
                                   "llm_hidden_size": hidden_size(spec.llm_path, False),
                                   "evaluation_images": [eval_image(p, spec.image_folder)
                                                         for p in spec.evaluation_images]})
    if spec.stage == 2:
        pth = spec.pretrained_pth or ""
        theirs = stage1_spec(pth) if Path(pth).exists() else {}
        if not theirs:
            raise ConfigError(E_NO_PROJECTOR, path=pth or "none")
        if (theirs.get("visual_hidden_size"), theirs.get("llm_hidden_size")) != (spec.visual_hidden_size,
                                                                                spec.llm_hidden_size):
            raise ConfigError(E_PAIR_CHANGED, theirs_vision=theirs.get("visual_hidden_size"),
                              theirs_llm=theirs.get("llm_hidden_size"), ours_vision=spec.visual_hidden_size,
                              ours_llm=spec.llm_hidden_size)
    return spec


def render(spec: VisionSpec) -> str:
    """The XTuner config text for one stage."""
    gpu, finetune = spec.device == "cuda", spec.stage == 2
    dtype = "torch.float16" if gpu else "torch.float32"
    lines: list[str] = []
    add = lines.append
    add(f"# Generated by XTuner Studio: LLaVA stage {spec.stage} ({'finetune' if finetune else 'pretrain'}), "
        "XTuner 0.2.0's layout.")
    add("# User-supplied values below are Python literals; edit them freely.")
    add("import torch")
    add("from mmengine.dataset import DefaultSampler")
    add("from mmengine.hooks import (CheckpointHook, DistSamplerSeedHook, IterTimerHook,")
    add("                            LoggerHook, ParamSchedulerHook)")
    add("from mmengine.optim import AmpOptimWrapper, CosineAnnealingLR, OptimWrapper")
    add("from peft import LoraConfig")
    add("from torch.optim import AdamW")
    add("from transformers import (AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig,")
    add("                          CLIPImageProcessor, CLIPVisionModel)")
    add("")
    add("from xtuner.dataset import LLaVADataset")
    add("from xtuner.dataset.collate_fns import default_collate_fn")
    add("from xtuner.dataset.map_fns import llava_map_fn, template_map_fn_factory")
    add("from xtuner.engine.hooks import EvaluateChatHook")
    add("from xtuner.engine.runner import TrainLoop")
    add("from xtuner.model import LLaVAModel")
    add("from xtuner.utils import PROMPT_TEMPLATE")
    add("")
    add("from core.train.mmhooks import StudioProgressHook, StudioStopHook, WarmupLinearLR")
    add("")
    add("#######################################################################")
    add("#                          PART 1  Settings                           #")
    add("#######################################################################")
    add(f"studio_llava_stage = {lit(spec.stage)}")
    add(f"llm_name_or_path = {lit(spec.llm_path)}")
    add(f"visual_encoder_name_or_path = {lit(spec.encoder_path)}")
    add(f"pretrained_pth = {lit(spec.pretrained_pth if finetune else None)}  # stage 1's projector")
    add(f"data_path = {lit(spec.data_path)}")
    add(f"image_folder = {lit(spec.image_folder)}")
    add(f"studio_prompt_template = {lit(spec.prompt_template)}")
    if is_studio_template(spec.prompt_template):
        add(f"prompt_template = {lit(template_dict(spec.prompt_template))}")
    else:
        add(f"prompt_template = PROMPT_TEMPLATE.{spec.prompt_template}")
    for name in ("max_length", "batch_size", "max_epochs", "lr", "warmup_ratio", "save_steps", "save_total_limit"):
        add(f"{name} = {lit(getattr(spec, name))}")
    add("accumulative_counts = 1")
    add("dataloader_num_workers = 0")
    add("betas = (0.9, 0.999)")
    add("weight_decay = 0")
    add("max_norm = 1")
    add(f"studio_progress_file = {lit(spec.progress_file)}")
    add(f"studio_stop_file = {lit(spec.stop_file)}")
    add("# Evaluation at each checkpoint: a question about each image (answers in work_dir/*/vis_data)")
    add(f"evaluation_images = {lit(list(spec.evaluation_images))}")
    add(f"evaluation_inputs = {lit(list(spec.evaluation_inputs))}")
    add("")
    add("#######################################################################")
    add("#            PART 2  Model & Tokenizer & Image Processor              #")
    add("#######################################################################")
    add("tokenizer = dict(type=AutoTokenizer.from_pretrained, pretrained_model_name_or_path=llm_name_or_path,")
    add("                 trust_remote_code=False, padding_side='right')")
    add("image_processor = dict(type=CLIPImageProcessor.from_pretrained,")
    add("                       pretrained_model_name_or_path=visual_encoder_name_or_path)")
    add("model = dict(")
    add("    type=LLaVAModel,")
    add("    freeze_llm=True,  # stage 2 trains the LLM through LoRA only")
    add("    freeze_visual_encoder=True,")
    add("    pretrained_pth=pretrained_pth,")
    add(f"    use_activation_checkpointing={lit(gpu)},")
    add("    llm=dict(")
    add("        type=AutoModelForCausalLM.from_pretrained,")
    add("        pretrained_model_name_or_path=llm_name_or_path,")
    add("        trust_remote_code=False,")
    add(f"        torch_dtype={dtype},")
    if finetune and spec.method == "qlora":
        add("        quantization_config=dict(type=BitsAndBytesConfig, load_in_4bit=True, load_in_8bit=False,")
        add("                                 llm_int8_threshold=6.0, llm_int8_has_fp16_weight=False,")
        add("                                 bnb_4bit_compute_dtype=torch.float16, bnb_4bit_use_double_quant=True,")
        add("                                 bnb_4bit_quant_type='nf4'),")
    add("    ),")
    if finetune:
        add(f"    llm_lora=dict(type=LoraConfig, r={lit(spec.lora_r)}, lora_alpha={lit(spec.lora_alpha)},")
        add("                  lora_dropout=0.05, bias='none', task_type='CAUSAL_LM'),")
        if spec.encoder_lora:
            add(f"    visual_encoder_lora=dict(type=LoraConfig, r={lit(spec.lora_r)}, "
                f"lora_alpha={lit(spec.lora_alpha)}, lora_dropout=0.05, bias='none'),")
    add(f"    visual_encoder=dict(type=CLIPVisionModel.from_pretrained, torch_dtype={dtype},")
    add("                        pretrained_model_name_or_path=visual_encoder_name_or_path))")
    add("")
    add("#######################################################################")
    add("#                      PART 3  Dataset & Dataloader                   #")
    add("#######################################################################")
    add("llava_dataset = dict(type=LLaVADataset, data_path=data_path, image_folder=image_folder,")
    add("                     tokenizer=tokenizer, image_processor=image_processor, dataset_map_fn=llava_map_fn,")
    add("                     template_map_fn=dict(type=template_map_fn_factory, template=prompt_template),")
    add("                     max_length=max_length, pad_image_to_square=True)")
    add("train_dataloader = dict(batch_size=batch_size, num_workers=dataloader_num_workers, dataset=llava_dataset,")
    add("                        sampler=dict(type=DefaultSampler, shuffle=True),")
    add("                        collate_fn=dict(type=default_collate_fn))")
    add("")
    add("#######################################################################")
    add("#                    PART 4  Scheduler & Optimizer                    #")
    add("#######################################################################")
    if gpu:
        add("optim_wrapper = dict(type=AmpOptimWrapper, loss_scale='dynamic', dtype='float16',")
    else:
        add("optim_wrapper = dict(type=OptimWrapper,  # CPU: mmengine's AmpOptimWrapper needs CUDA")
    add("                     optimizer=dict(type=AdamW, lr=lr, betas=betas, weight_decay=weight_decay),")
    add("                     clip_grad=dict(max_norm=max_norm, error_if_nonfinite=False),")
    add("                     accumulative_counts=accumulative_counts)")
    add("param_scheduler = [")
    if spec.warmup_ratio > 0:
        add("    dict(type=WarmupLinearLR, start_factor=1e-5, by_epoch=True, begin=0,")
        add("         end=warmup_ratio * max_epochs, convert_to_iter_based=True),")
    add("    dict(type=CosineAnnealingLR, eta_min=0.0, by_epoch=True,")
    add("         begin=warmup_ratio * max_epochs, end=max_epochs, convert_to_iter_based=True),")
    add("]")
    add("train_cfg = dict(type=TrainLoop, max_epochs=max_epochs)")
    add("")
    add("#######################################################################")
    add("#                           PART 5  Runtime                           #")
    add("#######################################################################")
    add("custom_hooks = [")
    if spec.evaluation_inputs:
        add("    # the questions are str.format arguments in EvaluateChatHook, not format text: kept as written")
        add("    dict(type=EvaluateChatHook, tokenizer=tokenizer, image_processor=image_processor,")
        add("         evaluation_images=evaluation_images, evaluation_inputs=evaluation_inputs,")
        add("         prompt_template=prompt_template, every_n_iters=save_steps,")
        add(f"         max_new_tokens={lit(EVAL_MAX_NEW_TOKENS)},")
        add("         # greedy: the same answer from the same weights, and no draw from the random state that")
        add("         # training uses (dropout): evaluating does not change what is trained")
        add("         generation_kwargs=dict(do_sample=False, temperature=None, top_p=None, top_k=None)),")
    add("    dict(type=StudioProgressHook, progress_file=studio_progress_file),")
    add("    dict(type=StudioStopHook, stop_file=studio_stop_file),")
    add("]")
    add("default_hooks = dict(")
    add("    timer=dict(type=IterTimerHook),")
    add(f"    logger=dict(type=LoggerHook, log_metric_by_epoch=False, interval={lit(spec.logging_interval)}),")
    add("    param_scheduler=dict(type=ParamSchedulerHook),")
    add("    checkpoint=dict(type=CheckpointHook, by_epoch=False, interval=save_steps,")
    add("                    max_keep_ckpts=save_total_limit),")
    add("    sampler_seed=dict(type=DistSamplerSeedHook),")
    add(")")
    add("env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),")
    add(f"               dist_cfg=dict(backend={lit('nccl' if gpu else 'gloo')}))")
    add("visualizer = None")
    add("log_level = 'INFO'")
    add("load_from = None")
    add("resume = False")
    add(f"randomness = dict(seed={lit(spec.seed)}, deterministic=False)")
    add(f"log_processor = dict(by_epoch=False, window_size={lit(spec.logging_interval)})")
    text = "\n".join(lines) + "\n"
    ast.parse(text)
    return text
