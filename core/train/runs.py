"""Training runs of a project: create a run (config + metadata), start / resume / warm-start it as a
job, list them with a summary.

    runs/<run-id>/
        run.json        what the run was made from (method, model, data, hyperparameters, device,
                        launch plan, warm-start source)
        config.py       the generated XTuner config
        job.json job.log stop.request     the job (core.jobs)
        progress.json   written by the training hook (core.train.mmhooks)
        work_dir/       XTuner's own output (checkpoints, <timestamp>/vis_data/scalars.json, ...)
        exports/iter_N/ conversions of a checkpoint (hf/, merged/)

*Resume* continues a run in its own directory from any of its checkpoints (the latest by default):
optimizer, scheduler and data position come back, and the charts continue from that iteration.
*Warm start* makes a new run whose weights start from another run's checkpoint, with this project's
current data and hyperparameters and a fresh optimizer (mmengine ``load_from`` with ``resume=False``).
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from core import jobs
from core.train import launch, queue, remote_code
from core.train.configgen import ConfigError, render_config, spec_from_project
from core.train.heldout import check_heldout
from core.fsutil import (MB, DiskFull, Unreadable, atomic_write_json, atomic_write_text, is_disk_full, read_state)
from core.jobs import Job, Step
from core.train.launch import LaunchPlan
from core.results import repro
from core.results.metrics import last_record, read_progress
from core.paths import REPO_ROOT, python_executable
from core.project import Project
from core.errors import NotFound

E_NO_CHECKPOINT = "Checkpoint {path} does not exist."
E_INCOMPLETE = "Checkpoint {path} is incomplete (its save was interrupted); choose another."
E_INCOMPLETE_RESUME = "Checkpoint {name} is incomplete (its save was interrupted); resume from an earlier one."
E_SAVED_WITH_DS = ("Checkpoint {name} was saved with DeepSpeed and this run would train without it: use the same "
                   "DeepSpeed setting as the source run.")
E_SAVED_WITHOUT_DS = ("Checkpoint {name} was saved without DeepSpeed and this run would train with it: use the same "
                      "DeepSpeed setting as the source run.")
E_FOREIGN = "{path} is not a checkpoint of a run of this workspace."
E_METHOD = "Checkpoint {name} comes from a {theirs} run; this project trains with {ours}. Warm start needs the same method."
E_BASE = ("Checkpoint {name} was trained on the base model {theirs}; this project uses {ours}. Warm start needs the "
          "same base model.")
E_SHAPE = ("Checkpoint {name} holds a LoRA adapter of rank {theirs} (targets {their_targets}); this project asks for "
           "rank {ours} (targets {our_targets}). Warm start needs the same adapter shape.")
MESSAGES = [E_NO_CHECKPOINT, E_INCOMPLETE, E_INCOMPLETE_RESUME, E_SAVED_WITH_DS, E_SAVED_WITHOUT_DS, E_FOREIGN,
            E_METHOD, E_BASE, E_SHAPE]

_CKPT = re.compile(r"^iter_(\d+)\.pth$")
GRACEFUL_STOP_S = 180.0  # a stop waits this long for the checkpoint save before signals
SPACE_MARGIN_BYTES = 64 * MB  # free space a start needs beyond one checkpoint (logs, config, scalars)


def checkpoint_complete(path: Path) -> bool:
    """True for a checkpoint that was written to the end: a ``.pth`` is a zip archive whose
    directory sits at its very end (a save killed half-way has none); DeepSpeed saves a directory
    of ``*model_states.pt`` files."""
    path = Path(path)
    if path.is_dir():
        return any(path.glob("*model_states.pt"))
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


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
        """``run.json`` (``{}`` when missing or damaged: ``damage`` says why)."""
        data = read_state(self.dir / "run.json")
        return data if isinstance(data, dict) else {}

    def damage(self) -> Optional[str]:
        """Why one of the run's state files (run.json, job.json) is damaged, or None."""
        data = read_state(self.dir / "run.json")
        if isinstance(data, Unreadable):
            return str(data)
        if data is not None and not isinstance(data, dict):
            return f"{self.dir / 'run.json'}: not a JSON object"
        job = self.job()
        return job.reason if job is not None and job.state == "damaged" else None

    @property
    def spec(self) -> dict:
        """The training spec the run was made from (``run.json``'s ``spec``: method, model, data, ...)."""
        return self.info.get("spec") or {}

    def job(self) -> Optional[Job]:
        return jobs.read_job(self.dir)

    def progress(self) -> dict:
        return read_progress(self.progress_path) or {}

    def launch_plan(self) -> LaunchPlan:
        return LaunchPlan.model_validate(self.info.get("launch") or {})

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(iteration, path) of every saved checkpoint, oldest first (DeepSpeed's are directories)."""
        if not self.work_dir.is_dir():
            return []
        found = []
        for p in self.work_dir.iterdir():
            m = _CKPT.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def complete_checkpoints(self) -> list[tuple[int, Path]]:
        return [(i, p) for i, p in self.checkpoints() if checkpoint_complete(p)]

    def remove_partial_checkpoints(self) -> list[Path]:
        """Delete checkpoints whose save did not complete (a full disk, a kill mid-save) and a
        ``last_checkpoint`` marker that points at one; returns what was removed."""
        removed = []
        for _, p in self.checkpoints():
            if not checkpoint_complete(p):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p)
        marker = self.work_dir / "last_checkpoint"
        try:
            target = Path(marker.read_text(encoding="utf-8").strip())
            if target in removed or not target.exists():
                marker.unlink()
        except OSError:
            pass
        return removed

    def latest_checkpoint(self) -> Optional[Path]:
        """The checkpoint a resume continues from: the one mmengine saved last (``last_checkpoint``
        is written after the save completes), else the highest complete one."""
        marker = self.work_dir / "last_checkpoint"
        try:
            path = Path(marker.read_text(encoding="utf-8").strip())
            if path.name and path.exists() and checkpoint_complete(path):
                return path
        except OSError:
            pass
        ckpts = self.complete_checkpoints()
        return ckpts[-1][1] if ckpts else None


@dataclass
class RunSummary:
    """One line of the run history."""

    id: str
    state: str  # the job's state, or "new" when it never started
    attempts: int
    created_at: str
    duration_s: Optional[float]  # time spent running, summed over its start and resumes
    last_iter: Optional[int]
    max_iters: Optional[int]
    final_loss: Optional[float]
    checkpoints: int
    reason: Optional[str]
    warm_start: Optional[str]


@dataclass
class RunStatus:
    """One reading of a run's job.json and progress.json: every status shown (sidebar badge,
    history row, Train header) comes from one of these."""

    job: Optional[Job]
    progress: dict

    @property
    def state(self) -> str:
        """The job's state ("new" before any start); *running* once the trainer reports progress
        for this attempt, even if the supervisor's own record lags behind."""
        if self.job is None:
            return "new"
        if self.job.state == "queued" and (self.progress.get("updated_at") or 0) >= self.job.created_at:
            return "running"
        return self.job.state

    @property
    def phase(self) -> Optional[str]:
        """starting / resuming / training / stopped / finished (the training hook's), or None before it."""
        if self.job is None or (self.progress.get("updated_at") or 0) < self.job.created_at:
            return None
        return self.progress.get("phase")

    @property
    def iteration(self) -> Optional[int]:
        return self.progress.get("iter")

    @property
    def max_iters(self) -> Optional[int]:
        return self.progress.get("max_iters")

    @property
    def fraction(self) -> Optional[float]:
        if not self.max_iters:
            return None
        return min(1.0, (self.iteration or 0) / self.max_iters)


def status(run: Run) -> RunStatus:
    return RunStatus(run.job(), run.progress())


def summarize(run: Run, st: Optional[RunStatus] = None) -> RunSummary:
    st = st or status(run)
    job, progress = st.job, st.progress
    info = run.info
    rec = last_record(run.work_dir) or {}
    loss = rec.get("loss")
    return RunSummary(
        id=run.id,
        state=st.state,
        attempts=job.attempt if job else 0,
        created_at=info.get("created_at", ""),
        duration_s=job.total_duration_s if job else None,
        last_iter=progress.get("iter") or rec.get("iter"),
        max_iters=progress.get("max_iters"),
        final_loss=float(loss) if isinstance(loss, (int, float)) else None,
        checkpoints=len(run.checkpoints()),
        reason=job.reason if job else None,
        warm_start=(info.get("warm_start") or {}).get("checkpoint"),
    )


def _make_run_dir(project: Project) -> Run:
    """A new, uniquely named run directory (two tabs in the same second get two names)."""
    project.runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    n = 1
    while True:
        run_id = f"{stamp}-{project.method}" + (f"-{n}" if n > 1 else "")
        try:
            (project.runs_dir / run_id).mkdir()
            return Run(project.runs_dir / run_id)
        except FileExistsError:
            n += 1


def run_of_checkpoint(checkpoint: Path) -> Optional[Run]:
    """The run a checkpoint belongs to (``runs/<id>/work_dir/iter_N.pth``), if it is one."""
    run_dir = Path(checkpoint).parent.parent
    return Run(run_dir) if (run_dir / "run.json").is_file() else None


def check_warm_start(project: Project, checkpoint: Path, plan: LaunchPlan) -> None:
    """Refuse a warm start that would silently load nothing or fail: the source must be a complete
    checkpoint of a run of the same method on the same base model (and LoRA shape), saved the same
    way (DeepSpeed saves directories, plain runs files)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        raise ConfigError(E_NO_CHECKPOINT, path=str(checkpoint))
    if not checkpoint_complete(checkpoint):
        raise ConfigError(E_INCOMPLETE, path=str(checkpoint))
    if checkpoint.is_dir() != bool(plan.deepspeed):
        raise ConfigError(E_SAVED_WITH_DS if checkpoint.is_dir() else E_SAVED_WITHOUT_DS, name=checkpoint.name)
    source = run_of_checkpoint(checkpoint)
    spec = source.spec if source else {}
    if not spec:
        raise ConfigError(E_FOREIGN, path=str(checkpoint))
    if spec.get("method") != project.method:
        raise ConfigError(E_METHOD, name=checkpoint.name, theirs=spec.get("method"), ours=project.method)
    if spec.get("model_path") != project.model_path:
        raise ConfigError(E_BASE, name=checkpoint.name, theirs=spec.get("model_path"), ours=project.model_path)
    if project.method != "full":
        hp = spec.get("hyperparams") or {}
        mine = project.hyperparams
        if hp.get("lora_r") != mine.lora_r or (hp.get("lora_target_modules") or None) != (mine.lora_target_modules or None):
            raise ConfigError(E_SHAPE, name=checkpoint.name, theirs=hp.get("lora_r"), ours=mine.lora_r,
                              their_targets=", ".join(hp.get("lora_target_modules") or ["*"]),
                              our_targets=", ".join(mine.lora_target_modules or ["*"]))


def new_run(project: Project, device: str, warm_start: Optional[Path] = None,
            plan: Optional[LaunchPlan] = None, gpu_count: Optional[int] = None, origin: Optional[dict] = None) -> Run:
    """Create a run directory with its generated config; nothing starts yet.

    ``origin``: the queue entry (and sweep) the run comes from, kept in run.json as ``queue``.

    ``warm_start``: a checkpoint of another run whose weights this run starts from. Raises
    ``ConfigError`` / ``launch.LaunchError`` with the reason, before anything is written, when the
    project cannot train here as asked.
    """
    plan = plan or launch.plan_for(project)
    if gpu_count is None:
        from core.machine import system

        gpu_count = len(system.gpus())
    launch.check_plan(plan, device, gpu_count)
    if warm_start is not None:
        check_warm_start(project, Path(warm_start), plan)
    spec = spec_from_project(project, device=device)
    render_config(spec)  # raises ConfigError before anything is written
    check_heldout(spec.dataset_path, spec.hyperparams.heldout_ratio, spec.hyperparams.batch_size)
    remote_code.check_allowed(project.model_path, project.trust_remote_code)
    check_free_space(project)
    try:
        run = _make_run_dir(project)
    except OSError as e:
        raise DiskFull(project.runs_dir, checkpoint_bytes(project)) if is_disk_full(e) else e
    try:
        _write_run(project, run, spec, device, plan, warm_start, origin)
    except BaseException as e:
        shutil.rmtree(run.dir, ignore_errors=True)
        if is_disk_full(e):
            raise DiskFull(run.dir.parent, checkpoint_bytes(project)) from e
        raise
    return run


def checkpoint_bytes(project: Project) -> int:
    """About how big one checkpoint of this project is: the trainable weights in fp32 and AdamW's
    two moments (12 bytes per trainable parameter); 0 when the model folder cannot tell."""
    from core.models import estimate

    try:
        shape = estimate.model_shape(project.model_path)
    except (estimate.EstimateError, OSError, ValueError, TypeError, KeyError):
        return 0
    hp = project.hyperparams
    trainable = (shape.total_params if project.method == "full"
                 else estimate.lora_params(shape, hp.lora_r, hp.lora_target_modules))
    return 12 * trainable


def check_free_space(project: Project) -> None:
    """Raise ``DiskFull`` when the project's disk cannot hold a checkpoint (and a margin)."""
    from core.machine.system import disk_free

    needs = checkpoint_bytes(project) + SPACE_MARGIN_BYTES
    if disk_free(project.dir) < needs:
        raise DiskFull(project.dir, needs)


def _write_run(project: Project, run: Run, spec, device: str, plan: LaunchPlan, warm_start: Optional[Path],
               origin: Optional[dict] = None) -> None:
    spec = spec.model_copy(update={
        "progress_file": str(run.progress_path),
        "stop_file": str(run.dir / jobs.STOP_FILE),
        "load_from": str(warm_start) if warm_start is not None else None,
    })
    atomic_write_text(run.config_path, render_config(spec))
    atomic_write_json(run.dir / "run.json", {
        "id": run.id,
        "project": project.name,
        "device": device,
        "spec": spec.model_dump(mode="json"),
        "launch": plan.model_dump(mode="json"),
        "warm_start": {"checkpoint": str(warm_start)} if warm_start is not None else None,
        **({"queue": origin} if origin else {}),
        "created_at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    })
    repro.record(run.dir, train_argv(run), training_env(project), spec.hyperparams.seed, [spec.dataset_path])


def list_runs(project: Project) -> list[Run]:
    """The project's runs, newest first."""
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
    return launch.train_argv(run.launch_plan(), run.config_path, run.work_dir, resume_from)


def gpu_claim_path(project: Project) -> Path:
    """One claim file per GPU set (this machine's GPUs): one training run at a time on it."""
    path = workspace_gpu_claim(project.workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def workspace_gpu_claim(workspace: str | os.PathLike) -> Path:
    return Path(workspace) / "locks" / "gpus-default.json"


def start_training(project: Project, run: Run, resume_from: Optional[Path] = None) -> Job:
    """Start (or, with ``resume_from``, resume) ``run`` as a detached job.

    Raises ``FileNotFoundError`` / ``ConfigError`` for a missing or incomplete checkpoint and
    ``jobs.JobBusy`` when another training holds the GPU set; nothing starts then.
    """
    if resume_from is not None:
        resume_from = Path(resume_from)
        if not resume_from.exists():
            raise NotFound(E_NO_CHECKPOINT, path=str(resume_from))
        if not checkpoint_complete(resume_from):
            raise ConfigError(E_INCOMPLETE_RESUME, name=resume_from.name)
    step = Step(
        name="resume training" if resume_from else "train",
        argv=train_argv(run, resume_from),
        env=training_env(project),
        cwd=str(REPO_ROOT),
        graceful_stop_s=GRACEFUL_STOP_S,
        graceful_after_file=str(run.progress_path),
        outcome_file=str(run.progress_path),
        cleanup_argv=[python_executable(), "-m", "core.train.runs", "clean", str(run.dir)],
    )
    title = f"Training {project.name}/{run.id}"

    def before_spawn() -> None:
        # the progress of an earlier attempt would tell the supervisor the loop is ready
        try:
            os.unlink(run.progress_path)
        except FileNotFoundError:
            pass
        run.remove_partial_checkpoints()

    return jobs.start_job(run.dir, [step], kind="train", title=title,
                          meta={"project": project.name, "run": run.id, "needs_bytes": checkpoint_bytes(project),
                                "resume_from": str(resume_from) if resume_from else None},
                          exclusive=gpu_claim_path(project), before_spawn=before_spawn,
                          after_argv=queue.kick_argv(project.workspace))  # the run queue goes on when it ends


def start_new_run(project: Project, device: str, warm_start: Optional[Path] = None,
                  plan: Optional[LaunchPlan] = None, gpu_count: Optional[int] = None,
                  origin: Optional[dict] = None) -> tuple[Run, Job]:
    """Create a run and start it; when it cannot start (``JobBusy``: another tab was first) the
    new run directory is removed again, so a lost race leaves nothing behind."""
    run = new_run(project, device, warm_start=warm_start, plan=plan, gpu_count=gpu_count, origin=origin)
    try:
        return run, start_training(project, run)
    except BaseException:
        shutil.rmtree(run.dir, ignore_errors=True)
        raise


def active_training(project: Project) -> Optional[Run]:
    for run in list_runs(project):
        job = run.job()
        if job is not None and job.active:
            return run
    return None


def repair_job(project: Project, run: Run) -> Job:
    """Rebuild a damaged ``job.json`` of ``run`` from its processes and progress.json."""
    return jobs.rebuild_job(run.dir, kind="train", title=f"Training {project.name}/{run.id}",
                            meta={"project": project.name, "run": run.id}, outcome_file=run.progress_path)


def main(argv: list[str]) -> int:
    """``python -m core.train.runs clean RUN_DIR``: remove a failed save's partial checkpoints
    (run by the supervisor when a training step did not succeed)."""
    if len(argv) != 2 or argv[0] != "clean":
        print("usage: python -m core.train.runs clean RUN_DIR")
        return 2
    for p in Run(Path(argv[1])).remove_partial_checkpoints():
        print(f"[XTuner Studio] removed the incomplete checkpoint {p.name}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
