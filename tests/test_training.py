"""The supervisor with real training (the tiny demo model on the CPU, real processes and signals):
kill -9, stop with a checkpoint, resume from the latest and from a chosen checkpoint with one
continuous curve, warm start, racing starts, and torchrun with two processes."""
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from core import jobs
from core.train import runs
from core.demo import DEMO_TEMPLATE, demo_hyperparams
from core.fsutil import atomic_write_json
from core.results.metrics import ScalarsReader
from core.project import ProjectStore
from tests.waiting import wait_for

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLL_S = 2.0  # the Train page's polling interval


@pytest.fixture
def project(tmp_path, demo_workspace):
    """A fresh workspace and project on the session's demo model and data."""
    demo = ProjectStore(demo_workspace).load("demo")
    return ProjectStore(tmp_path / "ws").create(
        "demo", method="lora", model_path=demo.model_path, dataset_path=demo.dataset_path,
        prompt_template=DEMO_TEMPLATE, evaluation_inputs=["Who are you?"], hyperparams=demo_hyperparams())


def at_iteration(run, n):
    def check():
        job = run.job()
        assert job.active, f"the run ended early: {job.reason}\n{run.log_path.read_text()[-3000:]}"
        return (run.progress().get("iter") or 0) >= n
    return wait_for(check, 180)


def stopped_at(run) -> list[int]:
    return [int(n) for n in re.findall(r"stopping after iteration (\d+) as requested", run.log_path.read_text())]


def curve(run):
    reader = ScalarsReader(run.work_dir)
    reader.poll()
    return reader


def test_kill_9_of_the_training_process_shows_failed_at_the_next_poll(project):
    run, _ = runs.start_new_run(project, "cpu", gpu_count=0)
    at_iteration(run, 3)
    os.kill(run.job().child.pid, signal.SIGKILL)
    job = wait_for(lambda: (j := run.job()).state == "failed" and j, timeout=POLL_S)  # by the next poll
    assert "SIGKILL" in job.reason
    assert runs.active_training(project) is None  # the GPU set is free again


def test_kill_9_of_everything_shows_failed_at_the_next_poll(project):
    """The OOM killer or `kill -9` on the supervisor and the trainer: nothing is left to record
    the end, and the state is still right at the next read."""
    run, _ = runs.start_new_run(project, "cpu", gpu_count=0)
    at_iteration(run, 3)
    job = run.job()
    os.killpg(job.child.pid, signal.SIGKILL)
    os.kill(job.supervisor.pid, signal.SIGKILL)
    job = wait_for(lambda: (j := run.job()).state == "failed" and j, timeout=POLL_S)  # by the next poll
    assert "supervisor" in job.reason


def test_stop_saves_the_current_iteration_and_resumes_continue_one_curve(project):
    from tests.apptests import open_page

    run, _ = runs.start_new_run(project, "cpu", gpu_count=0)
    at_iteration(run, 25)
    jobs.request_stop(run.dir)
    job = jobs.wait_job(run.dir, timeout=120)
    assert job.state == "stopped" and job.exit_code == 0 and job.escalation is None
    (n,) = stopped_at(run)
    assert n >= 25 and run.latest_checkpoint() == run.work_dir / f"iter_{n}.pth"
    assert run.progress()["phase"] == "stopped" and run.progress()["iter"] == n
    assert curve(run).last_iter == n  # nothing trained after the checkpoint

    # Resume from the latest checkpoint, through the Train page as a user does
    at = open_page(project.workspace, "pages/train.py")
    chooser = at.selectbox(key="resume_from")
    assert chooser.value == run.work_dir / f"iter_{n}.pth" and "latest" in chooser.format_func(chooser.value)
    at.button(key="resume").click().run()
    assert not at.exception and not at.error
    at_iteration(run, n + 25)
    jobs.request_stop(run.dir)
    assert jobs.wait_job(run.dir, timeout=120).state == "stopped"
    m = stopped_at(run)[-1]

    # Resume again, from a chosen older checkpoint: the stretch after it is trained again
    older = max(it for it, _ in run.complete_checkpoints() if it < m)
    runs.start_training(project, run, resume_from=run.work_dir / f"iter_{older}.pth")
    job = jobs.wait_job(run.dir, timeout=300)
    assert job.state == "succeeded", run.log_path.read_text()[-3000:]
    assert [a["state"] for a in job.history] == ["stopped", "stopped"]

    reader = curve(run)
    xs, loss = reader.series("loss")
    total = run.progress()["max_iters"]
    assert xs == list(range(1, total + 1)), "one point per iteration: no gap, no duplicate"
    assert reader.resumes() == [n + 1, older + 1]
    assert loss[n] < 0.5 * loss[0], "the resumed run went on from the trained weights"
    summary = runs.summarize(run)
    assert summary.attempts == 3 and summary.last_iter == total and summary.final_loss == loss[-1]


def test_warm_start_begins_from_the_checkpoint_weights_with_a_new_learning_rate(trained_workspace, tmp_path):
    shutil.copytree(trained_workspace, tmp_path / "ws", symlinks=True)  # the shared workspace stays as it is
    store = ProjectStore(tmp_path / "ws")
    project = store.load("demo")
    source = next(r for r in runs.list_runs(project) if r.job().state == "succeeded")
    last_iter, ckpt = source.complete_checkpoints()[-1]
    project = store.save(project.model_copy(update={
        "hyperparams": project.hyperparams.model_copy(update={"lr": 1e-4})}))
    run, _ = runs.start_new_run(project, "cpu", warm_start=ckpt, gpu_count=0)
    try:
        at_iteration(run, 3)
        jobs.request_stop(run.dir)
        assert jobs.wait_job(run.dir, timeout=120).state == "stopped"
        first_source = curve(source).series("loss")[1][0]
        first_warm = curve(run).series("loss")[1][0]
        assert first_warm < 0.2 * first_source, (first_warm, first_source)
        assert curve(run).series("lr")[1][0] <= 1e-4
        assert f"Load checkpoint from {ckpt}" in run.log_path.read_text()
    finally:
        jobs.request_stop(run.dir)
        jobs.wait_job(run.dir, timeout=120)


RACER = r"""
import json, sys, time
sys.path.insert(0, {repo!r})
from core import jobs
from core.train import runs
from core.project import ProjectStore
from tests.racing import make_start_job_a_racer
project = ProjectStore({ws!r}).load("demo")
seen = make_start_job_a_racer({sync!r}, 2)
try:
    run, _ = runs.start_new_run(project, "cpu", gpu_count=0)
    result = "STARTED"
except jobs.JobBusy:
    result = "BUSY"
print(json.dumps({{"result": result, "entered": seen["entered"], "left": time.time()}}))
"""


def test_two_tabs_pressing_start_together_start_exactly_one_run(project, tmp_path):
    import json

    from tests.racing import assert_overlapped

    sync = tmp_path / "sync"
    sync.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", RACER.format(repo=REPO, ws=project.workspace, sync=str(sync))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    results = [json.loads(o.strip().splitlines()[-1]) if o.strip() else {"result": err[-2000:]} for o, err in outs]
    assert sorted(r["result"] for r in results) == ["BUSY", "STARTED"], outs
    assert_overlapped([r["entered"] for r in results], [r["left"] for r in results])
    (run,) = runs.list_runs(project)  # the loser left no folder behind
    assert run.job().active
    jobs.request_stop(run.dir)
    assert jobs.wait_job(run.dir, timeout=120).state == "stopped"


def test_torchrun_with_two_processes_stops_every_rank_at_the_same_iteration_and_resumes(project):
    run = runs.new_run(project, "cpu", gpu_count=0)
    info = run.info
    info["launch"]["nproc_per_node"] = 2  # two CPU ranks over gloo: the multi-GPU path without a GPU
    atomic_write_json(run.dir / "run.json", info)
    job = runs.start_training(project, run)
    assert "torch.distributed.run" in job.steps[0].argv and "--nproc_per_node=2" in job.steps[0].argv
    at_iteration(run, 10)
    assert run.progress()["world_size"] == 2
    jobs.request_stop(run.dir)
    job = jobs.wait_job(run.dir, timeout=120)
    assert job.state == "stopped" and job.exit_code == 0 and job.escalation is None
    (n,) = stopped_at(run)  # rank 0 logs it; every rank stopped there, or the save would hang
    assert run.latest_checkpoint() == run.work_dir / f"iter_{n}.pth"
    runs.start_training(project, run, resume_from=run.latest_checkpoint())
    job = jobs.wait_job(run.dir, timeout=300)
    assert job.state == "succeeded", run.log_path.read_text()[-3000:]
    xs, _ = curve(run).series("loss")
    assert xs == list(range(1, run.progress()["max_iters"] + 1))
