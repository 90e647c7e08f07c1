"""Checkpoint → Hugging Face model: ``pth_to_hf`` and, for LoRA/QLoRA, ``merge``, as one job; the
outputs of a project; "use as base model" (fine-tune the fine-tuned model, as the seeds do).

    runs/<run>/exports/iter_N/
        job.json job.log
        hf/        pth_to_hf output: the LoRA adapter, or the whole model for full fine-tuning
        merged/    base + adapter merged into one model (LoRA / QLoRA only)

A step that fails (or is stopped) has its partial output folder removed by the supervisor
(``python -m core.deploy.convert clean DIR``), so a failed conversion leaves nothing half-written.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from core import jobs
from core.fsutil import dir_size
from core.jobs import Job, Step
from core.paths import REPO_ROOT, python_executable
from core.project import Project
from core.train.runs import Run, list_runs, training_env
from core.errors import NotFound, UserError

E_NO_CHECKPOINT = "Run {run} has no checkpoint at iteration {iteration}."
E_ADAPTER_ALONE = "An adapter alone is not a model: merge it first, then use the merged model."
MESSAGES = [E_NO_CHECKPOINT, E_ADAPTER_ALONE]


def export_dir(run: Run, iteration: int) -> Path:
    return run.dir / "exports" / f"iter_{iteration}"


def final_model_dir(run: Run, iteration: int, method: str) -> Path:
    """The directory a chat loads: merged/ for adapters, hf/ for full fine-tuning."""
    d = export_dir(run, iteration)
    return d / ("hf" if method == "full" else "merged")


def run_method(run: Run, project: Project) -> str:
    return run.spec.get("method") or project.method


def convert_steps(project: Project, run: Run, iteration: int, checkpoint: Path, device: str,
                  merge: bool = True) -> list[Step]:
    out = export_dir(run, iteration)
    env = training_env(project)
    py = python_executable()
    steps = [Step(
        name="pth_to_hf",
        argv=[py, "-m", "core.train.xtuner_entry", "pth_to_hf", str(run.config_path), str(checkpoint),
              str(out / "hf"), "--safe-serialization"] + (["--fp32"] if device == "cpu" else []),
        env=env, cwd=str(REPO_ROOT), cleanup_argv=[py, "-m", "core.deploy.convert", "clean", str(out / "hf")],
    )]
    if merge and run_method(run, project) != "full":
        base = run.spec.get("model_path") or project.model_path
        steps.append(Step(
            name="merge",
            argv=[py, "-m", "core.train.xtuner_entry", "merge", str(base), str(out / "hf"), str(out / "merged"),
                  "--safe-serialization", "--device", "cpu" if device == "cpu" else "auto"],
            env=env, cwd=str(REPO_ROOT), cleanup_argv=[py, "-m", "core.deploy.convert", "clean", str(out / "merged")],
        ))
    return steps


def start_export(project: Project, run: Run, iteration: int, device: str, merge: bool = True) -> Job:
    """Convert checkpoint ``iteration`` (and merge an adapter into its base unless ``merge`` is False)."""
    ckpt = dict(run.checkpoints()).get(iteration)
    if ckpt is None:
        raise NotFound(E_NO_CHECKPOINT, run=run.id, iteration=iteration)
    return jobs.start_job(
        export_dir(run, iteration), convert_steps(project, run, iteration, ckpt, device, merge),
        kind="convert", title=f"Convert {run.id} iter {iteration}",
        meta={"project": project.name, "run": run.id, "iteration": iteration, "merge": merge},
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


@dataclass
class Output:
    run: Run
    iteration: int
    kind: str  # "adapter" (LoRA, not merged) | "merged" | "full" (a whole fine-tuned model)
    path: Path

    @property
    def size(self) -> int:
        return dir_size(self.path)

    @property
    def is_model(self) -> bool:
        """A whole model: it can be a base model for the next fine-tune."""
        return self.kind in ("merged", "full")


def _complete_model(d: Path) -> bool:
    return (d / "config.json").is_file() and (any(d.glob("*.safetensors")) or any(d.glob("*.bin")))


def outputs(project: Project) -> list[Output]:
    """Every finished conversion output of the project, newest run first."""
    found = []
    for run in list_runs(project):
        for it, d, job in exports(run):
            if job is not None and job.active:
                continue
            hf, merged = d / "hf", d / "merged"
            if _complete_model(merged):
                found.append(Output(run, it, "merged", merged))
            if (hf / "adapter_config.json").is_file():
                found.append(Output(run, it, "adapter", hf))
            elif _complete_model(hf):
                found.append(Output(run, it, "full", hf))
    return found


def use_as_base(project: Project, output: Output) -> Project:
    """The project with ``output`` as its base model (the next run fine-tunes the fine-tuned model)."""
    if not output.is_model:
        raise UserError(E_ADAPTER_ALONE)
    return project.model_copy(update={"model_path": str(output.path)})


def clean(path: Path) -> bool:
    """Remove the partial output folder of a failed conversion step (only an export's hf/ or merged/)."""
    path = Path(path)
    if path.name not in ("hf", "merged") or path.parent.parent.name != "exports" or not path.exists():
        return False
    shutil.rmtree(path, ignore_errors=True)
    return True


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "clean":
        print("usage: python -m core.deploy.convert clean EXPORT_DIR/hf|merged")
        sys.exit(2)
    if clean(Path(sys.argv[2])):
        print(f"[XTuner Studio] removed the partial output {sys.argv[2]}")
