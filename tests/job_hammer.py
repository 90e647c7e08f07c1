"""Random start / read / stop / kill operations on a few job folders sharing one GPU claim, for the
job-state property test (``tests/test_job_states.py``) and the chaos suite. Run in threads or as
``python tests/job_hammer.py SEED OPS ROOT`` in other processes (prints one JSON line).

Each fake training step holds an exclusive ``flock`` on ``ROOT/gpu`` for its whole life: a step
that cannot get it within ``OVERLAP_S`` is a second live training on the GPU set and writes a
violation file. The kernel drops the lock when the step dies, kill -9 included.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import jobs  # noqa: E402
from core.jobs import JobBusy, Step  # noqa: E402

OVERLAP_S = 0.5  # a dying step may hold the lock this long after its job was recorded ended
FINAL = ("succeeded", "failed", "stopped")

STEP_CODE = """
import fcntl, os, sys, time
root, hold = sys.argv[1], float(sys.argv[2])
f = open(os.path.join(root, "gpu"), "a")
deadline = time.monotonic() + {overlap}
while True:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
    except OSError:
        if time.monotonic() > deadline:
            open(os.path.join(root, "violation-%d" % os.getpid()), "w").write("two live trainings")
            sys.exit(9)
        time.sleep(0.02)
time.sleep(hold)
""".format(overlap=OVERLAP_S)


def fake_step(root: Path, hold: float) -> Step:
    return Step(name="train", argv=[sys.executable, "-c", STEP_CODE, str(root), f"{hold:.2f}"])


def hammer(seed: int, ops: int, root: Path, dirs: int = 3) -> dict:
    """``ops`` random operations; returns counts and every (job id, final state) seen."""
    rng = random.Random(seed)
    root = Path(root)
    claim = root / "gpus.json"
    seen: dict[str, str] = {}
    conflicts: list[str] = []
    counts = {"start": 0, "started": 0, "busy": 0, "read": 0, "stop": 0, "kill": 0}

    def observe(job) -> None:
        if job is None or not job.id:
            return
        if job.state in FINAL:
            first = seen.setdefault(job.id, job.state)
            if first != job.state:
                conflicts.append(f"{job.id}: {first} then {job.state}")
        elif job.id in seen:
            conflicts.append(f"{job.id}: {seen[job.id]} then {job.state} again")

    for _ in range(ops):
        jd = root / f"job{rng.randrange(dirs)}"
        op = rng.choices(["start", "read", "stop", "kill"], weights=[4, 6, 2, 1])[0]
        counts[op] += 1
        if op == "start":
            try:
                observe(jobs.start_job(jd, [fake_step(root, rng.uniform(0.1, 0.8))], kind="train", exclusive=claim))
                counts["started"] += 1
            except JobBusy:
                counts["busy"] += 1
        elif op == "read":
            observe(jobs.read_job(jd))
        elif op == "stop":
            observe(jobs.request_stop(jd))
        else:
            job = jobs.read_job(jd)
            target = job.supervisor if job is not None and job.active else None
            if target is not None and jobs.is_alive(target):
                os.kill(target.pid, signal.SIGKILL)
        time.sleep(rng.uniform(0, 0.03))
    return {"counts": counts, "seen": seen, "conflicts": conflicts}


if __name__ == "__main__":
    print(json.dumps(hammer(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))))
