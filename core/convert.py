"""Checkpoint → Hugging Face model: ``pth_to_hf`` and, for LoRA/QLoRA, ``merge``, as one job.

    runs/<run>/exports/iter_N/
        job.json job.log
        hf/        pth_to_hf output: the LoRA adapter, or the whole model for full fine-tuning
        merged/    base + adapter merged into one model (LoRA / QLoRA only)
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from core import jobs
from core.jobs import Job, Step
from core.paths import REPO_ROOT, python_executable
from core.project import Project
from core.runs import Run, training_env


def export_dir(run: Run, iteration: int) -> Path:
    return run.dir / "exports" / f"iter_{iteration}"


def final_model_dir(run: Run, iteration: int, method: str) -> Path:
    """The directory a chat loads: merged/ for adapters, hf/ for full fine-tuning."""
    d = export_dir(run, iteration)
    return d / ("hf" if method == "full" else "merged")


def convert_steps(project: Project, run: Run, iteration: int, checkpoint: Path, device: str) -> list[Step]:
    out = export_dir(run, iteration)
    env = training_env(project)
    py = python_executable()
    steps = [Step(
        name="pth_to_hf",
        argv=[py, "-m", "core.xtuner_entry", "pth_to_hf", str(run.config_path), str(checkpoint),
              str(out / "hf"), "--safe-serialization"] + (["--fp32"] if device == "cpu" else []),
        env=env, cwd=str(REPO_ROOT),
    )]
    if project.method != "full":
        base = run.info.get("spec", {}).get("model_path") or project.model_path
        steps.append(Step(
            name="merge",
            argv=[py, "-m", "core.xtuner_entry", "merge", str(base), str(out / "hf"), str(out / "merged"),
                  "--safe-serialization", "--device", "cpu" if device == "cpu" else "auto"],
            env=env, cwd=str(REPO_ROOT),
        ))
    return steps


def start_export(project: Project, run: Run, iteration: int, device: str) -> Job:
    ckpt = dict(run.checkpoints()).get(iteration)
    if ckpt is None:
        raise FileNotFoundError(f"Run {run.id} has no checkpoint at iteration {iteration}.")
    return jobs.start_job(
        export_dir(run, iteration), convert_steps(project, run, iteration, ckpt, device),
        kind="convert", title=f"Convert {run.id} iter {iteration}",
        meta={"project": project.name, "run": run.id, "iteration": iteration},
    )


def exports(run: Run) -> list[tuple[int, Path, Optional[Job]]]:
    """(iteration, export dir, job) for each conversion of this run, newest first."""
    root = run.dir / "exports"
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        if d.name.startswith("iter_") and d.name[5:].isdigit():
            found.append((int(d.name[5:]), d, jobs.read_job(d)))
    return sorted(found, reverse=True)
