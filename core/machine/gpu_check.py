"""One training path checked end to end on a GPU machine: ``python -m core.machine.gpu_check ...``.

    python -m core.machine.gpu_check --method qlora
    python -m core.machine.gpu_check --method lora --gpus 1 --deepspeed deepspeed_zero2 --stop-resume
    python -m core.machine.gpu_check --method full --gpus 2

Builds the demo project (tiny model, offline) in a temporary workspace, sets the method and the
launch plan, and trains through the app's own job mechanism (the same code the Train page calls).
With ``--stop-resume`` it stops the run after ``--stop-at`` iterations, checks that the stop saved
that iteration's checkpoint, resumes from it and checks one continuous curve. The last line is a
JSON object to paste into docs/gpu.md; exit 0 only when the run succeeded.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path


def check(workspace: Path, method: str, gpus: int, deepspeed: str | None, stop_resume: bool, stop_at: int,
          epochs: int) -> dict:
    from core import demo, jobs
    from core.train import runs
    from core.machine import system
    from core.train.configgen import ConfigError
    from core.train.launch import LaunchError
    from core.results.metrics import ScalarsReader
    from core.project import ProjectStore

    t0 = time.monotonic()
    found = system.gpus()
    store = ProjectStore(workspace)
    project = demo.create_demo_project(store)
    project = store.save(project.model_copy(update={
        "method": method, "num_gpus": gpus, "deepspeed": deepspeed,
        "hyperparams": project.hyperparams.model_copy(update={"max_epochs": epochs})}))
    device = "cuda" if found else "cpu"
    result = {"method": method, "gpus": gpus, "deepspeed": deepspeed, "device": device,
              "gpu": found[0].name if found else None, "stop_resume": stop_resume}
    try:
        run, job = runs.start_new_run(project, device, gpu_count=len(found))
    except (ConfigError, LaunchError) as e:
        result.update(state="refused", reason=str(e))
        return result
    result["argv"] = " ".join(job.steps[0].argv[1:])
    if stop_resume:
        while (run.progress().get("iter") or 0) < stop_at:
            if not run.job().active:
                break
            time.sleep(0.2)
        jobs.request_stop(run.dir)
        job = jobs.wait_job(run.dir, timeout=1800)
        stops = re.findall(r"stopping after iteration (\d+) as requested", run.log_path.read_text(errors="replace"))
        latest = run.latest_checkpoint()
        result.update(stop_state=job.state, stop_escalation=job.escalation,
                      stopped_at=int(stops[-1]) if stops else None, stop_checkpoint=latest.name if latest else None)
        if job.state != "stopped" or latest is None:
            result["state"] = job.state
            result["reason"] = job.reason
            return result
        runs.start_training(project, run, resume_from=latest)
    job = jobs.wait_job(run.dir, timeout=3600)
    reader = ScalarsReader(run.work_dir)
    reader.poll()
    xs, loss = reader.series("loss")
    _, memory = reader.series("memory")
    total = run.progress().get("max_iters")
    result.update(
        state=job.state, reason=job.reason, iterations=total,
        continuous=xs == list(range(1, (total or 0) + 1)),
        first_loss=round(loss[0], 4) if loss else None, final_loss=round(loss[-1], 4) if loss else None,
        peak_memory_mb=max(memory) if memory else None,
        checkpoints=[p.name for _, p in run.checkpoints()],
        seconds=round(time.monotonic() - t0, 1),
        run_dir=str(run.dir),
    )
    if job.state != "succeeded":
        print(run.log_path.read_text(errors="replace")[-5000:])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=["qlora", "lora", "full"], default="qlora")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs per node (more than one: torchrun)")
    parser.add_argument("--deepspeed", help="an XTuner preset, e.g. deepspeed_zero2")
    parser.add_argument("--stop-resume", action="store_true", help="stop mid-run, then resume from the checkpoint")
    parser.add_argument("--stop-at", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workspace", help="default: a temporary directory, deleted afterwards")
    args = parser.parse_args(argv)
    if args.workspace:
        result = check(Path(args.workspace).resolve(), args.method, args.gpus, args.deepspeed, args.stop_resume,
                       args.stop_at, args.epochs)
    else:
        with tempfile.TemporaryDirectory(prefix="xtuner-studio-gpu-") as tmp:
            result = check(Path(tmp), args.method, args.gpus, args.deepspeed, args.stop_resume, args.stop_at,
                           args.epochs)
    print(json.dumps(result))
    return 0 if result.get("state") == "succeeded" and result.get("continuous") else 1


if __name__ == "__main__":
    sys.exit(main())
