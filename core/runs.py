"""Training runs of a project: create a run (config + metadata), start/resume it as a job, list them.

    runs/<run-id>/
        run.json        what the run was made from (method, model, data, hyperparameters, device)
        config.py       the generated XTuner config
        job.json job.log stop.request     the job (core.jobs)
        progress.json   written by the training hook
        work_dir/       XTuner's own output (checkpoints, <timestamp>/vis_data/scalars.json, ...)
        exports/iter_N/ conversions of a checkpoint (hf/, merged/)
"""
from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from core import jobs
from core.configgen import render_config, spec_from_project
from core.fsutil import atomic_write_json, atomic_write_text, read_json
from core.jobs import Job, Step
from core.paths import REPO_ROOT, python_executable
from core.project import Project

_CKPT = re.compile(r"^iter_(\d+)\.pth$")
GRACEFUL_STOP_S = 180.0  # a stop waits this long for the checkpoint save before signals


@dataclass
class Run:
    dir: Path

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def work_dir(self) -> Path:
        return self.dir / "work_dir"

    @property
    def config_path(self) -> Path:
        return self.dir / "config.py"

    @property
    def progress_path(self) -> Path:
        return self.dir / "progress.json"

    @property
    def log_path(self) -> Path:
        return self.dir / jobs.LOG_FILE

    @property
    def info(self) -> dict:
        return read_json(self.dir / "run.json", {}) or {}

    def job(self) -> Optional[Job]:
        return jobs.read_job(self.dir)

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(iteration, path) of every saved checkpoint, oldest first."""
        if not self.work_dir.is_dir():
            return []
        found = []
        for p in self.work_dir.iterdir():
            m = _CKPT.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest_checkpoint(self) -> Optional[Path]:
        """The newest complete checkpoint (``last_checkpoint`` is written after the save)."""
        marker = self.work_dir / "last_checkpoint"
        try:
            path = Path(marker.read_text(encoding="utf-8").strip())
            if path.exists():
                return path
        except OSError:
            pass
        ckpts = self.checkpoints()
        return ckpts[-1][1] if ckpts else None


def new_run(project: Project, device: str) -> Run:
    """Create a run directory with its generated config; nothing starts yet."""
    project.runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id = f"{stamp}-{project.method}"
    n = 1
    while (project.runs_dir / run_id).exists():
        n += 1
        run_id = f"{stamp}-{project.method}-{n}"
    run = Run(project.runs_dir / run_id)
    spec = spec_from_project(
        project, device=device,
        progress_file=str(run.progress_path), stop_file=str(run.dir / jobs.STOP_FILE),
    )
    text = render_config(spec)  # raises ConfigError before anything is written
    run.dir.mkdir(parents=True)
    atomic_write_text(run.config_path, text)
    atomic_write_json(run.dir / "run.json", {
        "id": run_id,
        "project": project.name,
        "device": device,
        "spec": spec.model_dump(mode="json"),
        "created_at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    })
    return run


def list_runs(project: Project) -> list[Run]:
    if not project.runs_dir.is_dir():
        return []
    return [Run(p) for p in sorted(project.runs_dir.iterdir(), reverse=True) if (p / "config.py").is_file()]


def training_env(project: Project) -> dict[str, str]:
    """Offline, project-local caches: runs read local paths only and never reach a hub."""
    hf_home = project.dir / ".hf_home"
    return {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(hf_home),
        "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
        "PYTHONPATH": _pythonpath(),
        "TOKENIZERS_PARALLELISM": "false",
    }


def _pythonpath() -> str:
    existing = os.environ.get("PYTHONPATH")
    return str(REPO_ROOT) + (os.pathsep + existing if existing else "")


def train_argv(run: Run, resume_from: Optional[Path] = None) -> list[str]:
    argv = [python_executable(), "-m", "core.xtuner_entry", "train", str(run.config_path),
            "--work-dir", str(run.work_dir)]
    if resume_from is not None:
        argv += ["--resume", str(resume_from)]
    return argv


def gpu_claim_path(project: Project) -> Path:
    """One claim file per GPU set: one training run at a time on it."""
    locks = Path(project.workspace) / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    return locks / "gpus-default.json"


def start_training(project: Project, run: Run, resume_from: Optional[Path] = None) -> Job:
    if resume_from is not None and not Path(resume_from).is_file():
        raise FileNotFoundError(f"Checkpoint {resume_from} does not exist.")
    step = Step(
        name="resume training" if resume_from else "train",
        argv=train_argv(run, resume_from),
        env=training_env(project),
        cwd=str(REPO_ROOT),
        graceful_stop_s=GRACEFUL_STOP_S,
    )
    title = f"Training {project.name}/{run.id}"
    return jobs.start_job(run.dir, [step], kind="train", title=title,
                          meta={"project": project.name, "run": run.id,
                                "resume_from": str(resume_from) if resume_from else None},
                          exclusive=gpu_claim_path(project))


def active_training(project: Project) -> Optional[Run]:
    for run in list_runs(project):
        job = run.job()
        if job is not None and job.active:
            return run
    return None
