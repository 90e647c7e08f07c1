import signal

import pytest

from core import jobs


@pytest.fixture(autouse=True)
def no_job_left_running(tmp_path):
    """Whatever a chaos test left running (it failed half-way) is ended, so it does not load the machine."""
    yield
    for path in tmp_path.rglob(jobs.JOB_FILE):
        job = jobs.read_job(path.parent)
        if job is not None and job.active:
            jobs.signal_group(job.child, signal.SIGKILL)
            jobs.signal_group(job.supervisor, signal.SIGKILL)
