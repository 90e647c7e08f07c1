"""One mechanism for every long task (training, conversion, downloads): detached supervised jobs.

A job is a directory::

    job.json        state, written atomically (queued/running/succeeded/failed/stopped), pids with
                    their create times, argv of each step, exit code, times, reason
    job.log         stdout+stderr of the steps, appended
    stop.request    present when a stop was asked for (the training hook and the supervisor poll it)
    supervisor.log  the supervisor's own errors, if any

``start_job`` spawns ``python -m core.jobs.supervisor <dir>`` in a new session with no pipes to the
caller, so a job outlives the Streamlit server, the browser tab and the SSH tunnel. Liveness is
read from the processes themselves (PID + create time; zombies count as dead), so a job whose
supervisor was killed shows *failed* at the next ``read_job`` instead of "running" forever.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable, Literal, Optional

import psutil
from filelock import FileLock
from pydantic import BaseModel, Field

from core.fsutil import atomic_write_json, read_json
from core.errors import UserError
from core.paths import REPO_ROOT, python_executable

State = Literal["queued", "running", "succeeded", "failed", "stopped"]
ACTIVE_STATES = ("queued", "running")

JOB_FILE = "job.json"
LOG_FILE = "job.log"
STOP_FILE = "stop.request"


class ProcInfo(BaseModel):
    pid: int
    create_time: float


class Step(BaseModel):
    name: str
    argv: list[str]
    env: dict[str, str] = Field(default_factory=dict)
    cwd: Optional[str] = None
    # seconds a step may take to stop by itself after a stop request (training saves a
    # checkpoint first); None: terminate at once
    graceful_stop_s: Optional[float] = None
    # the graceful stop applies only once this file exists (training writes it when its loop is
    # ready to honour the request); before that there is nothing to save: terminate at once
    graceful_after_file: Optional[str] = None

    def stops_gracefully(self) -> bool:
        """Whether a stop now gives the step time to stop by itself (training that can save a checkpoint)."""
        if self.graceful_stop_s is None:
            return False
        return self.graceful_after_file is None or os.path.exists(self.graceful_after_file)


class Job(BaseModel):
    id: str
    kind: str
    title: str = ""
    state: State = "queued"
    steps: list[Step]
    current_step: int = 0
    attempt: int = 1
    created_at: float = Field(default_factory=time.time)
    started_at: Optional[float] = None
    ended_at: Optional[float] = None
    supervisor: Optional[ProcInfo] = None
    child: Optional[ProcInfo] = None
    exit_code: Optional[int] = None
    reason: Optional[str] = None
    stop_requested_at: Optional[float] = None
    escalation: Optional[str] = None
    meta: dict = Field(default_factory=dict)
    # earlier attempts in the same directory (a run's start, then its resumes), oldest first
    history: list[dict] = Field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def duration_s(self) -> Optional[float]:
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at

    def stops_gracefully(self) -> bool:
        """Whether a stop now lets the current step stop by itself (a training run saves a checkpoint
        first); False while the model is still loading: there is nothing to save yet."""
        return bool(self.steps) and self.steps[min(self.current_step, len(self.steps) - 1)].stops_gracefully()

    @property
    def total_duration_s(self) -> float:
        """Seconds spent running over every attempt (a run's start and its resumes)."""
        return sum(a.get("duration_s") or 0.0 for a in self.history) + (self.duration_s or 0.0)

    def attempt_record(self) -> dict:
        return {"attempt": self.attempt, "state": self.state, "started_at": self.started_at,
                "ended_at": self.ended_at, "duration_s": self.duration_s, "exit_code": self.exit_code,
                "reason": self.reason, "meta": self.meta}


E_BUSY = "{title} is still running ({path})."
E_ALREADY = "A job is already running in {path}."
MESSAGES = [E_BUSY, E_ALREADY]


class JobBusy(UserError, RuntimeError):
    """Another job holds the resource (GPU set, download target); ``job_dir`` says which."""

    def __init__(self, job_dir: Path, text: str, **params):
        super().__init__(text, **params)
        self.job_dir = job_dir


# Popen handles of supervisors this process started: polled to reap them (no zombies).
_SPAWNED: dict[int, subprocess.Popen] = {}


def _lock(job_dir: Path) -> FileLock:
    return FileLock(str(Path(job_dir) / ".job.lock"), timeout=10)


def _load(job_dir: Path) -> Optional[Job]:
    data = read_json(Path(job_dir) / JOB_FILE)
    return Job.model_validate(data) if data is not None else None


def _save(job_dir: Path, job: Job) -> None:
    atomic_write_json(Path(job_dir) / JOB_FILE, job.model_dump(mode="json"))


def update_job(job_dir: str | os.PathLike, change: Callable[[Job], None]) -> Job:
    """Read-modify-write ``job.json`` under the job's lock."""
    job_dir = Path(job_dir)
    with _lock(job_dir):
        job = _load(job_dir)
        if job is None:
            raise FileNotFoundError(f"No job in {job_dir}")
        change(job)
        _save(job_dir, job)
        return job


def proc_info(pid: int) -> Optional[ProcInfo]:
    try:
        return ProcInfo(pid=pid, create_time=psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _reap() -> None:
    """Collect the exit status of supervisors this process started, so none stays a zombie."""
    for pid, popen in list(_SPAWNED.items()):
        if popen.poll() is not None:
            _SPAWNED.pop(pid, None)


def is_alive(info: Optional[ProcInfo]) -> bool:
    """True if the very process recorded (same PID *and* create time) runs and is not a zombie."""
    if info is None:
        return False
    _reap()
    try:
        p = psutil.Process(info.pid)
        if abs(p.create_time() - info.create_time) > 0.01:
            return False
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def signal_group(info: Optional[ProcInfo], sig: int) -> bool:
    """Send ``sig`` to the process group led by ``info`` (the step and all its children)."""
    if info is None:
        return False
    try:
        p = psutil.Process(info.pid)
        if abs(p.create_time() - info.create_time) > 0.01:
            return False
        os.killpg(info.pid, sig)
        return True
    except (psutil.Error, ProcessLookupError, PermissionError):
        return False


def start_job(
    job_dir: str | os.PathLike,
    steps: list[Step],
    kind: str,
    title: str = "",
    meta: dict | None = None,
    exclusive: str | os.PathLike | None = None,
    before_spawn: Callable[[], None] | None = None,
    secret_env: dict[str, str] | None = None,
) -> Job:
    """Start a detached job in ``job_dir`` (created if needed; a finished job there is replaced,
    its log kept and appended to, so a resumed run reads as one story).

    ``exclusive``: path of a claim file (e.g. one per GPU set). Under a file lock, if the claim
    names a job that is still active, ``JobBusy`` is raised and nothing starts: two browser tabs
    pressing Start together start exactly one job.

    ``before_spawn``: called under the locks once the job is sure to start (e.g. to clear files of
    an earlier attempt).

    ``secret_env``: variables (a hub token) given to the supervisor's environment only — the steps
    inherit them — and never written to ``job.json``, an argv or the log.
    """
    job_dir = Path(job_dir).resolve()
    job_dir.mkdir(parents=True, exist_ok=True)
    claim_lock = FileLock(str(exclusive) + ".lock", timeout=30) if exclusive else None
    if claim_lock:
        claim_lock.acquire()
    try:
        if exclusive:
            holder = read_json(exclusive, {}) or {}
            other = holder.get("job_dir")
            if other:
                other_job = read_job(other)
                if other_job is not None and other_job.active:
                    raise JobBusy(Path(other), E_BUSY, title=other_job.title or other_job.kind, path=str(other))
        read_job(job_dir)  # a job whose supervisor died is marked failed (and its step ended) first
        with _lock(job_dir):
            previous = _load(job_dir)
            if previous is not None and previous.active:
                raise JobBusy(job_dir, E_ALREADY, path=str(job_dir))
            try:
                os.unlink(job_dir / STOP_FILE)
            except FileNotFoundError:
                pass
            job = Job(
                id=uuid.uuid4().hex[:12],
                kind=kind,
                title=title,
                steps=steps,
                attempt=(previous.attempt + 1) if previous else 1,
                meta=meta or {},
                history=(previous.history + [previous.attempt_record()]) if previous else [],
            )
            if before_spawn is not None:
                before_spawn()
            _save(job_dir, job)
            sup_log = open(job_dir / "supervisor.log", "ab")
            try:
                popen = subprocess.Popen(
                    [python_executable(), "-m", "core.jobs.supervisor", str(job_dir)],
                    cwd=str(REPO_ROOT),
                    stdin=subprocess.DEVNULL,
                    stdout=sup_log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                    env=dict(os.environ, **secret_env) if secret_env else None,
                )
            finally:
                sup_log.close()
            _SPAWNED[popen.pid] = popen
            job.supervisor = proc_info(popen.pid) or ProcInfo(pid=popen.pid, create_time=time.time())
            _save(job_dir, job)
        if exclusive:
            atomic_write_json(exclusive, {"job_dir": str(job_dir), "job_id": job.id})
        return job
    finally:
        if claim_lock:
            claim_lock.release()


def read_job(job_dir: str | os.PathLike) -> Optional[Job]:
    """The job's state, reconciled with the processes: a dead supervisor means *failed*."""
    job_dir = Path(job_dir)
    job = _load(job_dir)
    if job is None or not job.active:
        return job
    if is_alive(job.supervisor):
        return job
    # Give a supervisor that just exited a moment to have written its final state.
    time.sleep(0.05)
    job = _load(job_dir)
    if job is None or not job.active:
        return job

    def mark_failed(j: Job) -> None:
        if not j.active:
            return
        if is_alive(j.child):
            signal_group(j.child, signal.SIGKILL)
        j.state = "failed"
        j.ended_at = time.time()
        j.reason = "The job's supervisor process died (killed or the machine restarted); the step was ended."

    return update_job(job_dir, mark_failed)


def request_stop(job_dir: str | os.PathLike) -> Optional[Job]:
    """Ask a job to stop. Training saves a checkpoint at the next iteration, then exits; other
    steps are terminated. Safe to call from any process (a second browser tab too)."""
    job_dir = Path(job_dir)
    job = read_job(job_dir)
    if job is None or not job.active:
        return job
    (job_dir / STOP_FILE).write_text(str(time.time()), encoding="utf-8")

    def mark(j: Job) -> None:
        if j.stop_requested_at is None:
            j.stop_requested_at = time.time()

    return update_job(job_dir, mark)


def stop_requested(job_dir: str | os.PathLike) -> bool:
    return (Path(job_dir) / STOP_FILE).exists()


def wait_job(job_dir: str | os.PathLike, timeout: float | None = None, poll_s: float = 0.2) -> Job:
    """Block until the job ends (for the smoke run and tests)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        job = read_job(job_dir)
        if job is not None and not job.active:
            return job
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"Job in {job_dir} still {job.state if job else 'missing'} after {timeout}s")
        time.sleep(poll_s)


def describe_exit(code: Optional[int]) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def job_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a step: this one, plus the step's own variables."""
    env = dict(os.environ)
    env.update(extra or {})
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def python_module_argv(module: str, *args: str) -> list[str]:
    return [python_executable(), "-m", module, *args]
