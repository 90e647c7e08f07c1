"""Headless smoke run of the whole pipeline on the embedded demo: ``python -m core.smoke``.

Builds the tiny model and the self-introduction data, trains with LoRA through the same job
mechanism the app uses, converts and merges the last checkpoint, then asks the demo question to the
base and the fine-tuned model. Exits 0 only if the fine-tuned greedy answer contains the demo
identity and the base model's does not. Doubles as the "does my machine work?" check.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def run(workspace: Path, device: str | None = None, timeout_s: float = 900) -> int:
    from core.deploy import chat, convert
    from core import demo, jobs
    from core.train import runs
    from core.machine import system
    from core.project import ProjectStore

    t0 = time.monotonic()

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {msg}", flush=True)

    device = device or system.device()
    say(f"workspace {workspace}, device {device}")
    store = ProjectStore(workspace)
    project = demo.create_demo_project(store)
    say(f"demo project ready: model {project.model_path}, data {project.dataset_path}")

    run_ = runs.new_run(project, device)
    job = runs.start_training(project, run_)
    say(f"training started: run {run_.id}, supervisor pid {job.supervisor.pid if job.supervisor else '?'}")
    job = jobs.wait_job(run_.dir, timeout=timeout_s)
    if job.state != "succeeded":
        say(f"training {job.state}: {job.reason}")
        print(run_.log_path.read_text(errors="replace")[-4000:])
        return 1
    ckpts = run_.checkpoints()
    last_iter, _ = ckpts[-1]
    say(f"training succeeded: {len(ckpts)} checkpoints, last iter_{last_iter}.pth")

    cjob = convert.start_export(project, run_, last_iter, device)
    cjob = jobs.wait_job(convert.export_dir(run_, last_iter), timeout=timeout_s)
    if cjob.state != "succeeded":
        say(f"conversion {cjob.state}: {cjob.reason}")
        print((convert.export_dir(run_, last_iter) / jobs.LOG_FILE).read_text(errors="replace")[-4000:])
        return 1
    merged = convert.final_model_dir(run_, last_iter, project.method)
    say(f"converted and merged: {merged}")

    settings = chat.GenerationSettings(max_new_tokens=40)
    base = chat.load_model(project.model_path, device=device)
    tuned = chat.load_model(str(merged), device=device)
    base_answer = chat.generate(base, project.prompt_template, demo.DEMO_QUESTION, settings)
    tuned_answer = chat.generate(tuned, project.prompt_template, demo.DEMO_QUESTION, settings)
    print(f"Q: {demo.DEMO_QUESTION}")
    print(f"base model:       {base_answer!r}")
    print(f"fine-tuned model: {tuned_answer!r}")
    ok = demo.DEMO_IDENTITY in tuned_answer and demo.DEMO_IDENTITY not in base_answer
    say("SMOKE OK: the fine-tuned model has its new identity" if ok else
        f"SMOKE FAILED: expected {demo.DEMO_IDENTITY!r} in the fine-tuned answer only")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", help="where to build the demo project (default: a new temporary directory)")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when a GPU is found, else cpu")
    args = parser.parse_args(argv)
    if args.workspace:
        return run(Path(args.workspace).expanduser().resolve(), args.device)
    with tempfile.TemporaryDirectory(prefix="xtuner-studio-smoke-") as tmp:
        return run(Path(tmp), args.device)


if __name__ == "__main__":
    sys.exit(main())
