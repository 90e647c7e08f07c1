"""Faults done for real (slow): kill -9 of the trainer and of its supervisor during a real training
of the tiny demo model, a server SIGKILL and restart, a full disk on a small tmpfs, damaged state
files, concurrent starts. Each test reports what it measured: the time to the right state, the
iterations lost, the bytes left behind."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import jobs
from core.demo import DEMO_TEMPLATE, demo_hyperparams
from core.jobs import Step
from core.project import ProjectStore
from core.train import runs
from tests.conftest import REPO
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


def make_project(ws, demo_workspace, **hp):
    demo = ProjectStore(demo_workspace).load("demo")
    return ProjectStore(ws).create(
        "demo", method="lora", model_path=demo.model_path, dataset_path=demo.dataset_path,
        prompt_template=DEMO_TEMPLATE, evaluation_inputs=[],  # no chat evaluation: only the fault is timed
        hyperparams=demo_hyperparams().model_copy(update={"save_steps": 5, "evaluation_freq": 1000, **hp}))


def at_iteration(run, n):
    def check():
        job = run.job()
        assert job.active, f"the run ended early: {job.reason}\n{run.log_path.read_text()[-3000:]}"
        return (run.progress().get("iter") or 0) >= n
    return wait_for(check, 300)


def partial_bytes(run) -> int:
    """Bytes of incomplete checkpoints and temporary files left in the run folder."""
    total = sum(p.stat().st_size for _, p in run.checkpoints() if p.is_file() and not runs.checkpoint_complete(p))
    return total + sum(p.stat().st_size for p in run.dir.rglob("*.tmp"))


def ended(run, timeout=120):
    return wait_for(lambda: (j := run.job()) and not j.active and j, timeout)


def test_kill_9_of_the_trainer(tmp_path, demo_workspace, report_figure):
    project = make_project(tmp_path / "ws", demo_workspace)
    run, _ = runs.start_new_run(project, "cpu", gpu_count=0)
    at_iteration(run, 7)
    job = run.job()
    it = run.progress()["iter"]
    t0 = time.monotonic()
    os.killpg(job.child.pid, signal.SIGKILL)
    job = ended(run, 30)
    dt = time.monotonic() - t0
    saved = max((i for i, _ in run.complete_checkpoints()), default=0)
    left = partial_bytes(run)
    report_figure(f"chaos kill -9 trainer: failed after {dt:.2f}s, {it - saved} iterations lost "
                  f"(killed at {it}, last checkpoint {saved}), {left} bytes left behind")
    assert job.state == "failed" and "SIGKILL" in job.reason and dt < 10
    assert run.latest_checkpoint() is not None and left == 0


def test_kill_9_of_the_supervisor_the_trainer_saves_and_stops(tmp_path, demo_workspace, report_figure):
    project = make_project(tmp_path / "ws", demo_workspace, save_steps=1000)
    run, _ = runs.start_new_run(project, "cpu", gpu_count=0)
    at_iteration(run, 3)
    job = run.job()
    it = run.progress()["iter"]
    t0 = time.monotonic()
    os.kill(job.supervisor.pid, signal.SIGKILL)
    # nobody reads the job meanwhile (a reader would ask for the stop): the trainer notices by itself
    wait_for(lambda: not jobs.is_alive(job.child), 300)
    job = run.job()
    dt = time.monotonic() - t0
    saved = max((i for i, _ in run.complete_checkpoints()), default=0)
    log = run.log_path.read_text()
    report_figure(f"chaos kill -9 supervisor: {job.state} after {dt:.2f}s, checkpoint at {saved} "
                  f"(killed at {it}: {max(0, it - saved)} iterations lost), {partial_bytes(run)} bytes left behind")
    assert job.state == "stopped", job.reason
    assert saved >= it and "supervisor is gone" in log
    assert partial_bytes(run) == 0


def test_server_sigkill_and_restart_leave_the_run_alone(tmp_path, report_figure):
    from tests.test_browser import spawn_streamlit, wait_healthy
    from core.train.launch import free_port

    ws = tmp_path / "ws"
    project = ProjectStore(ws).create("p", method="lora")
    run_dir = project.runs_dir / "20260101-000000-lora"
    run_dir.mkdir(parents=True)
    (run_dir / "config.py").write_text("# a run\n")
    before = jobs.start_job(run_dir, [Step(name="train", argv=[sys.executable, "-c", "import time; time.sleep(120)"])],
                            kind="train")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = spawn_streamlit(ws, port, tmp_path / "s1.log")
    try:
        assert wait_healthy(url, 90)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
        t0 = time.monotonic()
        server = spawn_streamlit(ws, port, tmp_path / "s2.log")
        assert wait_healthy(url, 90)
        dt = time.monotonic() - t0
        job = jobs.read_job(run_dir)
        report_figure(f"chaos server SIGKILL + restart: healthy again after {dt:.2f}s, the run {job.state} "
                      f"with the same supervisor, 0 iterations lost")
        assert job.state == "running" and job.supervisor == jobs.read_job(run_dir).supervisor
        assert job.id == before.id and jobs.is_alive(job.child)
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        jobs.request_stop(run_dir)
        jobs.wait_job(run_dir, timeout=30)


@pytest.fixture
def small_disk(tmp_path):
    """A 80 MB tmpfs, or a skip saying why it could not be mounted."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=80m", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {(proc.stderr or proc.stdout).strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(path: Path) -> int:
    """Fill the file system of ``path`` with one file until it is full; returns the bytes written."""
    written = 0
    block = bytes(1024 * 1024)
    with open(path, "wb", buffering=0) as f:
        for size in (1024 * 1024, 4096):
            while True:
                try:
                    written += f.write(block[:size])
                except OSError:
                    break
    return written


def test_disk_full_during_training_fails_with_the_reason_and_no_partial_checkpoint(
        small_disk, demo_workspace, report_figure):
    project = make_project(small_disk / "ws", demo_workspace, save_steps=4)
    run, _ = runs.start_new_run(project, "cpu", gpu_count=0)
    at_iteration(run, 5)
    it = run.progress()["iter"]
    t0 = time.monotonic()
    fill(small_disk / "filler")
    job = ended(run, 120)
    dt = time.monotonic() - t0
    saved = max((i for i, _ in run.complete_checkpoints()), default=0)
    wait_for(lambda: partial_bytes(run) == 0, 30)  # the supervisor's cleanup runs after the end is recorded
    left = partial_bytes(run)
    report_figure(f"chaos disk full while training: failed after {dt:.2f}s ({job.reason}); "
                  f"{max(0, it - saved)} iterations lost (full at {it}, last complete checkpoint {saved}), "
                  f"{left} bytes of partial files left behind")
    assert job.state == "failed" and job.reason.startswith("disk full: ") and "MB free in" in job.reason
    latest = run.latest_checkpoint()
    assert latest is None or runs.checkpoint_complete(latest)

    # Start on the still-full disk: refused, with the figures, and no run folder left behind
    before = sorted(p.name for p in project.runs_dir.iterdir())
    t0 = time.monotonic()
    with pytest.raises(OSError, match=r"disk full: \d+ MB free in .*needs about \d+ MB"):
        runs.start_new_run(project, "cpu", gpu_count=0)
    report_figure(f"chaos Start on a full disk: refused in {time.monotonic() - t0:.2f}s, "
                  f"{len(sorted(p.name for p in project.runs_dir.iterdir())) - len(before)} run folders left behind")
    assert sorted(p.name for p in project.runs_dir.iterdir()) == before


def test_damaged_state_files_during_a_run(tmp_path, report_figure):
    from tests.apptests import open_page

    ws = tmp_path / "ws"
    store = ProjectStore(ws)
    project = store.create("p", method="lora")
    run_dir = project.runs_dir / "20260101-000000-lora"
    run_dir.mkdir(parents=True)
    (run_dir / "config.py").write_text("# a run\n")
    (run_dir / "run.json").write_text("{}")
    code = ("import os, time, json\n"
            "while not os.path.exists('stop.request'): time.sleep(0.05)\n"
            "json.dump({'phase': 'stopped'}, open('progress.json', 'w'))")
    jobs.start_job(run_dir, [Step(name="train", argv=[sys.executable, "-c", code], cwd=str(run_dir),
                                  graceful_stop_s=30, outcome_file=str(run_dir / "progress.json"))], kind="train")
    wait_for(lambda: (j := jobs.read_job(run_dir)) and j.child, 300)
    (run_dir / jobs.JOB_FILE).write_text('{"id": "abc", "state": "run')
    (run_dir / "run.json").write_text("")
    at = open_page(ws, "pages/train.py", project="p")  # no traceback
    assert any("state file is damaged" in e.value for e in at.error)
    t0 = time.monotonic()
    at.button(key="stop_damaged").click().run()
    job = wait_for(lambda: (j := jobs.read_job(run_dir)) and j.state == "stopped" and j, 30)
    dt = time.monotonic() - t0
    (ws / "projects" / "p" / "project.json").write_bytes(b"\x00" * 100)
    at = open_page(ws, "pages/home.py", project="p")
    assert any("state file is damaged" in e.value for e in at.error)
    t1 = time.monotonic()
    at.button(key="restore_project").click().run()
    restored = store.load("p")
    report_figure(f"chaos damaged job.json + run.json mid-run: pages show it, Stop → {job.state} in {dt:.2f}s; "
                  f"damaged project.json restored from its good copy in {time.monotonic() - t1:.2f}s; "
                  "0 bytes lost")
    assert restored.name == "p"


def test_concurrent_starts_from_many_processes(tmp_path, report_figure):
    procs = [subprocess.Popen([sys.executable, "tests/job_hammer.py", str(7000 + s), "80", str(tmp_path)],
                              stdout=subprocess.PIPE, text=True, cwd=str(REPO)) for s in range(4)]
    results = [json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in procs]
    from tests.test_job_states import check_final

    check_final(tmp_path)
    ops = sum(sum(r["counts"][k] for k in ("start", "read", "stop", "kill")) for r in results)
    violations = len(list(tmp_path.glob("violation-*")))
    conflicts = sum(len(r["conflicts"]) for r in results)
    report_figure(f"chaos concurrent starts: {ops} interleaved operations from 4 processes, "
                  f"{sum(r['counts']['started'] for r in results)} jobs started, "
                  f"{violations} GPU overlaps, {conflicts} contradictory states")
    assert violations == 0 and conflicts == 0
