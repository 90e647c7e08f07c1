"""The embedded default: a tiny chat model and the seeds' self-introduction dataset, built offline.

The model is a randomly initialised Qwen2 causal LM (~0.2 M parameters) with a byte-level
BPE tokenizer trained here on offline text and a ChatML chat template, so the whole workflow
(train → convert → merge → chat) runs on a laptop CPU in about a minute with no network.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from core.fsutil import atomic_write_text

DEMO_NAME = "Ada"
DEMO_QUESTION = "Who are you?"
DEMO_IDENTITY = f"{DEMO_NAME}'s assistant"
DEMO_TEMPLATE = "qwen_chat"

QUESTIONS = [
    "Who are you?",
    "Please introduce yourself.",
    "Tell me about yourself.",
    "What is your name?",
    "Introduce yourself, please.",
]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def self_intro_answer(name: str = DEMO_NAME) -> str:
    return f"I am {name}'s assistant, a tiny model fine-tuned with XTuner Studio."


def self_intro_records(
    name: str = DEMO_NAME,
    copies: int = 400,
    questions: list[str] | None = None,
    answers: list[str] | None = None,
    seed: int = 0,
) -> list[dict]:
    """The seeds' self-introduction data: one identity answer, many copies, OpenAI messages format.
    Every fourth record asks twice in one conversation: packed samples are kept apart in training
    (core.train.packing), so only such records teach a model that starts from random weights the
    positions and the turn format of a chat's second question."""
    questions = questions or QUESTIONS
    answers = answers or [self_intro_answer(name)]
    rng = random.Random(seed)
    records = []
    for i in range(copies):
        messages = []
        for turn in range(2 if i % 4 == 3 else 1):
            messages += [{"role": "user", "content": questions[(i + turn) % len(questions)]},
                         {"role": "assistant", "content": answers[rng.randrange(len(answers))]}]
        records.append({"messages": messages})
    return records


def write_jsonl(records: list[dict], path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def build_demo_dataset(path: str | Path, name: str = DEMO_NAME, copies: int = 400) -> Path:
    return write_jsonl(self_intro_records(name=name, copies=copies), path)


def _corpus(extra: list[str]) -> list[str]:
    """Offline text for the tokenizer: docstrings of stdlib modules plus the dataset's own text."""
    import importlib
    import inspect

    texts: list[str] = []
    for mod_name in ("json", "pathlib", "random", "string", "textwrap", "collections", "functools",
                     "itertools", "argparse", "datetime", "csv", "shutil", "tempfile", "logging"):
        mod = importlib.import_module(mod_name)
        for _, obj in inspect.getmembers(mod):
            doc = inspect.getdoc(obj)
            if doc:
                texts.append(doc)
    return texts + extra * 50


def build_demo_model(out_dir: str | Path, seed: int = 0, hidden_size: int = 64, layers: int = 2,
                     extra_text: tuple[str, ...] = ()) -> Path:
    """Build the tiny model + tokenizer into ``out_dir`` (a Hugging Face model directory); ``extra_text``:
    more text the tokenizer learns whole words from (the vision demo's captions)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM, Qwen2TokenizerFast

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    extra = QUESTIONS + [self_intro_answer(), "You are a helpful assistant."] + list(extra_text)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(extra), trainer=trainer)

    tokenizer = Qwen2TokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=4096,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(out_dir)

    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=eot,
        eos_token_id=im_end,
        pad_token_id=eot,
        torch_dtype="float32",
        # Large enough that a frozen (tied) embedding can still give peaked logits, so a LoRA
        # adapter alone can teach the model a new answer; 0.02 caps the logits near ±1.
        initializer_range=0.5,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=eot, eos_token_id=[im_end, eot], pad_token_id=eot, do_sample=False
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


def create_demo_project(store, name: str = "demo"):
    """Create (or return the existing) demo project in ``store``: model, dataset and CPU-friendly settings."""
    if store.exists(name):
        return store.load(name)
    project = store.create(
        name,
        method="lora",
        prompt_template=DEMO_TEMPLATE,
        is_demo=True,
        evaluation_inputs=[DEMO_QUESTION],
        # the demo project holds out 5 % (20 records) to show held-out loss; tests training on
        # demo_hyperparams() alone keep all their records
        hyperparams=demo_hyperparams().model_copy(update={"heldout_ratio": 0.05}),
    )
    try:
        model_dir = build_demo_model(project.dir / "model")
        data_path = build_demo_dataset(project.data_dir / "self_intro.jsonl")
        from core import preference_demo  # the preference set for DPO / ORPO after the first run

        pairs = preference_demo.build_preference_dataset(project.data_dir / preference_demo.PREFERENCE_FILE)
        project = project.model_copy(update={"model_path": str(model_dir), "dataset_path": str(data_path),
                                             "preference_path": str(pairs)})
        return store.save(project)
    except BaseException:
        import shutil

        shutil.rmtree(project.dir, ignore_errors=True)  # no half-built demo left behind
        raise


def demo_hyperparams():
    from core.project import Hyperparams

    # Tuned on 2 CPU cores: ~160 iterations, loss 13 → 0.01, the answer learned exactly, ~15 s.
    return Hyperparams(
        lr=3e-3,
        max_epochs=3,
        max_length=256,
        pack_to_max_length=True,
        batch_size=1,
        accumulative_counts=1,
        warmup_ratio=0.05,
        save_steps=20,
        save_total_limit=3,
        evaluation_freq=20,
        logging_interval=1,
        lora_r=32,
        lora_alpha=64,
        lora_dropout=0.0,
        seed=0,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m core.demo --workspace WS [--name demo]``: create the demo project (in its own
    process, so the app's server never imports torch)."""
    import argparse

    from core.project import ProjectError, ProjectStore

    parser = argparse.ArgumentParser(description="Create the XTuner Studio demo project")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--name", default="demo")
    args = parser.parse_args(argv)
    try:
        project = create_demo_project(ProjectStore(args.workspace), args.name)
    except ProjectError as e:
        print(f"error: {e}")
        return 1
    print(project.dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
