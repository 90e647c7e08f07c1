"""What the app's job mechanism costs per training iteration, against the raw ``xtuner train`` CLI.

    .venv/bin/python bench/launch_overhead.py [--repeats 2] [--iters 120] [--hidden 128] [--layers 2] [--keep DIR]

One config, trained in one invocation of this script by both:

- **cli**: XTuner's own command, ``xtuner train CONFIG --work-dir DIR``, started the way a user
  does, with this environment's ``bin/`` first on ``PATH`` (the ``xtuner`` wrapper re-launches
  whatever ``python`` comes first there). On a machine without CUDA that command dies in
  ``xtuner/model/sft.py`` (``torch.cpu.is_bf16_supported`` is missing from CPU builds of torch), so
  the baseline gets a ``sitecustomize.py`` on ``PYTHONPATH`` that applies exactly that one patch
  and nothing else; with a GPU the patch does nothing. The baseline config is the app's config
  without the app's two hooks (progress file, stop request).
- **app**: ``runs.start_training`` — ``job.json``, the detached supervisor, ``core.train.xtuner_entry``
  and the Studio hooks active — on the app's config.

Both get the same environment otherwise (offline variables, ``HF_HOME``, thread settings).
The figure compared is mmengine's own per-iteration ``time`` from ``scalars.json`` (logging
every iteration), mean over each run after ``--warmup`` iterations, averaged over the repeats,
which alternate cli, app, app, cli, ... to spread drift in machine load over both, after one
untimed warm-up run. The model is the
demo's architecture made bigger (``--hidden``, ``--layers``) and the data long enough for
``--iters`` iterations of one epoch (no epoch-boundary pause, one checkpoint at the end,
no evaluation). Everything lives in a temporary directory, deleted at the end (``--keep DIR``:
in DIR, kept, with every run's log).

The last line is ``ratio=<app/cli mean iteration time>`` (goal: at most 1.02).
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SHIM = '''"""Benchmark baseline shim: the one fix XTuner 0.2.0 needs to train on a CPU build of torch."""
import torch

if not hasattr(torch.cpu, "is_bf16_supported"):
    torch.cpu.is_bf16_supported = lambda *args, **kwargs: False
'''
STUDIO_HOOK_LINE = re.compile(r"^\s*dict\(type=Studio(Progress|Stop)Hook.*\n", re.M)


def iteration_times(work_dir: Path, warmup: int) -> list[float]:
    from core.results.metrics import ScalarsReader

    reader = ScalarsReader(work_dir)
    reader.poll()
    iters, values = reader.series("time")
    times = [t for it, t in zip(iters, values) if it > warmup]
    if not times:
        raise RuntimeError(f"no iteration times in {work_dir}")
    return times


def make_project(ws: Path, iters: int, hidden: int, layers: int):
    from core import demo
    from core.project import ProjectStore

    store = ProjectStore(ws)
    hp = demo.demo_hyperparams().model_copy(update={
        "max_epochs": 1, "max_length": 512, "logging_interval": 1, "save_steps": 10 ** 6,
        "evaluation_freq": 10 ** 6, "save_total_limit": 1, "warmup_ratio": 0.03})
    project = store.create("bench", method="lora", prompt_template=demo.DEMO_TEMPLATE, evaluation_inputs=[],
                           hyperparams=hp, num_gpus=1)
    model = demo.build_demo_model(project.dir / "model", hidden_size=hidden, layers=layers)
    # ~34 tokens a record, packed into 512-token sequences: 15 records an iteration
    data = demo.build_demo_dataset(project.data_dir / "data.jsonl", copies=iters * 15)
    return store.save(project.model_copy(update={"model_path": str(model), "dataset_path": str(data)}))


def run_cli(config: Path, work_dir: Path, env: dict[str, str], shim_dir: Path, log: Path) -> float:
    env = dict(env)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = os.pathsep.join([str(shim_dir), str(REPO)])  # the shim; core.train.mmhooks for the LR warmup
    t0 = time.monotonic()
    with open(log, "wb") as out:
        # the wrapper always exits 0 (XTUNER_FACTS.md): success is judged from scalars.json
        subprocess.run(["xtuner", "train", str(config), "--work-dir", str(work_dir)], env=env, stdout=out,
                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
    return time.monotonic() - t0


def run_app(project, device: str) -> tuple[Path, float]:
    from core import jobs
    from core.train import runs

    t0 = time.monotonic()
    run, _ = runs.start_new_run(project, device, gpu_count=1 if device == "cuda" else 0)
    job = jobs.wait_job(run.dir, timeout=3600)
    if job.state != "succeeded":
        raise RuntimeError(f"app run {job.state}: {job.reason}\n{run.log_path.read_text()[-3000:]}")
    return run.work_dir, time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="app job mechanism vs raw xtuner train: mean iteration time")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each (alternating cli/app)")
    parser.add_argument("--iters", type=int, default=120)
    parser.add_argument("--warmup", type=int, default=10, help="first iterations left out of the mean")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--keep", help="work in this directory and keep it (logs, configs, scalars)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for both sides (default: torch's own choice); "
                                                    "1 makes a loaded machine's noise smaller")
    args = parser.parse_args(argv)

    from core.train import runs
    from core.machine import system
    from core.train.configgen import render_config, spec_from_project

    device = system.device()
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as scratch:
        tmp = Path(args.keep).resolve() if args.keep else Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        project = make_project(tmp / "ws", args.iters, args.hidden, args.layers)
        shim = tmp / "shim"
        shim.mkdir()
        (shim / "sitecustomize.py").write_text(SHIM)
        if args.threads:
            os.environ["OMP_NUM_THREADS"] = str(args.threads)  # both sides inherit it
        env = dict(os.environ, **runs.training_env(project))
        print(f"device {device}; model hidden {args.hidden} × {args.layers} layers; "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; built in {time.monotonic() - t0:.0f}s",
              flush=True)

        # an untimed first run takes what only a first run pays (caches, a cold machine), then ABBA...
        order = ["warm-up"] + (["cli", "app", "app", "cli"] * args.repeats)[: 2 * args.repeats]
        results: dict[str, list[float]] = {"cli": [], "app": [], "warm-up": []}
        medians: dict[str, list[float]] = {"cli": [], "app": [], "warm-up": []}
        for n, kind in enumerate(order, 1):
            if kind in ("app", "warm-up"):
                work_dir, wall = run_app(project, device)
            else:
                # the same config the app generates, without the app's own hooks
                cli_dir = tmp / f"cli-{n}"
                cli_dir.mkdir()
                config = cli_dir / "config.py"
                config.write_text(STUDIO_HOOK_LINE.sub("", render_config(spec_from_project(project, device))))
                work_dir = cli_dir / "work_dir"
                wall = run_cli(config, work_dir, env, shim, cli_dir / "train.log")
                if not any(work_dir.glob("*/vis_data/scalars.json")):
                    print((cli_dir / "train.log").read_text()[-3000:])
                    raise RuntimeError("the xtuner CLI run wrote no scalars (see its log above)")
            times = iteration_times(work_dir, args.warmup)
            mean, median = statistics.fmean(times), statistics.median(times)
            results[kind].append(mean)
            medians[kind].append(median)
            print(f"{kind}: mean iteration {mean * 1000:.2f} ms (median {median * 1000:.2f}) over {len(times)} "
                  f"iterations (run took {wall:.0f}s)", flush=True)
        cli, app = statistics.fmean(results["cli"]), statistics.fmean(results["app"])
        print(f"cli mean {cli * 1000:.2f} ms, app mean {app * 1000:.2f} ms per iteration; ratio of medians "
              f"{statistics.fmean(medians['app']) / statistics.fmean(medians['cli']):.3f} (for judging noise)")
    print(f"ratio={app / cli:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
