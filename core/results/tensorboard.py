"""TensorBoard over a run's events: runs write mmengine's TensorBoard events beside scalars.json
(``work_dir/<timestamp>/vis_data/events.out.tfevents.*``, when the ``tensorboard`` package is
installed); ``start`` serves them on the loopback address as a job (Stop ends it).

    runs/<run>/tensorboard/   job.json job.log of the server
"""
from __future__ import annotations

import importlib.util
import shlex
import socket

from core import jobs
from core.jobs import Job, Step
from core.paths import REPO_ROOT, python_executable
from core.train.runs import Run

HOST = "127.0.0.1"  # loopback only: reached through an SSH tunnel, like the app
FIRST_PORT = 6006  # TensorBoard's own default


def available() -> bool:
    """Whether this environment can write and serve TensorBoard events (checked without importing it)."""
    return importlib.util.find_spec("tensorboard") is not None


def job_dir(run: Run):
    return run.dir / "tensorboard"


def free_port(start: int = FIRST_PORT, tries: int = 50) -> int:
    """The first port from ``start`` on that nothing listens on at the loopback address."""
    for port in range(start, start + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    return start


def arguments(run: Run, port: int) -> list[str]:
    return ["--logdir", str(run.work_dir), "--host", HOST, "--port", str(port)]


def command_line(run: Run, port: int) -> str:
    """The exact shell line that serves this run's events (every value quoted)."""
    return shlex.join(["tensorboard", *arguments(run, port)])


def port_of(job: Job | None) -> int | None:
    return (job.meta or {}).get("port") if job is not None else None


def start(run: Run, port: int | None = None) -> Job:
    """Serve the run's events with TensorBoard as a detached job, on ``port`` (a free one by default)."""
    port = port or free_port()
    step = Step(name="tensorboard", argv=[python_executable(), "-m", "tensorboard.main", *arguments(run, port)],
                cwd=str(REPO_ROOT))
    return jobs.start_job(job_dir(run), [step], kind="tensorboard", title=f"TensorBoard {run.id}",
                          meta={"run": run.id, "port": port})
