"""Tiny random models of each family, built offline from the family's transformers config class, with a
tokenizer carrying the family's special tokens and real chat template (``core/data/chat_templates``).

They are what ``python -m core.smoke --arch NAME`` fine-tunes: the same shapes and code paths as the real
models (attention, MLP/MoE, norms, rotary, tied embeddings), a few hundred thousand parameters.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core import demo
from core.models.families import BY_KEY

CHAT_TEMPLATES = Path(__file__).resolve().parent.parent / "data" / "chat_templates"


@dataclass(frozen=True)
class TinySpec:
    config: str  # transformers config class
    model: str  # transformers model class
    specials: tuple[str, ...]
    eos: str
    pad: str
    bos: str | None = None
    add_bos: bool = False  # the tokenizer puts BOS before each text (as the family's tokenizer does)
    stop: tuple[str, ...] = ()  # extra end-of-turn tokens for generation_config
    tokenizer: str = "PreTrainedTokenizerFast"
    extra: dict = field(default_factory=dict)  # config arguments of this family


_QWEN = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
_GEMMA = ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>")
_GEMMA_EXTRA = dict(head_dim=16, query_pre_attn_scalar=16, sliding_window=64)
SPECS: dict[str, TinySpec] = {
    "qwen2": TinySpec("Qwen2Config", "Qwen2ForCausalLM", _QWEN, "<|im_end|>", "<|endoftext|>",
                      stop=("<|endoftext|>",), tokenizer="Qwen2TokenizerFast"),
    "qwen3": TinySpec("Qwen3Config", "Qwen3ForCausalLM", _QWEN + ("<think>", "</think>"), "<|im_end|>",
                      "<|endoftext|>", stop=("<|endoftext|>",), tokenizer="Qwen2TokenizerFast",
                      extra=dict(head_dim=16)),
    "qwen3_moe": TinySpec("Qwen3MoeConfig", "Qwen3MoeForCausalLM", _QWEN + ("<think>", "</think>"), "<|im_end|>",
                          "<|endoftext|>", stop=("<|endoftext|>",), tokenizer="Qwen2TokenizerFast",
                          extra=dict(head_dim=16, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64,
                                     decoder_sparse_step=1)),
    "llama3": TinySpec("LlamaConfig", "LlamaForCausalLM",
                       ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                        "<|eot_id|>"), "<|eot_id|>", "<|end_of_text|>", bos="<|begin_of_text|>", add_bos=True,
                       stop=("<|end_of_text|>",)),
    "mistral": TinySpec("MistralConfig", "MistralForCausalLM", ("<unk>", "<s>", "</s>"), "</s>", "<unk>",
                        bos="<s>", add_bos=True, extra=dict(sliding_window=None)),
    "gemma2": TinySpec("Gemma2Config", "Gemma2ForCausalLM", _GEMMA, "<eos>", "<pad>", bos="<bos>", add_bos=True,
                       stop=("<end_of_turn>",), extra=_GEMMA_EXTRA),
    "gemma3": TinySpec("Gemma3TextConfig", "Gemma3ForCausalLM", _GEMMA, "<eos>", "<pad>", bos="<bos>", add_bos=True,
                       stop=("<end_of_turn>",), extra=_GEMMA_EXTRA),
    "phi3": TinySpec("Phi3Config", "Phi3ForCausalLM",
                     ("<unk>", "<s>", "<|endoftext|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"),
                     "<|endoftext|>", "<|endoftext|>", bos="<s>", stop=("<|end|>",)),
    "phi4_mini": TinySpec("Phi3Config", "Phi3ForCausalLM",
                          ("<|endoftext|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>", "<|tool|>",
                           "<|/tool|>"), "<|endoftext|>", "<|endoftext|>", bos="<|endoftext|>", stop=("<|end|>",),
                          extra=dict(partial_rotary_factor=0.75)),
    "r1_distill": TinySpec("Qwen2Config", "Qwen2ForCausalLM",
                           ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
                            "<think>", "</think>"), "<｜end▁of▁sentence｜>", "<｜end▁of▁sentence｜>",
                           bos="<｜begin▁of▁sentence｜>", add_bos=True),
}


def chat_template(name: str) -> str:
    return (CHAT_TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")


def build_tokenizer(arch: str, out_dir: str | Path | None = None):
    """A byte-level BPE tokenizer trained offline, with the family's special tokens and chat template."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    spec, family = SPECS[arch], BY_KEY[arch]
    extra = demo.QUESTIONS + [demo.self_intro_answer(), "You are a helpful assistant."]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1024, special_tokens=list(spec.specials), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(demo._corpus(extra), trainer=trainer)
    if spec.add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos} $A", pair=f"{spec.bos} $A {spec.bos} $B",
            special_tokens=[(spec.bos, tok.token_to_id(spec.bos))])
    cls = getattr(transformers, spec.tokenizer)
    tokenizer = cls(tokenizer_object=tok, eos_token=spec.eos, pad_token=spec.pad, bos_token=spec.bos,
                    unk_token="<unk>" if "<unk>" in spec.specials else None,
                    additional_special_tokens=[s for s in spec.specials if s not in (spec.eos, spec.pad, spec.bos)],
                    model_max_length=4096, model_input_names=["input_ids", "attention_mask"])
    tokenizer.chat_template = chat_template(family.chat_template)
    if out_dir is not None:
        tokenizer.save_pretrained(out_dir)
    return tokenizer


def build_tiny_model(out_dir: str | Path, arch: str, seed: int = 0, hidden_size: int = 64, layers: int = 2) -> Path:
    """Build the tiny ``arch`` model + tokenizer into ``out_dir`` (a Hugging Face model directory)."""
    import torch
    import transformers
    from transformers import GenerationConfig

    spec = SPECS[arch]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(arch, out_dir)
    ids = tokenizer.convert_tokens_to_ids
    eos_ids = [ids(spec.eos)] + [ids(s) for s in spec.stop]
    bos_id = ids(spec.bos) if spec.bos else ids(spec.pad)
    config = getattr(transformers, spec.config)(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        tie_word_embeddings=True, bos_token_id=bos_id, eos_token_id=eos_ids[0], pad_token_id=ids(spec.pad),
        torch_dtype="float32",
        # as in core.demo: large enough that a LoRA adapter alone can teach the model a new answer
        initializer_range=0.5, **spec.extra)
    torch.manual_seed(seed)
    model = getattr(transformers, spec.model)(config)
    model.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_ids, pad_token_id=ids(spec.pad),
                                               do_sample=False)
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir
