"""The Configure page's memory estimate vs the peak memory a real XTuner run allocates (GPU only).

    .venv/bin/python bench/estimate_vs_measured.py --model /models/Qwen2.5-0.5B-Instruct --method lora
    .venv/bin/python bench/estimate_vs_measured.py --method full            # a generated ~110 M model
    .venv/bin/python bench/estimate_vs_measured.py --model M --method qlora --max-length 1024 --batch-size 2
    .venv/bin/python bench/estimate_vs_measured.py --model M --method lora --deepspeed deepspeed_zero2

It builds a throw-away project (the self-introduction data, repeated so that packing gives about
``--iters`` iterations), writes the config the app would write for a GPU (``core.train.configgen``), trains
it with the app's own entry point (``python -m core.train.xtuner_entry train``), and reads the ``memory``
that mmengine logs every iteration (``torch.cuda.max_memory_allocated``, in MB). It prints the
estimate's parts, the measured peak and the error; the last line is ``error=<+x.x%>``.
Without ``--model`` it generates a random Qwen2 model (hidden 1024, 12 layers, vocab 1024) offline.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TOKENS_PER_RECORD = 30  # a self-introduction exchange in a chat template, roughly


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a local Hugging Face model folder (default: generate one)")
    parser.add_argument("--method", choices=["qlora", "lora", "full"], default="lora")
    parser.add_argument("--template", help="XTuner prompt template (default: detected from the model)")
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--lora-r", type=int, default=64)
    parser.add_argument("--iters", type=int, default=12)
    parser.add_argument("--deepspeed", choices=["deepspeed_zero1", "deepspeed_zero2", "deepspeed_zero3"])
    parser.add_argument("--workdir", help="keep the run here (default: a temporary directory)")
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--estimate-only", action="store_true", help="print the estimate, train nothing (no GPU needed)")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available() and not args.estimate_only:
        print("No CUDA GPU: this benchmark measures GPU memory.", file=sys.stderr)
        return 2
    root = Path(args.workdir or tempfile.mkdtemp(prefix="estimate-vs-measured-"))
    root.mkdir(parents=True, exist_ok=True)

    from core import demo
    from core.train.configgen import render_config, spec_from_project
    from core.models.estimate import GIB, estimate_for_project
    from core.results.metrics import ScalarsReader
    from core.project import Hyperparams, ProjectStore
    from core.train.runs import training_env
    from core.data.templates import detect_template

    model = args.model
    if not model:
        model = str(demo.build_demo_model(root / "model", hidden_size=1024, layers=12))
    template = args.template or detect_template(model) or "qwen_chat"
    copies = max(50, args.iters * args.batch_size * args.max_length // TOKENS_PER_RECORD)
    data = demo.build_demo_dataset(root / "data.jsonl", copies=copies)
    hp = Hyperparams(max_length=args.max_length, batch_size=args.batch_size, accumulative_counts=1, max_epochs=1,
                     lora_r=args.lora_r, lora_alpha=2 * args.lora_r, save_steps=100_000, save_total_limit=1,
                     evaluation_freq=100_000, logging_interval=1, warmup_ratio=0.03, seed=0)
    store = ProjectStore(root / "ws")
    name = f"bench-{args.method}"
    project = store.load(name) if store.exists(name) else store.create(
        name, method=args.method, model_path=model, prompt_template=template, dataset_path=str(data),
        hyperparams=hp, evaluation_inputs=[], num_gpus=1, deepspeed=args.deepspeed)

    shape, est = estimate_for_project(project)
    if args.estimate_only:
        for part, size in est.parts.items():
            print(f"  estimate {part:16s} {size / GIB:8.3f} GiB")
        print(f"estimate (per GPU): {est.per_gpu / GIB:.3f} GiB for {shape.total_params:,} parameters")
        return 0
    run_dir = project.dir / "run"
    run_dir.mkdir(exist_ok=True)
    config = run_dir / "config.py"
    config.write_text(render_config(spec_from_project(project, device="cuda")), encoding="utf-8")
    argv = [sys.executable, "-m", "core.train.xtuner_entry", "train", str(config), "--work-dir", str(run_dir / "work_dir")]
    if args.deepspeed:
        argv += ["--deepspeed", args.deepspeed]
    env = dict(os.environ, **training_env(project))
    log = run_dir / "train.log"
    print(f"training {args.method} on {torch.cuda.get_device_name(0)}: {' '.join(argv)}", flush=True)
    with open(log, "wb") as out:
        code = subprocess.run(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if code != 0:
        print(log.read_text(errors="replace")[-4000:])
        print(f"training failed (exit {code}); log: {log}", file=sys.stderr)
        return 1

    reader = ScalarsReader(run_dir / "work_dir")
    reader.poll()
    _, memory = reader.series("memory")
    if not memory:
        print(f"no 'memory' in scalars.json (is mmengine logging on a GPU?); log: {log}", file=sys.stderr)
        return 1
    measured = max(memory) * 1024 * 1024
    error = (est.per_gpu - measured) / measured
    print(f"model: {model} ({shape.total_params:,} parameters, sizes from {shape.source})")
    print(f"method {args.method}, batch {args.batch_size} × max_length {args.max_length}, LoRA r {args.lora_r}, "
          f"DeepSpeed {args.deepspeed or 'off'}, {len(memory)} iterations logged")
    for part, size in est.parts.items():
        print(f"  estimate {part:16s} {size / GIB:8.3f} GiB")
    print(f"estimate (per GPU):           {est.per_gpu / GIB:8.3f} GiB")
    print(f"measured max_memory_allocated {measured / GIB:8.3f} GiB")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model": model, "method": args.method, "max_length": args.max_length, "batch_size": args.batch_size,
            "deepspeed": args.deepspeed, "gpu": torch.cuda.get_device_name(0), "estimate_bytes": est.per_gpu,
            "parts": est.parts, "measured_bytes": measured, "error": error}, indent=2))
    print(f"error={100 * error:+.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
