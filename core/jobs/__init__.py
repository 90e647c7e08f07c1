"""One mechanism for every long task (training, conversion, downloads): detached supervised jobs.

A job is a directory::

    job.json        state, written atomically (queued = starting / running / succeeded / failed /
                    stopped), pids with their create times, argv of each step, exit code, times, reason
    job.log         stdout+stderr of the steps, appended
    stop.request    present when a stop was asked for (the training hook and the supervisor poll it)
    supervisor.log  the supervisor's own errors, if any
    .space_reserve  a little space held for the final state: deleted to write it on a full disk

``start_job`` spawns ``python -m core.jobs.supervisor <dir>`` in a new session with no pipes to the
caller, so a job outlives the Streamlit server, the browser tab and the SSH tunnel. Liveness is
read from the processes themselves (PID + create time; zombies count as dead), so a job whose
supervisor was killed shows *failed* at the next ``read_job`` instead of "running" forever.

State can not contradict itself: every transition is a compare-and-set under the job's file lock
that re-checks liveness inside it (``update_job``); a *queued* job is starting, not failed, until
its supervisor had ``START_GRACE_S`` to register; the supervisor moves only its own queued job to
running and only an active job to its final state; the one-job-per-resource claim is checked and
written under its lock together with the new state, and is free as soon as the job it names is not
active. A supervisor found dead with its step alive asks the step to stop (a training saves a
checkpoint) and kills it only after the step's graceful time. A damaged ``job.json`` reads as a job
in the state ``damaged`` (the reason says which file and why); ``rebuild_job`` repairs it.
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
from filelock import FileLock, Timeout
from pydantic import BaseModel, Field

from core.errors import UserError
from core.fsutil import (DiskFull, Unreadable, atomic_write_json, disk_full_message, is_disk_full,
                         read_state)
from core.paths import REPO_ROOT, python_executable

State = Literal["queued", "running", "succeeded", "failed", "stopped", "damaged"]
ACTIVE_STATES = ("queued", "running")
START_GRACE_S = 30.0  # a queued job whose supervisor has not registered is failed only after this
RESERVE_FILE = ".space_reserve"  # freed by the supervisor to record the end on a full disk
RESERVE_BYTES = 256 * 1024
SUPERVISOR_ENV = "XTUNER_STUDIO_SUPERVISOR"  # "pid:create_time" of a step's supervisor, for it to watch
DISK_FULL_MARKS = ("No space left on device", "Disk quota exceeded")

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
    # JSON file the step writes as it goes; its "phase" (finished / stopped) tells how the step
    # ended when its exit code was lost with its supervisor
    outcome_file: Optional[str] = None
    # run by the supervisor when the step did not succeed, to remove its partial output
    cleanup_argv: Optional[list[str]] = None

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
    # the supervisor died while the step ran: the time the step was asked to stop
    orphaned_at: Optional[float] = None
    # a reconciled state that could not be written back (disk full): why
    unsaved: Optional[str] = None
    meta: dict = Field(default_factory=dict)
    # earlier attempts in the same directory (a run's start, then its resumes), oldest first
    history: list[dict] = Field(default_factory=list)
    # run by the supervisor once the final state is recorded, whatever it is (a training's end lets
    # the run queue go on)
    after_argv: Optional[list[str]] = None

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

    @classmethod
    def damaged(cls, problem: Unreadable) -> "Job":
        """Stand-in for a job whose ``job.json`` cannot be read; ``reason`` says which file and why."""
        return cls(id="", kind="unknown", steps=[], state="damaged", reason=str(problem))

    def attempt_record(self) -> dict:
        return {"attempt": self.attempt, "id": self.id, "state": self.state, "started_at": self.started_at,
                "ended_at": self.ended_at, "duration_s": self.duration_s, "exit_code": self.exit_code,
                "reason": self.reason, "meta": self.meta}


E_BUSY = "{title} is still running ({path})."
E_ALREADY = "A job is already running in {path}."
E_DAMAGED = "The job's state file is damaged ({problem}); repair it first."
MESSAGES = [E_BUSY, E_ALREADY, E_DAMAGED]


class JobBusy(UserError, RuntimeError):
    """Another job holds the resource (GPU set, download target); ``job_dir`` says which."""

    def __init__(self, job_dir: Path, text: str, **params):
        super().__init__(text, **params)
        self.job_dir = job_dir


# Popen handles of supervisors this process started: polled to reap them (no zombies).
_SPAWNED: dict[int, subprocess.Popen] = {}


def _lock(job_dir: Path) -> FileLock:
    return FileLock(str(Path(job_dir) / ".job.lock"), timeout=10)


class JobDamaged(RuntimeError):
    """``job.json`` cannot be read: repair it (``rebuild_job``) first."""


def _load(job_dir: Path) -> Job | Unreadable | None:
    return read_state(Path(job_dir) / JOB_FILE, Job)


def _save(job_dir: Path, job: Job) -> None:
    job.unsaved = None
    atomic_write_json(Path(job_dir) / JOB_FILE, job.model_dump(mode="json"))


def update_job(job_dir: str | os.PathLike, change: Callable[[Job], None], fallback: Optional[Job] = None) -> Job:
    """Compare-and-set ``job.json`` under the job's lock: ``change`` sees the current state (it
    checks what it needs and changes nothing when that does not hold); written only if changed.

    ``fallback``: the caller's own copy of the job (the supervisor's), changed and written when
    ``job.json`` is missing or damaged."""
    job_dir = Path(job_dir)
    with _lock(job_dir):
        job = _load(job_dir)
        if not isinstance(job, Job):
            if fallback is None:
                if job is None:
                    raise FileNotFoundError(f"No job in {job_dir}")
                raise JobDamaged(str(job))
            job = fallback
            before = None
        else:
            before = job.model_dump()
        change(job)
        if job.model_dump() != before:
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
    after_argv: list[str] | None = None,
) -> Job:
    """Start a detached job in ``job_dir`` (created if needed; a finished job there is replaced,
    its log kept and appended to, so a resumed run reads as one story).

    ``exclusive``: path of a claim file (e.g. one per GPU set). Under a file lock, if the claim
    names a job that is still active, ``JobBusy`` is raised and nothing starts: two browser tabs
    pressing Start together start exactly one job.

    ``before_spawn``: called under the locks once the job is sure to start (e.g. to clear files of
    an earlier attempt).

    ``after_argv``: a command the supervisor runs after recording the job's end (any outcome).

    ``secret_env``: variables (a hub token) given to the supervisor's environment only — the steps
    inherit them — and never written to ``job.json``, an argv or the log.

    Raises ``DiskFull`` (the job recorded *failed* where it can be) when the disk is full.
    """
    job_dir = Path(job_dir).resolve()
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DiskFull(job_dir.parent) if is_disk_full(e) else e
    claim_lock = FileLock(str(exclusive) + ".lock", timeout=30) if exclusive else None
    if claim_lock:
        claim_lock.acquire()
    try:
        if exclusive:
            holder = read_state(exclusive)
            other = holder.get("job_dir") if isinstance(holder, dict) else None
            if other and Path(other).resolve() != job_dir:
                other_job = read_job(other)
                if other_job is not None and (other_job.active or other_job.state == "damaged"):
                    raise JobBusy(Path(other), E_BUSY, title=other_job.title or other_job.kind, path=str(other))
        with _lock(job_dir):
            previous = _load(job_dir)
            if isinstance(previous, Unreadable):
                raise JobBusy(job_dir, E_DAMAGED, problem=str(previous))
            if previous is not None and previous.active:
                _reconcile(job_dir, previous)  # a job whose supervisor died ends first (under this lock)
                if previous.active:
                    raise JobBusy(job_dir, E_ALREADY, path=str(job_dir))
                _save(job_dir, previous)
            job = Job(
                id=uuid.uuid4().hex[:12],
                kind=kind,
                title=title,
                steps=steps,
                attempt=(previous.attempt + 1) if previous else 1,
                meta=meta or {},
                after_argv=after_argv,
                history=(previous.history + [previous.attempt_record()]) if previous else [],
            )
            try:
                try:
                    os.unlink(job_dir / STOP_FILE)
                except FileNotFoundError:
                    pass
                if before_spawn is not None:
                    before_spawn()
                _save(job_dir, job)
                with open(job_dir / RESERVE_FILE, "wb") as f:
                    f.write(bytes(RESERVE_BYTES))
                if exclusive:  # the claim goes with the state: both written under the claim's lock
                    atomic_write_json(exclusive, {"job_dir": str(job_dir), "job_id": job.id})
                job.supervisor = _spawn_supervisor(job_dir, job.id, secret_env)
                _save(job_dir, job)
            except OSError as e:
                _abandon(job_dir, job, e)
                raise DiskFull(job_dir, (meta or {}).get("needs_bytes")) if is_disk_full(e) else e
        return job
    finally:
        if claim_lock:
            claim_lock.release()


def _spawn_supervisor(job_dir: Path, job_id: str, secret_env: dict[str, str] | None) -> ProcInfo:
    sup_log = open(job_dir / "supervisor.log", "ab")
    try:
        popen = subprocess.Popen(
            [python_executable(), "-m", "core.jobs.supervisor", str(job_dir), job_id],
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
    return proc_info(popen.pid) or ProcInfo(pid=popen.pid, create_time=time.time())


def _abandon(job_dir: Path, job: Job, error: OSError) -> None:
    """A start that broke half-way (disk full): no supervisor runs; record *failed* if possible."""
    if job.supervisor is not None:
        signal_group(job.supervisor, signal.SIGKILL)
    job.state, job.ended_at = "failed", time.time()
    job.reason = (disk_full_message(job_dir, job.meta.get("needs_bytes")) if is_disk_full(error)
                  else f"The job could not start: {error}")
    try:
        _save(job_dir, job)
    except OSError:
        pass


def _starting(job: Job) -> bool:
    """Queued and its supervisor still within its grace period to register."""
    if job.state != "queued":
        return False
    if job.supervisor is not None:
        return is_alive(job.supervisor)
    return time.time() - job.created_at < START_GRACE_S


def _disk_full_reason(job_dir: Path, job: Job) -> Optional[str]:
    """``disk full: …`` when the job's log or its disk says the step ran out of space."""
    try:
        with open(job_dir / LOG_FILE, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 20000))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        tail = ""
    try:
        from core.machine.system import disk_free

        nearly_full = disk_free(job_dir) < 1024 * 1024
    except OSError:
        nearly_full = False
    if nearly_full or any(m in tail for m in DISK_FULL_MARKS):
        return disk_full_message(job_dir, job.meta.get("needs_bytes"))
    return None


def _outcome(step: Optional[Step]) -> Optional[str]:
    """How a step whose exit code was lost ended, from its outcome file: finished / stopped / None."""
    if step is None or not step.outcome_file:
        return None
    data = read_state(step.outcome_file)
    phase = data.get("phase") if isinstance(data, dict) else None
    return phase if phase in ("finished", "stopped") else None


def _reconcile(job_dir: Path, j: Job) -> None:
    """The compare-and-set of a reader (called under the job's lock, liveness re-checked here): an
    active job whose supervisor is gone ends. Its step, if still alive, is first asked to stop (a
    training saves a checkpoint) and killed only after the step's graceful time; a step that ended
    by itself is recorded from its outcome file (finished and saved: *succeeded*)."""
    if not j.active or is_alive(j.supervisor) or _starting(j):
        return
    now = time.time()
    step = j.steps[j.current_step] if j.current_step < len(j.steps) else None
    if is_alive(j.child):
        grace = step.graceful_stop_s if step is not None and step.stops_gracefully() else 0.0
        if j.orphaned_at is None and grace:
            j.orphaned_at = j.stop_requested_at = now
            (job_dir / STOP_FILE).write_text(str(now), encoding="utf-8")
            j.escalation = "The job's supervisor died; the step was asked to stop (and save) by itself."
            return
        if j.orphaned_at is not None and now - j.orphaned_at < grace:
            return
        signal_group(j.child, signal.SIGKILL)
        j.state, j.ended_at = "failed", now
        j.reason = (_disk_full_reason(job_dir, j) or
                    "The job's supervisor process died (killed or the machine restarted); the step was ended.")
        return
    outcome = _outcome(step)
    last = j.current_step >= len(j.steps) - 1
    j.ended_at = now
    if outcome == "finished" and last:
        j.state, j.exit_code = "succeeded", 0
        j.reason = "The job's supervisor died, but its step had finished and saved."
    elif outcome == "stopped" or (outcome == "finished" and j.orphaned_at is not None):
        j.state = "stopped"
        j.reason = "The job's supervisor died; its step stopped by itself after saving."
    else:
        j.state = "failed"
        j.reason = (_disk_full_reason(job_dir, j) or
                    "The job's supervisor process died (killed or the machine restarted); the step was ended.")


def read_job(job_dir: str | os.PathLike) -> Optional[Job]:
    """The job's state, reconciled with the processes (``_reconcile``): ``None`` when there is no
    job, a ``damaged`` stand-in when ``job.json`` cannot be read. Never raises for a full disk: a
    state that cannot be written back is returned with ``unsaved`` saying why."""
    job_dir = Path(job_dir)
    job = _load(job_dir)
    if isinstance(job, Unreadable):
        return Job.damaged(job)
    if job is None or not job.active or is_alive(job.supervisor) or _starting(job):
        return job
    try:
        return update_job(job_dir, lambda j: _reconcile(job_dir, j))
    except (OSError, Timeout, JobDamaged) as e:
        try:
            _reconcile(job_dir, job)
        except OSError:
            pass
        job.unsaved = f"job.json could not be updated: {e}"
        return job


def request_stop(job_dir: str | os.PathLike) -> Optional[Job]:
    """Ask a job to stop. Training saves a checkpoint at the next iteration, then exits; other
    steps are terminated. Safe to call from any process (a second browser tab too). The request
    itself is a file: it works with a damaged ``job.json`` too."""
    job_dir = Path(job_dir)
    job = read_job(job_dir)
    if job is None or not (job.active or job.state == "damaged"):
        return job
    (job_dir / STOP_FILE).write_text(str(time.time()), encoding="utf-8")
    if job.state == "damaged":
        return job

    def mark(j: Job) -> None:
        if j.active and j.stop_requested_at is None:
            j.stop_requested_at = time.time()

    try:
        return update_job(job_dir, mark)
    except (OSError, Timeout, JobDamaged):
        return read_job(job_dir)


def rebuild_job(job_dir: str | os.PathLike, kind: str, title: str = "", meta: dict | None = None,
                outcome_file: str | os.PathLike | None = None) -> Job:
    """Repair a damaged ``job.json`` from the processes and the files on disk: a live supervisor of
    this directory means *running*; otherwise the step's outcome file says finished (*succeeded*)
    or stopped, and anything else is *failed*. The damaged file is kept as ``job.json.damaged``."""
    job_dir = Path(job_dir).resolve()
    with _lock(job_dir):
        current = _load(job_dir)
        if isinstance(current, Job):
            return current
        if isinstance(current, Unreadable):
            try:
                os.replace(job_dir / JOB_FILE, job_dir / (JOB_FILE + ".damaged"))
            except OSError:
                pass
        sup = _find_supervisor(job_dir)
        step = Step(name="rebuilt", argv=[], outcome_file=str(outcome_file) if outcome_file else None)
        job = Job(id=uuid.uuid4().hex[:12], kind=kind, title=title, steps=[step], meta=meta or {},
                  reason="job.json was rebuilt from the processes and the files on disk.")
        if sup is not None:
            job.state, job.supervisor, job.started_at = "running", proc_info(sup.pid), sup.create_time()
            kids = sup.children()
            job.child = proc_info(kids[0].pid) if kids else None
        else:
            outcome = _outcome(step)
            job.state = {"finished": "succeeded", "stopped": "stopped"}.get(outcome or "", "failed")
            job.ended_at = time.time()
        _save(job_dir, job)
        return job


def _find_supervisor(job_dir: Path) -> Optional[psutil.Process]:
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info.get("cmdline") or []
        if "core.jobs.supervisor" in cmd and str(job_dir) in cmd:
            return p
    return None


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
