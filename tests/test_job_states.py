"""Job state that cannot contradict itself: hammered start / read / stop / kill -9 from threads and
processes (seeded), then checked: never two live trainings on the GPU set, every job ends in exactly
one final state, timestamps in order. Plus the race of issue 10: a reader polling while Start is
pressed twice."""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from core import jobs
from core.jobs import JobBusy, Step
from tests.conftest import REPO
from tests.job_hammer import FINAL, fake_step, hammer

SEED = int(os.environ.get("JOB_HAMMER_SEED", "20261201"))


def check_final(root, dirs=3):
    """Every job folder ends in one final state with ordered timestamps; returns the jobs."""
    ended = []
    for i in range(dirs):
        jd = root / f"job{i}"
        if not (jd / jobs.JOB_FILE).exists():
            continue
        job = jobs.wait_job(jd, timeout=60)
        assert job.state in FINAL, (jd, job.state)
        assert job.started_at is None or job.created_at <= job.started_at + 0.01
        assert job.ended_at is not None and (job.started_at or job.created_at) <= job.ended_at
        for a in job.history:
            assert a["state"] in FINAL, a
            assert a["started_at"] is None or a["ended_at"] >= a["started_at"]
        assert [a["attempt"] for a in job.history] == list(range(1, job.attempt))
        ended.append(job)
    return ended


def test_hammered_jobs_never_contradict_themselves(tmp_path, report_figure):
    results = []
    threads = [threading.Thread(target=lambda s=s: results.append(hammer(SEED + s, 60, tmp_path)))
               for s in range(3)]
    procs = [subprocess.Popen([sys.executable, "tests/job_hammer.py", str(SEED + 100 + s), "60", str(tmp_path)],
                              stdout=subprocess.PIPE, text=True, cwd=str(REPO)) for s in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(300)
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    ended = check_final(tmp_path)
    violations = sorted(p.name for p in tmp_path.glob("violation-*"))
    conflicts = [c for r in results for c in r["conflicts"]]
    # the final state each process saw for a job id is the one on disk
    final_by_id = {j.id: j.state for j in ended} | {a.get("id"): a["state"] for j in ended for a in j.history}
    for r in results:
        for job_id, state in r["seen"].items():
            if job_id in final_by_id:
                assert final_by_id[job_id] == state, (job_id, state)
    ops = sum(sum(v for k, v in r["counts"].items() if k in ("start", "read", "stop", "kill")) for r in results)
    started = sum(r["counts"]["started"] for r in results)
    report_figure(f"job hammer (seed {SEED}): {ops} interleaved operations from 3 threads + 2 processes, "
                  f"{started} jobs started, {len(violations)} GPU overlaps, {len(conflicts)} contradictory states")
    assert started >= 3
    assert violations == [] and conflicts == []


def test_a_reader_polling_while_start_is_pressed_twice_starts_one_job(tmp_path):
    """Issue 10, defect 1: a page render between start_job's write and the supervisor's
    registration marked the job failed and let a second Start through."""
    claim = tmp_path / "gpus.json"
    stop = threading.Event()
    seen = []

    def poll():
        while not stop.is_set():
            for i in range(2):
                j = jobs.read_job(tmp_path / f"job{i}")
                if j is not None:
                    seen.append((i, j.id, j.state))
            time.sleep(0.005)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        outcomes = []
        for i in range(2):
            try:
                jobs.start_job(tmp_path / f"job{i}", [fake_step(tmp_path, 3.0)], kind="train", exclusive=claim)
                outcomes.append("started")
            except JobBusy:
                outcomes.append("busy")
            time.sleep(0.3)
    finally:
        stop.set()
        poller.join()
    assert outcomes == ["started", "busy"]
    assert not any(state == "failed" for i, _, state in seen if i == 0), "a starting job was read as failed"
    job = jobs.wait_job(tmp_path / "job0", timeout=30)
    assert job.state == "succeeded" and job.ended_at >= job.started_at >= job.created_at
    assert not list(tmp_path.glob("violation-*"))


def test_a_supervisor_never_resurrects_a_job_a_reader_ended(tmp_path):
    jd = tmp_path / "j"
    job = jobs.start_job(jd, [Step(name="s", argv=[sys.executable, "-c", "print(1)"])], kind="t")
    jobs.wait_job(jd, timeout=30)

    def end(j):
        j.state, j.reason = "failed", "ended by a reader"

    jobs.update_job(jd, end)
    # a late supervisor for the same job id finds it ended and leaves it so
    proc = subprocess.run([sys.executable, "-m", "core.jobs.supervisor", str(jd), job.id], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "not this supervisor's" in proc.stderr
    after = jobs.read_job(jd)
    assert after.state == "failed" and after.reason == "ended by a reader"


@pytest.mark.parametrize("grace", [0.0])
def test_a_queued_job_whose_supervisor_never_registered_fails_after_the_grace(tmp_path, monkeypatch, grace):
    jd = tmp_path / "j"
    jd.mkdir()
    job = jobs.Job(id="x", kind="t", steps=[])
    jobs._save(jd, job)
    assert jobs.read_job(jd).state == "queued"  # within the grace: starting, not failed
    monkeypatch.setattr(jobs, "START_GRACE_S", grace)
    assert jobs.read_job(jd).state == "failed"
