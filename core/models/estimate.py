"""GPU memory estimate of a training run, before it starts — from the model's files, never its weights.

Sizes come from the safetensors headers (exact parameter count and every linear layer's shape, read
from the first bytes of each file) or, without them, from ``config.json`` (a Llama-style decoder:
q/k/v/o projections and a gated MLP). The accounting follows what XTuner 0.2.0 actually does:

- no DeepSpeed (mmengine AMP, fp16 autocast): full fine-tuning loads fp32 weights; LoRA loads
  fp16 weights, but peft's ``prepare_model_for_kbit_training`` (which XTuner calls for every LoRA
  model) casts every non-4-bit parameter to fp32; QLoRA keeps linear layers in 4-bit NF4 (double
  quantisation, ~4.13 bits) and the rest in fp32. Trainable parameters carry an fp32 gradient and
  AdamW's two fp32 moments (SGD with momentum: one).
- DeepSpeed (fp16): weights fp16; trainable ones add an fp16 gradient and fp32 master + optimizer
  state. ZeRO-1 splits the optimizer state over all GPUs, ZeRO-2 the gradients too, ZeRO-3 the
  weights too; ``offload`` moves the optimizer state (and with ZeRO-3 the weights) to CPU memory.
- activations: XTuner enables gradient checkpointing, so each layer keeps its input
  (batch × length × hidden), one layer at a time is recomputed, and the logits with their fp32 loss
  copies (batch × length × vocab) usually dominate for large vocabularies. Packing fills every
  sequence to ``max_length``. Models with their own code are assumed to use eager attention
  (batch × heads × length² scores). Packed samples are kept apart by a boolean mask of batch × length²
  bytes (``core.train.packing``; none with flash_attn, where XTuner's varlen kernel needs none).

What ``torch.cuda.max_memory_allocated`` measures is the sum of the parts; the CUDA context and the
allocator's slack come on top (``OVERHEAD_BYTES`` + ``SLACK``) in the fit check.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from core.errors import UserError
from core.train.launch import DEEPSPEED_PRESETS
from core.project import Hyperparams

GIB = 1024 ** 3
OVERHEAD_BYTES = int(0.75 * GIB)  # CUDA context + kernels, outside max_memory_allocated
SLACK = 0.10  # allocator fragmentation
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit weights + 8-bit block absmax + fp32 second-level scale
LOGIT_BYTES = 12  # fp16 logits + fp32 copy for the loss + fp32 log-softmax / gradient
_EMBED_NAMES = ("embed", "wte", "tok_embeddings", "word_embeddings")
_HEAD_NAMES = ("lm_head", "output", "output_layer")


E_NO_CONFIG = "{path} has no config.json: choose a Hugging Face model folder."
E_BAD_JSON = "{path} is not valid JSON (see the details)."
E_NO_FIELD = "config.json has none of {names}."
E_NOT_SAFETENSORS = "{path} does not look like a safetensors file."
E_DEEPSPEED = "Unknown DeepSpeed config {name}; known: {known}."
E_NO_MODEL = "The project has no base model yet: choose one on Model & Data."
MESSAGES = [E_NO_CONFIG, E_BAD_JSON, E_NO_FIELD, E_NOT_SAFETENSORS, E_DEEPSPEED, E_NO_MODEL]


class EstimateError(UserError):
    """The model folder does not say enough to estimate; the message says what is missing."""


@dataclass
class ModelShape:
    total_params: int
    linear_params: int  # in nn.Linear layers other than the output head (quantised by QLoRA)
    linear_modules: dict[str, list[tuple[int, int]]]  # last name part -> [(in, out), ...] (LoRA targets)
    hidden: int
    layers: int
    vocab: int
    heads: int
    intermediate: int
    remote_code: bool = False
    source: str = "config.json"


def _read_config(model_dir: Path) -> dict:
    try:
        return json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EstimateError(E_NO_CONFIG, path=str(model_dir)) from None
    except ValueError as e:
        raise EstimateError(E_BAD_JSON, details=str(e), path=str(model_dir / "config.json")) from None


def _cfg(cfg: dict, *names: str, default=None):
    for n in names:
        if cfg.get(n) is not None:
            return cfg[n]
    text = cfg.get("text_config") or {}
    for n in names:
        if text.get(n) is not None:
            return text[n]
    if default is not None:
        return default
    raise EstimateError(E_NO_FIELD, names=", ".join(names))


def safetensors_header(path: Path) -> dict:
    """The JSON header of a .safetensors file: {tensor name: {dtype, shape, data_offsets}}."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > 100 * 1024 * 1024:
            raise EstimateError(E_NOT_SAFETENSORS, path=str(path))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header


def _safetensors_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        return [model_dir / f for f in sorted(set(weight_map.values()))]
    return sorted(model_dir.glob("*.safetensors"))


def model_shape(model_dir: str | Path) -> ModelShape:
    """The sizes of a local model, from safetensors headers when present, else from config.json."""
    model_dir = Path(model_dir)
    cfg = _read_config(model_dir)
    hidden = int(_cfg(cfg, "hidden_size", "n_embd", "d_model"))
    layers = int(_cfg(cfg, "num_hidden_layers", "n_layer", "num_layers"))
    vocab = int(_cfg(cfg, "vocab_size"))
    heads = int(_cfg(cfg, "num_attention_heads", "n_head"))
    inter = int(_cfg(cfg, "intermediate_size", "ffn_hidden_size", "n_inner", default=4 * hidden))
    remote = bool(cfg.get("auto_map"))
    files = _safetensors_files(model_dir)
    if files and all(f.is_file() for f in files):
        total = linear = 0
        modules: dict[str, list[tuple[int, int]]] = {}
        for f in files:
            for name, info in safetensors_header(f).items():
                shape = info.get("shape") or []
                n = 1
                for d in shape:
                    n *= int(d)
                total += n
                parts = name.split(".")
                if len(shape) == 2 and parts[-1] == "weight" and len(parts) >= 2 and not any(
                        k in parts[-2] for k in _EMBED_NAMES) and parts[-2] not in _HEAD_NAMES:
                    linear += n
                    modules.setdefault(parts[-2], []).append((int(shape[1]), int(shape[0])))
        return ModelShape(total, linear, modules, hidden, layers, vocab, heads, inter, remote, "safetensors")
    return _shape_from_config(cfg, hidden, layers, vocab, heads, inter, remote)


def shape_from_config(cfg: dict) -> ModelShape:
    """The sizes of a model from its config.json values alone (a catalog entry before it is downloaded)."""
    hidden = int(_cfg(cfg, "hidden_size", "n_embd", "d_model"))
    heads = int(_cfg(cfg, "num_attention_heads", "n_head"))
    return _shape_from_config(cfg, hidden, int(_cfg(cfg, "num_hidden_layers", "n_layer", "num_layers")),
                              int(_cfg(cfg, "vocab_size")), heads,
                              int(_cfg(cfg, "intermediate_size", "ffn_hidden_size", "n_inner", default=4 * hidden)),
                              bool(cfg.get("auto_map")))


def _shape_from_config(cfg, hidden, layers, vocab, heads, inter, remote) -> ModelShape:
    kv = int(_cfg(cfg, "num_key_value_heads", default=heads))
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    experts = int(cfg.get("num_local_experts") or cfg.get("num_experts") or 1)
    moe_inter = int(cfg.get("moe_intermediate_size") or inter)
    proj = {
        "q_proj": (hidden, heads * head_dim), "k_proj": (hidden, kv * head_dim), "v_proj": (hidden, kv * head_dim),
        "o_proj": (heads * head_dim, hidden),
    }
    mlp_inter = moe_inter if experts > 1 else inter
    mlp = {"gate_proj": (hidden, mlp_inter), "up_proj": (hidden, mlp_inter), "down_proj": (mlp_inter, hidden)}
    modules = {k: [v] * layers for k, v in proj.items()}
    modules.update({k: [v] * layers * experts for k, v in mlp.items()})
    if experts > 1:
        modules["gate"] = [(hidden, experts)] * layers
    linear = sum(i * o for shapes in modules.values() for i, o in shapes)
    bias = (heads + 2 * kv) * head_dim * layers if (cfg.get("attention_bias") or cfg.get("model_type") == "qwen2") else 0
    norms = (2 * layers + 1) * hidden
    embed = vocab * hidden * (1 if cfg.get("tie_word_embeddings", False) else 2)
    return ModelShape(linear + bias + norms + embed, linear, modules, hidden, layers, vocab, heads, inter, remote,
                      "config.json")


def lora_params(shape: ModelShape, r: int, targets: Optional[list[str]] = None) -> int:
    """Trainable LoRA parameters: r × (in + out) per targeted linear layer (XTuner: all but the head)."""
    names = set(targets) if targets else set(shape.linear_modules)
    return sum(r * (i + o) for name, shapes in shape.linear_modules.items() if name in names for i, o in shapes)


@dataclass
class Estimate:
    parts: dict[str, int]  # label -> bytes per GPU
    cpu_offload: int
    total_params: int
    trainable_params: int
    world_size: int
    notes: list[str] = field(default_factory=list)

    @property
    def per_gpu(self) -> int:
        return sum(self.parts.values())

    @property
    def with_overhead(self) -> int:
        return int(self.per_gpu * (1 + SLACK) + OVERHEAD_BYTES)


def estimate(shape: ModelShape, method: str, hp: Hyperparams, num_gpus: int = 1, num_nodes: int = 1,
             deepspeed: Optional[str] = None) -> Estimate:
    """Peak GPU memory per device for one training step (see the module docstring)."""
    if deepspeed is not None and deepspeed not in DEEPSPEED_PRESETS:
        raise EstimateError(E_DEEPSPEED, name=repr(deepspeed), known=", ".join(DEEPSPEED_PRESETS))
    world = max(1, num_gpus) * max(1, num_nodes)
    stage = int(deepspeed[len("deepspeed_zero")]) if deepspeed else 0
    offload = bool(deepspeed and deepspeed.endswith("_offload"))
    adam = hp.optimizer == "AdamW"
    notes: list[str] = []

    W, lin = shape.total_params, shape.linear_params
    if method == "full":
        T = W
    else:
        T = lora_params(shape, hp.lora_r, hp.lora_target_modules)
        if T == 0:
            notes.append("No linear layer matches the LoRA targets: nothing would train.")

    if stage == 0:
        if method == "qlora":
            weights = lin * NF4_BYTES + (W - lin) * 4
        else:
            weights = W * 4
        if method != "full":
            weights += T * 4
        grads = T * 4
        optim = T * (8 if adam else 4)
        act_bytes = 4
    else:
        weights = (lin * NF4_BYTES + (W - lin) * 2) if method == "qlora" else W * 2
        if method != "full":
            weights += T * 2
        grads = T * 2
        optim = T * (12 if adam else 8)
        act_bytes = 2
        if stage >= 1:
            optim /= world
        if stage >= 2:
            grads /= world
        if stage >= 3:
            weights /= world
        if method == "qlora" and stage == 3:
            notes.append("ZeRO-3 with a 4-bit base model is not supported well by DeepSpeed; prefer ZeRO-2.")
    cpu = 0
    if offload:
        cpu += optim
        optim = 0
        if stage == 3:
            cpu += weights
            weights = 0

    b, s = hp.batch_size, hp.max_length
    h, L, V = shape.hidden, shape.layers, shape.vocab
    checkpoints = L * b * s * h * act_bytes
    layer = b * s * (16 * h + 8 * shape.intermediate) * 2  # one layer recomputed + its backward, fp16
    logits = b * s * V * LOGIT_BYTES
    attn = b * shape.heads * s * s * 6 if shape.remote_code else 0
    packed_mask = b * s * s if hp.pack_to_max_length and not shape.remote_code else 0  # one byte per pair
    if shape.remote_code:
        notes.append("The model brings its own code: eager attention assumed (length² attention scores).")
    if not hp.pack_to_max_length:
        notes.append("Without packing, sequences are at most max_length long: activations are an upper bound.")

    parts = {
        "weights": int(weights),
        "gradients": int(grads),
        "optimizer state": int(optim),
        "activations": int(checkpoints + layer + attn + packed_mask),
        "logits and loss": int(logits),
    }
    return Estimate(parts, int(cpu), W, T, world, notes)


@dataclass
class Fit:
    status: str  # "fits" | "tight" | "too_big" | "no_gpu"
    need: int
    have: Optional[int]
    gpu_name: Optional[str] = None


def fit_check(est: Estimate, gpus: list, num_gpus: int) -> Fit:
    """Compare the estimate (plus context and slack) with the smallest of the GPUs the run would use."""
    need = est.with_overhead
    used = gpus[:max(1, num_gpus)] if gpus else []
    if not used:
        return Fit("no_gpu", need, None)
    smallest = min(used, key=lambda g: g.memory_total)
    have = smallest.memory_total
    status = "too_big" if need > have else "tight" if need > 0.9 * have else "fits"
    return Fit(status, need, have, smallest.name)


def estimate_for_project(project) -> tuple[ModelShape, Estimate]:
    """Shape of the project's model and the estimate for its current choices."""
    if not project.model_path:
        raise EstimateError(E_NO_MODEL)
    shape = model_shape(project.model_path)
    return shape, estimate(shape, project.method, project.hyperparams, project.num_gpus or 1,
                           project.num_nodes, project.deepspeed)


@dataclass
class EncoderShape:
    """A vision encoder (CLIP / SigLIP vision tower) from its config.json: parameters and image tokens."""

    params: int
    hidden: int
    layers: int
    intermediate: int
    image_tokens: int  # patches per image: what one <image> becomes in the LLM's sequence
    linear_in_out: int  # sum of in + out over its linear layers (LoRA: r × this)


def encoder_shape_from_config(cfg: dict) -> EncoderShape:
    """The tower's sizes from config.json (a full CLIP/SigLIP config or its vision part); no weights read."""
    v = cfg.get("vision_config") or cfg
    h, L = int(_cfg(v, "hidden_size")), int(_cfg(v, "num_hidden_layers"))
    inter = int(_cfg(v, "intermediate_size", default=4 * h))
    image, patch = int(_cfg(v, "image_size")), int(_cfg(v, "patch_size"))
    patches = (image // patch) ** 2
    clip = "siglip" not in str(cfg.get("model_type", "")) + str(v.get("model_type", ""))
    layer = 4 * (h * h + h) + (h * inter + inter) + (inter * h + h) + 4 * h  # attention, MLP, two layer norms
    embed = int(_cfg(v, "num_channels", default=3)) * patch * patch * h + (patches + clip) * h + h  # + class token or patch bias
    norms = (2 * h if clip else 0) + 2 * h  # CLIP's pre-layernorm; the post-layernorm
    head = 0 if clip or not v.get("vision_use_head", True) else (  # SigLIP's attention-pooling head
        4 * h * h + 4 * h + h + 2 * h + 2 * h * inter + inter + h)
    # XTuner's LLaVA takes the second-last layer's patch features, CLIP's class token dropped
    return EncoderShape(L * layer + embed + norms + head, h, L, inter, patches, L * (4 * 2 * h + 2 * (h + inter)))


def encoder_shape(folder: str | Path) -> EncoderShape:
    return encoder_shape_from_config(_read_config(Path(folder)))


def vision_estimate(llm: ModelShape, enc: EncoderShape, stage: int, method: str, hp: Hyperparams,
                    encoder_lora: bool = False) -> Estimate:
    """Peak GPU memory of one LLaVA stage on one GPU (XTuner's LLaVAModel, no DeepSpeed).

    The LLM sees ``max_length`` text tokens plus the image's patches (``<image>`` is one token expanded to
    ``image_tokens``). Stage 1: the LLM and the encoder frozen in fp16, only the projector (two linear layers,
    counted as fp32 with AdamW: an upper bound) trains; the activations are the LLM's all the same (the
    gradient flows back through it to the projector). Stage 2: the LLM as ``estimate`` does for LoRA/QLoRA;
    the encoder in fp16, with optional LoRA (its activations then kept for the backward pass).
    """
    seq = hp.model_copy(update={"max_length": hp.max_length + enc.image_tokens - 1, "pack_to_max_length": False})
    est = estimate(llm, "lora" if stage == 1 else method, seq)
    parts = dict(est.parts)
    trainable = est.trainable_params
    if stage == 1:
        parts.update({"weights": llm.total_params * 2, "gradients": 0, "optimizer state": 0})
        trainable = 0
    b, n, h = hp.batch_size, enc.image_tokens, enc.hidden
    proj = enc.hidden * llm.hidden + llm.hidden + llm.hidden * llm.hidden + llm.hidden
    enc_lora = hp.lora_r * enc.linear_in_out if stage == 2 and encoder_lora else 0
    one_layer = b * n * (16 * h + 8 * enc.intermediate) * 2
    enc_act = enc.layers * b * n * h * 2 + one_layer if enc_lora else one_layer
    parts["vision encoder"] = int(enc.params * 2 + enc_lora * (4 + 4 + 8) + enc_act)
    parts["projector"] = int(proj * (4 + 4 + 8))
    notes = [x for x in est.notes if not x.startswith("Without packing")]
    return Estimate(parts, est.cpu_offload, llm.total_params + enc.params + proj, trainable + proj + enc_lora, 1, notes)
