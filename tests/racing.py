"""Start races that cannot miss their start: every racer marks that it is calling ``start_job`` (a file
in a shared folder), and the start that wins the locks waits, still holding them, until every racer
has — or fails after ``timeout`` (a missed race is a failure, never a pass). Each racer reports
when it entered and left, so a test can assert that all were in ``start_job`` at once."""
from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

from core import jobs


def mark_entered(sync_dir) -> float:
    """Record that this racer is calling start_job now; the time it did."""
    now = time.time()
    (Path(sync_dir) / f"entered-{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:6]}").touch()
    return now


def wait_all_entered(sync_dir, n: int, timeout: float = 120.0) -> None:
    """Wait until ``n`` racers have marked their entry; TimeoutError if they do not."""
    deadline = time.monotonic() + timeout
    while len(list(Path(sync_dir).glob("entered-*"))) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {n} racers called start_job within {timeout} s: the starts did not overlap")
        time.sleep(0.005)


def make_start_job_a_racer(sync_dir, n: int) -> dict:
    """In a racer process: ``jobs.start_job`` marks its entry and, when it wins, holds its locks until
    all ``n`` racers have entered. Returns a dict that gets ``entered`` (the time of the call)."""
    real = jobs.start_job
    seen: dict = {}

    def start_job(*args, before_spawn=None, **kwargs):
        def hold():
            wait_all_entered(sync_dir, n)
            if before_spawn is not None:
                before_spawn()

        seen["entered"] = mark_entered(sync_dir)
        return real(*args, before_spawn=hold, **kwargs)

    jobs.start_job = start_job
    return seen


def assert_overlapped(entered: list[float], left: list[float]) -> None:
    """Every racer entered start_job before any of them left it."""
    assert len(entered) == len(left) >= 2
    assert max(entered) < min(left), f"the starts did not overlap: entered {entered}, left {left}"
