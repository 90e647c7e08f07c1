"""Training speed of the app's job path against a plain Hugging Face ``Trainer``, one after the other.

    .venv/bin/python bench/gpu_throughput.py --method full            # random Qwen2.5-1.5B-shaped model
    .venv/bin/python bench/gpu_throughput.py --method lora --size 0.5b
    .venv/bin/python bench/gpu_throughput.py --device cpu             # the CPU self-check alone

Same model (a random-init Qwen-family config, no download), same data (the self-introduction records
packed to ``--max-length``), same method, batch 1 and the app's gradient accumulation, run
(a) through the app's job path (``runs.start_new_run`` → supervisor → XTuner, the config the Train page
writes) and (b) through a plain ``transformers.Trainer`` script with sensible defaults (bf16 where the
GPU has it, SDPA attention, gradient checkpointing, AdamW), each in its own process. Printed for each:
tokens/s, MFU (model FLOPs per token × tokens/s ÷ the GPU's peak dense bf16 FLOP/s, looked up by its
name), peak memory (``torch.cuda.max_memory_allocated``) and the loss after N steps; the last line is
``ratio=<app/baseline tokens per second>``.

FLOPs per token (PaLM's accounting, recomputation by gradient checkpointing not counted): full
fine-tuning 6·N + 12·L·d·s, LoRA 4·N + 12·L·d·s (no weight gradients of the frozen base), where N are the
parameters of the matrix multiplications (the output head included, the embedding lookup not), L layers,
d the attention width, s the sequence length.

Without a GPU it runs both paths at tiny size on the CPU, checks its own arithmetic (the FLOPs formula
against torch's FLOP counter, tokens/s and MFU from their parts) and prints ``error=no GPU``; exit 0
when the checks pass.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Peak dense bf16 tensor-core FLOP/s by GPU name (vendor data sheets, no sparsity); longest match wins.
PEAK_BF16 = {
    "H200": 989e12, "GH200": 989e12, "H100 SXM": 989e12, "H100 80GB HBM3": 989e12, "H100 NVL": 835e12,
    "H100 PCIe": 756e12, "H100": 756e12, "H20": 148e12, "H800": 989e12, "B200": 2250e12, "B100": 1750e12,
    "A100": 312e12, "A800": 312e12, "A40": 149.7e12, "A30": 165e12, "A10G": 70e12, "A10": 125e12,
    "L40S": 362e12, "L40": 181e12, "L4": 121e12, "RTX 6000 Ada": 364.2e12, "RTX A6000": 154.8e12,
    "RTX 4090": 165.2e12, "RTX 3090": 71e12,
}
# A random Qwen2.5-shaped model per size: hidden, layers, heads, KV heads, MLP width, vocabulary.
SIZES = {
    "1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                 intermediate_size=8960, vocab_size=151936),
    "0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864, vocab_size=151936),
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, vocab_size=1024),
}
TOKENS_PER_RECORD = 28  # a self-introduction exchange in ChatML with the demo tokenizer, at least


def peak_flops(gpu_name: str) -> float | None:
    """The GPU's peak dense bf16 FLOP/s from its name, or None when the table does not know it."""
    hits = [k for k in PEAK_BF16 if k.lower() in gpu_name.lower()]
    return PEAK_BF16[max(hits, key=len)] if hits else None


def matmul_params(cfg: dict) -> int:
    """Parameters of the matrix multiplications of a Qwen2 decoder: attention, MLP and the output head."""
    d, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    head_dim = d // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * head_dim
    attn = d * d + 2 * d * kv + d * d
    mlp = 3 * d * cfg["intermediate_size"]
    return L * (attn + mlp) + V * d


def flops_per_token(cfg: dict, method: str, seq_len: int) -> float:
    """Training FLOPs per token (module docstring): 6N (full) or 4N (LoRA) + 12·L·d·s for attention."""
    n = matmul_params(cfg)
    return (6 if method == "full" else 4) * n + 12 * cfg["num_hidden_layers"] * cfg["hidden_size"] * seq_len


def mfu(tokens_per_s: float, flops_token: float, peak: float | None) -> float | None:
    return tokens_per_s * flops_token / peak if peak else None


def build_inputs(root: Path, size: str, max_length: int, micro_batches: int, device: str) -> tuple[Path, Path]:
    """The random model and the packed dataset, built offline."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from core import demo

    model_dir = root / "model"
    demo.build_demo_model(model_dir)  # the demo's tokenizer (and a tiny model, replaced below)
    cfg = json.loads((model_dir / "config.json").read_text())
    shape = SIZES[size]
    config = Qwen2Config(**{k: cfg[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")}, **shape,
                         max_position_embeddings=max(4096, max_length), tie_word_embeddings=True,  # as Qwen2.5 ≤ 3B
                         torch_dtype="bfloat16" if device == "cuda" else "float32")
    torch.manual_seed(0)
    with torch.device("cuda" if device == "cuda" else "cpu"):
        model = Qwen2ForCausalLM(config)
    if device == "cuda":
        model = model.to(torch.bfloat16)
    model.save_pretrained(model_dir, safe_serialization=True)
    del model
    copies = max(50, (micro_batches + 1) * max_length // TOKENS_PER_RECORD)
    data = demo.build_demo_dataset(root / "data.jsonl", copies=copies)
    return model_dir, data


def run_app(root: Path, model_dir: Path, data: Path, method: str, max_length: int, device: str,
            settings: dict) -> dict:
    """Train through the app's own job path (its defaults, ``settings`` on top); times and losses from
    mmengine's scalars."""
    from core import jobs
    from core.project import ProjectStore
    from core.results.metrics import ScalarsReader
    from core.train import runs
    from core.train.hyperparams import defaults

    hp = defaults(method).model_copy(update=dict(
        max_length=max_length, max_epochs=1, batch_size=1, save_steps=1_000_000, save_total_limit=1,
        evaluation_freq=1_000_000, logging_interval=1, seed=0, **settings))
    store = ProjectStore(root / "ws")
    project = store.create("bench", method=method, model_path=str(model_dir), prompt_template="qwen_chat",
                           dataset_path=str(data), hyperparams=hp, evaluation_inputs=[],
                           num_gpus=1 if device == "cuda" else 0)
    run, _ = runs.start_new_run(project, device, gpu_count=1 if device == "cuda" else 0)
    job = jobs.wait_job(run.dir, timeout=3600)
    if job.state != "succeeded":
        raise SystemExit(f"the app's run {job.state}: {job.reason}\n{run.log_path.read_text(errors='replace')[-3000:]}")
    reader = ScalarsReader(run.work_dir)
    reader.poll()
    _, times = reader.series("time")
    _, loss = reader.series("loss")
    _, memory = reader.series("memory")
    accum = hp.accumulative_counts
    steady = times[accum:-1]  # after the first optimizer step; the last pack may be short
    return dict(seconds=sum(steady), tokens=len(steady) * max_length, loss=loss[-1], accumulation=accum,
                micro_batches=len(times), peak_memory_bytes=int(max(memory) * 2**20) if memory else None)


def run_baseline(model_dir: Path, data: Path, method: str, max_length: int, device: str, accum: int,
                 micro_batches: int, out: Path) -> dict:
    """The plain Trainer script, in its own process (its peak memory is its own)."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--baseline-worker", str(out), "--model", str(model_dir),
            "--data", str(data), "--method", method, "--max-length", str(max_length), "--device", device,
            "--accumulation", str(accum), "--micro-batches", str(micro_batches)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    subprocess.run(argv, check=True, cwd=REPO, env=env)
    return json.loads(out.read_text())


def baseline_worker(args) -> None:
    """(b): transformers.Trainer on the same packed tokens (concatenated and cut, as a plain script does)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    gpu = args.device == "cuda"
    bf16 = gpu and torch.cuda.is_bf16_supported()
    tok = AutoTokenizer.from_pretrained(args.model)
    ids: list[int] = []
    for line in Path(args.data).read_text().splitlines():
        ids += tok.apply_chat_template(json.loads(line)["messages"], tokenize=True)
    blocks = [ids[i:i + args.max_length] for i in range(0, len(ids) - args.max_length + 1, args.max_length)]
    blocks = blocks[:args.micro_batches]
    dataset = [{"input_ids": b, "labels": b} for b in blocks]
    dtype = torch.bfloat16 if (bf16 and args.method != "full") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=dtype, attn_implementation="sdpa")
    if args.method != "full":
        from peft import LoraConfig, get_peft_model

        from core.train.hyperparams import defaults

        hp = defaults(args.method)
        model.enable_input_require_grads()  # gradient checkpointing with a frozen embedding
        model = get_peft_model(model, LoraConfig(r=hp.lora_r, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    step_ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            if gpu:
                torch.cuda.synchronize()
            step_ends.append(time.perf_counter())

    hp_lr = 2e-5 if args.method == "full" else 2e-4
    targs = TrainingArguments(
        output_dir=str(Path(args.baseline_worker).parent / "hf_out"), per_device_train_batch_size=1,
        gradient_accumulation_steps=args.accumulation, num_train_epochs=1, learning_rate=hp_lr,
        lr_scheduler_type="cosine", warmup_ratio=0.03, bf16=bf16, fp16=gpu and not bf16,
        gradient_checkpointing=True, logging_steps=1, save_strategy="no", report_to=[], use_cpu=not gpu,
        dataloader_num_workers=0, seed=0, disable_tqdm=True)
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(model=model, args=targs, train_dataset=dataset, callbacks=[Clock()])
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    steps = len(step_ends) - 1
    Path(args.baseline_worker).write_text(json.dumps(dict(
        seconds=step_ends[-1] - step_ends[0], tokens=steps * args.accumulation * args.max_length,
        loss=losses[-1] if losses else None, accumulation=args.accumulation, micro_batches=len(blocks),
        peak_memory_bytes=torch.cuda.max_memory_allocated() if gpu else None)))


def report(name: str, result: dict, flops_token: float, peak: float | None) -> float:
    tps = result["tokens"] / result["seconds"]
    util = mfu(tps, flops_token, peak)
    mem = result["peak_memory_bytes"]
    print(f"{name}: tokens/s={tps:.1f} MFU={'%.1f%%' % (100 * util) if util is not None else 'n/a'} "
          f"peak_memory={'%.2f GiB' % (mem / 2**30) if mem else 'n/a'} loss_after_{result['micro_batches']}_"
          f"micro_batches={result['loss']:.4f}", flush=True)
    return tps


def check_arithmetic(size: str, method: str, seq_len: int) -> list[str]:
    """What is wrong with this script's arithmetic ([] when nothing): the FLOPs formula against torch's
    FLOP counter on one forward + backward of the model, and MFU / peak look-up on known values."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import Qwen2Config, Qwen2ForCausalLM

    problems = []
    cfg = SIZES[size]
    torch.manual_seed(0)
    # eager attention: its matmuls are what the counter sees (CPU SDPA kernels are not counted)
    model = Qwen2ForCausalLM(Qwen2Config(**cfg, tie_word_embeddings=True, attn_implementation="eager"))
    if method != "full":
        for p in model.parameters():
            p.requires_grad_(False)
        model.get_input_embeddings().weight.requires_grad_(True)  # keeps the backward graph (as XTuner's hook)
    ids = torch.randint(0, cfg["vocab_size"], (1, seq_len))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids, labels=ids).loss.backward()
    counted = counter.get_total_flops() / seq_len
    expected = flops_per_token(cfg, method, seq_len)
    if method != "full":  # the frozen-base count: the embedding's gradient adds one V·d matmul backward
        expected += 2 * cfg["vocab_size"] * cfg["hidden_size"]
    if abs(counted - expected) / counted > 0.02:
        problems.append(f"FLOPs per token: formula {expected:.4g}, torch counts {counted:.4g}")
    if peak_flops("NVIDIA H100 80GB HBM3") != 989e12 or peak_flops("NVIDIA H100 PCIe") != 756e12 \
            or peak_flops("NVIDIA H200") != 989e12 or peak_flops("Tesla T4") is not None:
        problems.append("peak FLOP/s look-up by GPU name")
    if abs(mfu(1000.0, 4e11, 1e15) - 0.4) > 1e-12:
        problems.append("MFU arithmetic")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=["lora", "full"], default="full")
    parser.add_argument("--size", choices=sorted(SIZES), default="1.5b")
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--micro-batches", type=int, default=80, help="micro-batches (iterations) per path")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp16"], default="auto", help="the app's setting")
    parser.add_argument("--fused-kernels", action="store_true", help="the app's Liger option (off by default)")
    parser.add_argument("--workdir", help="keep everything here (default: a temporary directory)")
    parser.add_argument("--baseline-worker", help=argparse.SUPPRESS)
    for hidden in ("--model", "--data", "--accumulation"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_worker:
        args.accumulation = int(args.accumulation)
        baseline_worker(args)
        return 0

    from core.machine import system

    gpus = system.gpus() if args.device != "cpu" else []
    device = "cuda" if gpus else "cpu"
    size, max_length, micro = args.size, args.max_length, args.micro_batches
    if device == "cpu":  # the self-check: both paths at tiny size, three optimizer steps each
        from core.train.hyperparams import defaults

        size, max_length, micro = "tiny", 128, 3 * defaults(args.method).accumulative_counts
    with tempfile.TemporaryDirectory(prefix="gpu-throughput-") as tmp:
        root = Path(args.workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        gpu_name = gpus[0].name if gpus else "CPU"
        peak = peak_flops(gpu_name) if gpus else None
        cfg = SIZES[size]
        flops_token = flops_per_token(cfg, args.method, max_length)
        print(f"device={gpu_name} peak_bf16_flops={peak if peak else 'unknown'} model=qwen2-{size} "
              f"({matmul_params(cfg) / 1e6:.1f} M matmul parameters) method={args.method} max_length={max_length} "
              f"flops_per_token={flops_token:.4g}", flush=True)
        model_dir, data = build_inputs(root, size, max_length, micro, device)
        settings = dict(precision=args.precision, fused_kernels=args.fused_kernels)
        print(f"app settings: {settings}", flush=True)
        app = run_app(root, model_dir, data, args.method, max_length, device, settings)
        base = run_baseline(model_dir, data, args.method, max_length, device, app["accumulation"], micro,
                            root / "baseline.json")
        app_tps = report("app", app, flops_token, peak)
        base_tps = report("baseline", base, flops_token, peak)
    if device == "cpu":
        problems = check_arithmetic("tiny", args.method, max_length)
        for p in problems:
            print(f"arithmetic check failed: {p}")
        print(f"arithmetic={'ok' if not problems else 'FAILED'}")
        print("error=no GPU")
        return 1 if problems else 0
    print(f"ratio={app_tps / base_tps:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
