import os
import signal
import sys
import time

import pytest

from core import jobs
from core.jobs import Job, JobBusy, Step, read_job, request_stop, start_job, wait_job
from tests.waiting import wait_for


def py_step(code: str, name="step", **kw) -> Step:
    return Step(name=name, argv=[sys.executable, "-c", code], **kw)


def test_success_records_exit_code_times_and_log(tmp_path):
    job = start_job(tmp_path / "j", [py_step("print('hello'); print('world')")], kind="test", title="t")
    assert job.supervisor is not None and job.state == "queued"
    job = wait_job(tmp_path / "j", timeout=30)
    assert job.state == "succeeded" and job.exit_code == 0
    assert job.started_at and job.ended_at >= job.started_at
    assert "hello\nworld" in (tmp_path / "j" / jobs.LOG_FILE).read_text()


def test_steps_run_in_order_and_stop_at_the_first_failure(tmp_path):
    steps = [py_step("print('one')", "one"), py_step("import sys; sys.exit(3)", "two"), py_step("print('three')", "three")]
    start_job(tmp_path / "j", steps, kind="test")
    job = wait_job(tmp_path / "j", timeout=30)
    assert job.state == "failed" and job.exit_code == 3 and job.current_step == 1
    assert "'two' failed: exit code 3" in job.reason
    log = (tmp_path / "j" / jobs.LOG_FILE).read_text()
    assert "one" in log and "three" not in log


def test_killed_step_shows_failed(tmp_path):
    start_job(tmp_path / "j", [py_step("import time; time.sleep(60)")], kind="test")
    running = wait_for(lambda: (j := read_job(tmp_path / "j")) and j.child and j)
    os.kill(running.child.pid, signal.SIGKILL)
    job = wait_job(tmp_path / "j", timeout=10)
    assert job.state == "failed" and "SIGKILL" in job.reason


def test_killed_supervisor_shows_failed_at_the_next_read_and_its_step_is_ended(tmp_path):
    start_job(tmp_path / "j", [py_step("import time; time.sleep(60)")], kind="test")
    running = wait_for(lambda: (j := read_job(tmp_path / "j")) and j.child and j)
    os.kill(running.supervisor.pid, signal.SIGKILL)
    job = wait_for(lambda: (j := read_job(tmp_path / "j")) and not j.active and j, timeout=5)
    assert job.state == "failed" and "supervisor" in job.reason
    wait_for(lambda: not jobs.is_alive(running.child), timeout=5)


def test_stop_terminates_a_step_without_graceful_stop(tmp_path):
    start_job(tmp_path / "j", [py_step("import time; time.sleep(60)")], kind="test")
    wait_for(lambda: (j := read_job(tmp_path / "j")) and j.child)
    t0 = time.monotonic()
    request_stop(tmp_path / "j")
    job = wait_job(tmp_path / "j", timeout=15)
    assert job.state == "stopped" and time.monotonic() - t0 < 5
    assert job.stop_requested_at is not None


def test_graceful_stop_lets_the_step_finish_by_itself(tmp_path):
    code = ("import os, time\n"
            "while not os.path.exists('stop.request'): time.sleep(0.05)\n"
            "print('saved and exiting'); raise SystemExit(0)")
    start_job(tmp_path / "j", [py_step(code, cwd=str(tmp_path / "j"), graceful_stop_s=30)], kind="test")
    wait_for(lambda: (j := read_job(tmp_path / "j")) and j.child)
    request_stop(tmp_path / "j")
    job = wait_job(tmp_path / "j", timeout=15)
    assert job.state == "stopped" and job.exit_code == 0 and job.escalation is None
    assert "saved and exiting" in (tmp_path / "j" / jobs.LOG_FILE).read_text()


def test_graceful_stop_escalates_to_signals_when_the_step_ignores_it(tmp_path, monkeypatch):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
    start_job(tmp_path / "j", [py_step(code, graceful_stop_s=0.5)], kind="test")
    wait_for(lambda: (j := read_job(tmp_path / "j")) and j.child)
    request_stop(tmp_path / "j")
    job = wait_job(tmp_path / "j", timeout=30)
    assert job.state == "stopped" and "SIGKILL" in (job.escalation or "")


def test_exclusive_claim_starts_exactly_one_job(tmp_path):
    claim = tmp_path / "gpus.json"
    start_job(tmp_path / "a", [py_step("import time; time.sleep(30)")], kind="train", exclusive=claim)
    with pytest.raises(JobBusy):
        start_job(tmp_path / "b", [py_step("print(1)")], kind="train", exclusive=claim)
    assert not (tmp_path / "b" / jobs.JOB_FILE).exists()
    request_stop(tmp_path / "a")
    wait_job(tmp_path / "a", timeout=15)
    start_job(tmp_path / "b", [py_step("print(1)")], kind="train", exclusive=claim)
    assert wait_job(tmp_path / "b", timeout=30).state == "succeeded"


def test_restart_in_the_same_dir_appends_the_log_and_counts_attempts(tmp_path):
    start_job(tmp_path / "j", [py_step("print('first')")], kind="t")
    wait_job(tmp_path / "j", timeout=30)
    start_job(tmp_path / "j", [py_step("print('second')")], kind="t")
    job = wait_job(tmp_path / "j", timeout=30)
    assert job.attempt == 2
    log = (tmp_path / "j" / jobs.LOG_FILE).read_text()
    assert log.index("first") < log.index("second")


def test_describe_exit():
    assert jobs.describe_exit(0) == "exit code 0"
    assert jobs.describe_exit(-9) == "killed by SIGKILL"


RACER = r"""
import json, sys, time
sys.path.insert(0, {repo!r})
from core.jobs import JobBusy, Step, start_job
from tests.racing import mark_entered, wait_all_entered
entered = mark_entered({sync!r})
try:
    start_job({job_dir!r}, [Step(name="s", argv=[sys.executable, "-c", "import time; time.sleep(30)"])],
              kind="train", exclusive={claim!r}, before_spawn=lambda: wait_all_entered({sync!r}, {n!r}))
    result = "STARTED"
except JobBusy:
    result = "BUSY"
print(json.dumps({{"result": result, "entered": entered, "left": time.time()}}))
"""


def test_concurrent_starts_from_several_processes_start_exactly_one_job(tmp_path):
    import json
    import subprocess

    from tests.conftest import REPO
    from tests.racing import assert_overlapped

    claim = tmp_path / "gpus.json"
    sync = tmp_path / "sync"
    sync.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", RACER.format(repo=str(REPO), sync=str(sync), n=4, claim=str(claim),
                                                                  job_dir=str(tmp_path / f"j{i}"))],
                              stdout=subprocess.PIPE, text=True) for i in range(4)]
    outs = [json.loads(p.communicate(timeout=180)[0].strip().splitlines()[-1]) for p in procs]
    assert sorted(o["result"] for o in outs) == ["BUSY", "BUSY", "BUSY", "STARTED"], outs
    assert_overlapped([o["entered"] for o in outs], [o["left"] for o in outs])
    started = [tmp_path / f"j{i}" for i, out in enumerate(outs) if out["result"] == "STARTED"]
    assert [d for d in tmp_path.glob("j*") if (d / jobs.JOB_FILE).exists()] == started
    request_stop(started[0])
    assert wait_job(started[0], timeout=15).state == "stopped"


def test_concurrent_starts_from_threads_start_exactly_one_job(tmp_path):
    import threading

    from tests.racing import assert_overlapped, mark_entered, wait_all_entered

    claim = tmp_path / "gpus.json"
    sync = tmp_path / "sync"
    sync.mkdir()
    barrier = threading.Barrier(3, timeout=60)  # a racer that never comes breaks it: no result, the test fails
    results, entered, left = {}, {}, {}

    def racer(i):
        barrier.wait()
        entered[i] = mark_entered(sync)
        try:
            start_job(tmp_path / f"j{i}", [py_step("import time; time.sleep(30)")], kind="train", exclusive=claim,
                      before_spawn=lambda: wait_all_entered(sync, 3))
            results[i] = "started"
        except JobBusy:
            results[i] = "busy"
        left[i] = time.time()

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(150)
    assert sorted(results.values()) == ["busy", "busy", "started"]
    assert_overlapped(list(entered.values()), list(left.values()))
    winner = next(i for i, r in results.items() if r == "started")
    request_stop(tmp_path / f"j{winner}")
    wait_job(tmp_path / f"j{winner}", timeout=15)


def test_stop_before_the_ready_file_exists_terminates_at_once(tmp_path):
    """A training step still loading its model has nothing to save: no graceful wait."""
    ready = tmp_path / "ready"
    code = "import time; time.sleep(60)"
    start_job(tmp_path / "j", [py_step(code, graceful_stop_s=60, graceful_after_file=str(ready))], kind="test")
    wait_for(lambda: (j := read_job(tmp_path / "j")) and j.child)
    t0 = time.monotonic()
    request_stop(tmp_path / "j")
    job = wait_job(tmp_path / "j", timeout=20)
    assert job.state == "stopped" and time.monotonic() - t0 < 5 and job.escalation is None


def test_stop_after_the_ready_file_exists_is_graceful(tmp_path):
    code = ("import os, time\n"
            "open('ready', 'w').close()\n"
            "while not os.path.exists('stop.request'): time.sleep(0.05)\n"
            "time.sleep(1); print('checkpoint saved'); raise SystemExit(0)")
    jd = tmp_path / "j"
    start_job(jd, [py_step(code, cwd=str(jd), graceful_stop_s=30, graceful_after_file=str(jd / "ready"))], kind="test")
    wait_for(lambda: (jd / "ready").exists())
    request_stop(jd)
    job = wait_job(jd, timeout=20)
    assert job.state == "stopped" and job.exit_code == 0 and job.escalation is None
    assert "checkpoint saved" in (jd / jobs.LOG_FILE).read_text()


def test_sigterm_to_the_supervisor_is_a_graceful_stop(tmp_path):
    """A shutdown that signals the supervisor lets training save, as the Stop button does."""
    code = ("import os, time\n"
            "while not os.path.exists('stop.request'): time.sleep(0.05)\n"
            "print('saved on shutdown'); raise SystemExit(0)")
    jd = tmp_path / "j"
    start_job(jd, [py_step(code, cwd=str(jd), graceful_stop_s=30)], kind="test")
    running = wait_for(lambda: (j := read_job(jd)) and j.child and j)
    os.kill(running.supervisor.pid, signal.SIGTERM)
    job = wait_job(jd, timeout=20)
    assert job.state == "stopped" and "saved on shutdown" in (jd / jobs.LOG_FILE).read_text()


def test_attempts_are_kept_in_the_history(tmp_path):
    start_job(tmp_path / "j", [py_step("raise SystemExit(2)")], kind="t", meta={"n": 1})
    wait_job(tmp_path / "j", timeout=30)
    start_job(tmp_path / "j", [py_step("print('ok')")], kind="t", meta={"n": 2})
    job = wait_job(tmp_path / "j", timeout=30)
    assert job.state == "succeeded" and job.attempt == 2
    assert [(a["attempt"], a["state"], a["meta"]["n"]) for a in job.history] == [(1, "failed", 1)]
    assert job.history[0]["duration_s"] > 0


def test_a_step_stops_gracefully_only_once_its_ready_file_exists(tmp_path):
    ready = tmp_path / "progress.json"
    step = Step(name="train", argv=["x"], graceful_stop_s=60, graceful_after_file=str(ready))
    job = Job(id="j", kind="train", steps=[step])
    assert not step.stops_gracefully() and not job.stops_gracefully()  # the model is still loading
    ready.write_text("{}")
    assert step.stops_gracefully() and job.stops_gracefully()
    assert not Step(name="convert", argv=["x"]).stops_gracefully()  # other steps are terminated
    assert Step(name="train", argv=["x"], graceful_stop_s=60).stops_gracefully()
