"""The run queue of a workspace: run specs that train one after another on its GPU set, and sweeps.

    <workspace>/queue/queue.json        entries in order, paused, which runner decided to exit
    <workspace>/queue/queue.json.lock   every change is made under it (filelock), written atomically
    <workspace>/queue/runner/           the runner's job (core.jobs: job.json, job.log)
    <workspace>/locks/queue-runner.json claim: one runner per workspace

An entry is a copy of its project's choices at queue time (with a sweep's values applied) and the
SHA-256 of its dataset file. ``python -m core.train.queue run WORKSPACE`` (the runner, a detached job)
takes the first pending entry once the GPU set is free, starts it as a normal run (the same claim as
Start: one run per GPU set) and waits for it to end, then goes on; it exits when nothing waits.

Who advances the queue with no page open: the runner. If it dies (kill -9, a reboot), every training
run's supervisor runs ``python -m core.train.queue kick WORKSPACE`` when the run ends, which starts a
runner again when entries wait; the Train page does the same when it loads. A new runner carries on
from ``queue.json``: an entry taken but not recorded as started is matched to its run by run.json's
``queue.entry``. An entry whose project was deleted or whose dataset changed since it was queued is
refused with the reason, and the rest goes on.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Callable, Literal, Optional

from filelock import FileLock
from pydantic import BaseModel, Field, ValidationError

from core import jobs
from core.errors import UserError
from core.fsutil import DiskFull, Unreadable, atomic_write_json, read_state
from core.paths import python_executable

EntryState = Literal["pending", "starting", "running", "done", "refused"]
WAITING = ("pending", "starting", "running")  # entries the runner still has to handle
SWEEP_SETTINGS = ("lr", "max_epochs", "lora_r")  # settings a sweep varies (from the hyperparameter schema)
MAX_SWEEP_RUNS = 24
POLL_S = 1.0
EXIT_WAIT_S = 15.0  # how long a kick waits for a runner that decided to exit

E_PROJECT_GONE = "Project {project} was deleted after this run was queued."
E_DATA_GONE = "The dataset {path} no longer exists."
E_DATA_CHANGED = "The dataset {path} changed after this run was queued (its SHA-256 differs)."
E_NO_DATASET = "This project has no dataset yet: choose one on Model & Data first."
E_SETTINGS = "The queued settings are no longer valid: {fields}."
E_NOT_WAITING = "Only a run that has not started can be moved or removed; stop a started run on its page."
E_NO_ENTRY = "That queue entry no longer exists."
E_BAD_VALUE = "{label}: {value} is not a number."
E_OUT_OF_RANGE = "{label}: {value} is outside the allowed range."
E_NO_VALUES = "Give at least one setting two or more values to sweep over."
E_TOO_MANY = "This sweep makes {n} runs; at most {max} at once."
E_DAMAGED = "The run queue's file is damaged ({problem}); remove it to start a new queue."
E_FAILED = "The run could not start: reading or writing a file failed (see the details)."
MESSAGES = [E_PROJECT_GONE, E_DATA_GONE, E_DATA_CHANGED, E_NO_DATASET, E_SETTINGS, E_NOT_WAITING, E_NO_ENTRY,
            E_BAD_VALUE, E_OUT_OF_RANGE, E_NO_VALUES, E_TOO_MANY, E_DAMAGED, E_FAILED]

# a project's fields that are not choices of the run (identity, bookkeeping, download settings)
_NOT_QUEUED = {"name", "workspace", "download_cache", "download_sources", "hub_endpoints", "is_demo",
               "created_at", "updated_at"}


class QueueError(UserError):
    """The queue cannot do what was asked; the message says why."""


class Entry(BaseModel):
    id: str
    project: str
    settings: dict  # the project's choices at queue time, the sweep's values applied
    values: dict = Field(default_factory=dict)  # the sweep's values of this entry (its label)
    dataset_sha256: Optional[str] = None
    sweep: Optional[str] = None
    state: EntryState = "pending"
    added_at: float = Field(default_factory=time.time)
    started_at: Optional[float] = None
    ended_at: Optional[float] = None
    run: Optional[str] = None  # the run directory's name, once started
    outcome: Optional[str] = None  # the run's final state (succeeded / failed / stopped / missing)
    error: Optional[dict] = None  # why it was refused (a UserError as a dict)

    @property
    def label(self) -> str:
        return " · ".join(f"{k}={v}" for k, v in self.values.items())


class Queue(BaseModel):
    entries: list[Entry] = Field(default_factory=list)
    paused: bool = False
    runner_exit: Optional[str] = None  # the id of a runner job that decided to exit (nothing waited)

    def waiting(self) -> list[Entry]:
        return [e for e in self.entries if e.state in WAITING]


# --- the file ------------------------------------------------------------------------------------------
def queue_dir(workspace: str | os.PathLike) -> Path:
    return Path(workspace) / "queue"


def runner_dir(workspace: str | os.PathLike) -> Path:
    return queue_dir(workspace) / "runner"


def _lock(workspace) -> FileLock:
    queue_dir(workspace).mkdir(parents=True, exist_ok=True)
    return FileLock(str(queue_dir(workspace) / "queue.json.lock"), timeout=30)


def _load(workspace) -> Queue:
    q = read_state(queue_dir(workspace) / "queue.json", Queue)
    if isinstance(q, Unreadable):
        raise QueueError(E_DAMAGED, problem=str(q))
    return q or Queue()


def read_queue(workspace: str | os.PathLike) -> Queue:
    """The queue as it is on disk (an empty one when there is none)."""
    return _load(workspace)


def _change(workspace, change: Callable[[Queue], None]) -> Queue:
    """Change the queue under its lock; written (atomically) only if ``change`` changed it."""
    with _lock(workspace):
        q = _load(workspace)
        before = q.model_dump()
        change(q)
        if q.model_dump() != before:
            atomic_write_json(queue_dir(workspace) / "queue.json", q.model_dump(mode="json"))
        return q


def _entry(q: Queue, entry_id: str) -> Entry:
    for e in q.entries:
        if e.id == entry_id:
            return e
    raise QueueError(E_NO_ENTRY)


# --- adding, sweeps, reordering --------------------------------------------------------------------------
def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            h.update(block)
    return h.hexdigest()


def parse_values(name: str, text: str) -> list:
    """The values a sweep tries for setting ``name``, from "1e-4, 2e-4" (checked against the schema)."""
    from core.train.hyperparams import Hyperparams, settings

    setting = next(s for s in settings() if s.name == name)
    values = []
    for raw in text.replace(";", ",").split(","):
        raw = raw.strip()
        if not raw:
            continue
        try:
            value = float(raw) if setting.kind == "float" else int(raw)
        except ValueError:
            raise QueueError(E_BAD_VALUE, label=setting.label, value=repr(raw)) from None
        try:
            Hyperparams(**{name: value})
        except ValidationError:
            raise QueueError(E_OUT_OF_RANGE, label=setting.label, value=raw) from None
        if value not in values:
            values.append(value)
    return values


def sweep_values(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values (the settings with none keep the project's value)."""
    grid = {k: v for k, v in grid.items() if v}
    if not grid or all(len(v) < 2 for v in grid.values()):
        raise QueueError(E_NO_VALUES)
    n = 1
    for v in grid.values():
        n *= len(v)
    if n > MAX_SWEEP_RUNS:
        raise QueueError(E_TOO_MANY, n=n, max=MAX_SWEEP_RUNS)
    return [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]


def add(project, device: str, values: Optional[list[dict]] = None) -> list[Entry]:
    """Queue one run of ``project`` as it is now, or one per dict of ``values`` (a sweep: settings
    changed per run). Each is checked as Start would check it (a config can be made) before anything
    is queued; the runner is started if none runs."""
    from core.train.configgen import render_config, spec_from_project
    from core.train.hyperparams import Hyperparams

    values = values or [{}]
    sweep = uuid.uuid4().hex[:8] if len(values) > 1 else None
    if not project.dataset_path:
        raise QueueError(E_NO_DATASET)
    entries = []
    for v in values:
        hp = Hyperparams.model_validate(project.hyperparams.model_dump() | v)  # ValidationError: out of bounds
        candidate = project.model_copy(update={"hyperparams": hp})
        render_config(spec_from_project(candidate, device=device))  # ConfigError: cannot train as queued
        entries.append(Entry(id=uuid.uuid4().hex[:12], project=project.name, values=v, sweep=sweep,
                             settings=candidate.model_dump(mode="json", exclude=_NOT_QUEUED)))
    digest = file_sha256(project.dataset_path) if Path(project.dataset_path).is_file() else None
    for e in entries:
        e.dataset_sha256 = digest
    _change(project.workspace, lambda q: q.entries.extend(entries))
    ensure_runner(project.workspace)
    return entries


def remove(workspace, entry_id: str) -> None:
    """Remove a pending entry, or a finished one from the list."""
    def change(q: Queue) -> None:
        e = _entry(q, entry_id)
        if e.state in ("starting", "running"):
            raise QueueError(E_NOT_WAITING)
        q.entries.remove(e)

    _change(workspace, change)


def clear_finished(workspace) -> None:
    _change(workspace, lambda q: setattr(q, "entries", q.waiting()))


def move(workspace, entry_id: str, delta: int) -> None:
    """Move a pending entry ``delta`` places among the pending ones (-1: earlier); the others keep their places."""
    def change(q: Queue) -> None:
        e = _entry(q, entry_id)
        if e.state != "pending":
            raise QueueError(E_NOT_WAITING)
        pending = [x for x in q.entries if x.state == "pending"]
        i = pending.index(e)
        pending.insert(max(0, min(len(pending) - 1, i + delta)), pending.pop(i))
        order = iter(pending)
        q.entries = [next(order) if x.state == "pending" else x for x in q.entries]

    _change(workspace, change)


def set_paused(workspace, paused: bool) -> None:
    """Paused: no new run starts (a started one trains on); resuming starts the runner again."""
    _change(workspace, lambda q: setattr(q, "paused", paused))
    if not paused:
        ensure_runner(workspace)


# --- the runner --------------------------------------------------------------------------------------------
def runner_job(workspace) -> Optional[jobs.Job]:
    return jobs.read_job(runner_dir(workspace))


def ensure_runner(workspace) -> Optional[jobs.Job]:
    """Start the runner when entries wait and none runs (the Train page's load, every training's end,
    ``kick``). Returns the runner's job, or None when nothing waits or the queue is paused."""
    workspace = Path(workspace)
    if not (queue_dir(workspace) / "queue.json").exists():
        return None
    deadline = time.monotonic() + EXIT_WAIT_S
    while True:
        with _lock(workspace):
            q = _load(workspace)
            current = runner_job(workspace)
            if not q.waiting() or (q.paused and not any(e.state != "pending" for e in q.waiting())):
                return None
            if current is None or not current.active:
                break
            if q.runner_exit != current.id:  # it runs and will see the waiting entries
                return current
        if time.monotonic() > deadline:  # pragma: no cover - a runner that cannot end
            return current
        time.sleep(0.1)  # it decided to exit just before: wait for its end, then start another
    step = jobs.Step(name="run queue", argv=[python_executable(), "-m", "core.train.queue", "run", str(workspace)])
    locks = workspace / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    try:
        return jobs.start_job(runner_dir(workspace), [step], kind="queue", title="Run queue",
                              exclusive=locks / "queue-runner.json")
    except jobs.JobBusy:  # another caller started it first
        return runner_job(workspace)


def kick_argv(workspace) -> list[str]:
    """What a training's supervisor runs when the run ends: start a runner if entries wait."""
    return [python_executable(), "-m", "core.train.queue", "kick", str(Path(workspace).resolve())]


def _refuse(workspace, entry_id: str, err: UserError) -> None:
    def change(q: Queue) -> None:
        e = _entry(q, entry_id)
        e.state, e.error, e.ended_at = "refused", err.as_dict(), time.time()

    _change(workspace, change)


def _set(workspace, entry_id: str, **fields) -> None:
    def change(q: Queue) -> None:
        e = _entry(q, entry_id)
        for k, v in fields.items():
            setattr(e, k, v)

    _change(workspace, change)


def _gpu_busy(workspace) -> bool:
    from core.train.runs import workspace_gpu_claim

    holder = read_state(workspace_gpu_claim(workspace))
    other = holder.get("job_dir") if isinstance(holder, dict) else None
    job = jobs.read_job(other) if other else None
    return job is not None and (job.active or job.state == "damaged")


def _find_run(project, entry_id: str):
    from core.train import runs

    return next((r for r in runs.list_runs(project) if (r.info.get("queue") or {}).get("entry") == entry_id), None)


def advance(workspace, device: str, gpu_count: int, runner_id: Optional[str] = None) -> str:
    """One move of the runner: ``"exit"`` (nothing waits, or paused), ``"wait"`` (a run trains or the
    GPU set is busy) or ``"moved"`` (an entry started, ended or was refused)."""
    from core.project import ProjectError, ProjectStore
    from core.train import runs

    workspace = Path(workspace)
    taken: list[Entry] = []  # the entry to handle now (a copy)
    busy: list[bool] = []

    def take(q: Queue) -> None:
        current = next((e for e in q.entries if e.state in ("starting", "running")), None)
        if current is None:
            pending = next((e for e in q.entries if e.state == "pending"), None)
            if pending is None or q.paused:
                q.runner_exit = runner_id
                return
            if _gpu_busy(workspace):  # a run started from a page trains: the first entry waits for it
                busy.append(True)
                return
            pending.state, pending.started_at = "starting", time.time()
            current = pending
        taken.append(current.model_copy())

    _change(workspace, take)
    if busy:
        return "wait"
    if not taken:
        return "exit"
    entry = taken[0]
    store = ProjectStore(workspace)
    try:
        project = store.load(entry.project)
    except ProjectError as e:
        if entry.state == "running":  # its run trains or ended with its project: nothing to read
            _set(workspace, entry.id, state="done", outcome="missing", ended_at=time.time())
        else:
            _refuse(workspace, entry.id, QueueError(E_PROJECT_GONE, project=entry.project)
                    if not store.exists(entry.project) else e)
        return "moved"
    if entry.state == "running":
        job = jobs.read_job(project.runs_dir / entry.run)
        if job is not None and job.active:
            return "wait"
        _set(workspace, entry.id, state="done", outcome=job.state if job else "missing", ended_at=time.time())
        return "moved"
    # starting: its run may exist already (the runner before this one died while starting it)
    run = _find_run(project, entry.id)
    if run is None and _gpu_busy(workspace):  # a run started from a page took the GPU set first
        return "wait"
    try:
        if run is not None:
            if run.job() is None:
                runs.start_training(project, run)
            _set(workspace, entry.id, state="running", run=run.id)
            return "moved"
        problem = _dataset_problem(entry)
        if problem is not None:
            _refuse(workspace, entry.id, problem)
            return "moved"
        try:
            candidate = project.model_validate(project.model_dump() | entry.settings)
        except ValidationError as e:
            fields = ", ".join(".".join(map(str, x["loc"])) for x in e.errors())
            _refuse(workspace, entry.id, QueueError(E_SETTINGS, fields=fields, details=str(e)))
            return "moved"
        run, _ = runs.start_new_run(candidate, device, gpu_count=gpu_count,
                                    origin={"entry": entry.id, "sweep": entry.sweep, "values": entry.values})
        _set(workspace, entry.id, state="running", run=run.id)
        return "moved"
    except jobs.JobBusy:  # a run started from a page took the GPU set first: try again later
        return "wait"
    except UserError as e:  # ConfigError, LaunchError, NotFound: this entry cannot train
        _refuse(workspace, entry.id, e)
    except DiskFull as e:  # refused with the free space it measured
        _refuse(workspace, entry.id, QueueError(e.text, **e.params))
    except OSError as e:  # other I/O: the system's words in the details
        _refuse(workspace, entry.id, QueueError(E_FAILED, details=f"{type(e).__name__}: {e}"))
    return "moved"


def _dataset_problem(entry: Entry) -> Optional[UserError]:
    path = entry.settings.get("dataset_path")
    if not path or not Path(path).is_file():
        return QueueError(E_DATA_GONE, path=str(path))
    if entry.dataset_sha256 and file_sha256(path) != entry.dataset_sha256:
        return QueueError(E_DATA_CHANGED, path=str(path))
    return None


def run(workspace, poll_s: float = POLL_S) -> int:
    """The runner's loop (``python -m core.train.queue run WORKSPACE``), until nothing waits."""
    from core.machine import system

    me = runner_job(workspace)
    runner_id = me.id if me is not None else None
    gpus = system.gpus()
    while not jobs.stop_requested(runner_dir(workspace)):
        try:
            move = advance(workspace, "cuda" if gpus else "cpu", len(gpus), runner_id)
        except QueueError as e:  # the queue's file is damaged: nothing to run until it is repaired
            print(e, file=sys.stderr, flush=True)
            return 1
        except Exception:  # noqa: BLE001 - a broken step must not end the queue: logged, tried again
            traceback.print_exc()
            move = "wait"
        if move != "wait":
            print(f"[{time.strftime('%H:%M:%S')}] {move}", flush=True)
        if move == "exit":
            return 0
        if move == "wait":
            time.sleep(poll_s)
    return 0


def main(argv: list[str]) -> int:
    """``run WORKSPACE``: the runner (a job step); ``kick WORKSPACE``: start a runner if entries wait."""
    if len(argv) != 2 or argv[0] not in ("run", "kick"):
        print("usage: python -m core.train.queue run|kick WORKSPACE", file=sys.stderr)
        return 2
    if argv[0] == "run":
        return run(argv[1])
    ensure_runner(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
