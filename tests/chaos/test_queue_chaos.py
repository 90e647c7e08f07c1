"""The run queue under a real fault (slow): kill -9 of the queue runner (its supervisor and its process)
while the first of four queued runs trains the tiny demo model for real; no page is open afterwards.
The queue must go on by itself: the run in progress finishes, its supervisor starts a new runner, the
entry whose dataset changed and the one whose project was deleted are refused with their reason, the
last one trains."""
import os
import shutil
import signal

import pytest

from core import jobs
from core.project import ProjectStore
from core.train import queue, runs
from tests.chaos.test_chaos import make_project, wait_for

pytestmark = pytest.mark.slow


def entry(ws, entry_id):
    return next(e for e in queue.read_queue(ws).entries if e.id == entry_id)


def test_kill_9_of_the_queue_runner_mid_queue_the_queue_goes_on_without_a_page(tmp_path, demo_workspace,
                                                                                report_figure):
    ws = tmp_path / "ws"
    a = make_project(ws, demo_workspace, max_epochs=1)
    store = ProjectStore(ws)
    own_data = ws / "changed.jsonl"
    shutil.copy(a.dataset_path, own_data)
    changed = store.create("changed", method="lora", model_path=a.model_path, dataset_path=str(own_data),
                           prompt_template=a.prompt_template, evaluation_inputs=[], hyperparams=a.hyperparams)
    gone = store.create("gone", method="lora", model_path=a.model_path, dataset_path=a.dataset_path,
                        prompt_template=a.prompt_template, evaluation_inputs=[], hyperparams=a.hyperparams)
    queue.set_paused(ws, True)
    first = queue.add(a, "cpu")[0]
    data_changed = queue.add(changed, "cpu")[0]
    project_gone = queue.add(gone, "cpu")[0]
    last = queue.add(a, "cpu", [{"lr": 1e-3}])[0]
    queue.set_paused(ws, False)  # the runner starts

    wait_for(lambda: entry(ws, first.id).state == "running", 120)
    run1 = runs.Run(a.runs_dir / entry(ws, first.id).run)
    wait_for(lambda: (run1.progress().get("iter") or 0) >= 3, 300)
    killed = queue.runner_job(ws)
    os.kill(killed.supervisor.pid, signal.SIGKILL)
    jobs.signal_group(killed.child, signal.SIGKILL)
    wait_for(lambda: not jobs.is_alive(killed.child) and not jobs.is_alive(killed.supervisor), 10)
    with open(own_data, "a", encoding="utf-8") as f:  # both happen while the first run trains
        f.write("\n")
    shutil.rmtree(gone.dir)

    # from here on nothing but the jobs' own processes act: the test only reads queue.json
    wait_for(lambda: not queue.read_queue(ws).waiting(), 900, every=0.5)
    q = {e.id: e for e in queue.read_queue(ws).entries}
    job1 = run1.job()
    run4 = runs.Run(a.runs_dir / q[last.id].run)
    job4 = run4.job()
    runner = queue.runner_job(ws)
    gap = job4.started_at - job1.ended_at
    why = {queue.E_DATA_CHANGED: "dataset changed", queue.E_PROJECT_GONE: "project deleted"}
    report_figure(
        f"queue runner kill -9 during run 1 of 4 (no page open after): run 1 {q[first.id].outcome}, "
        f"2 refused ({why.get(q[data_changed.id].error['text'])}), 3 refused ({why.get(q[project_gone.id].error['text'])}), "
        f"run 4 {q[last.id].outcome}; the next run started {gap:.1f}s after run 1 ended (a new runner, "
        f"started by run 1's supervisor)")
    assert (q[first.id].state, q[first.id].outcome) == ("done", "succeeded"), job1.reason
    assert q[data_changed.id].state == "refused" and q[data_changed.id].error["text"] == queue.E_DATA_CHANGED
    assert q[project_gone.id].state == "refused" and q[project_gone.id].error["text"] == queue.E_PROJECT_GONE
    assert (q[last.id].state, q[last.id].outcome) == ("done", "succeeded"), job4.reason
    assert run4.spec["hyperparams"]["lr"] == 1e-3 and run4.info["queue"]["entry"] == last.id
    assert runner.id != killed.id and runner.attempt == 2 and runner.history[0]["state"] == "failed"
    assert job4.started_at >= job1.ended_at  # one run at a time on the GPU set
    assert [r.id for r in runs.list_runs(a)] == sorted([run1.id, run4.id], reverse=True)  # no stray run folder
