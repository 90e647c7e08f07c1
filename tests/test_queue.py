"""The run queue (core.train.queue): adding, sweeps, reordering, the runner's moves one by one (the
training step replaced by a short sleep; tests/chaos/test_queue_chaos.py trains for real), refusals
with their reason, the runner as a real process, and adds racing from several processes."""
import json
import shutil
import subprocess
import sys
import time

import pytest

from core import jobs
from core.jobs import Step
from core.project import ProjectStore
from core.train import queue, runs
from tests.conftest import REPO


def make_project(ws, name="p", **hp):
    data = ws / f"{name}.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}]}) + "\n")
    model = ws / "model"
    model.mkdir(exist_ok=True)
    from core.train.hyperparams import Hyperparams

    return ProjectStore(ws).create(name, method="lora", model_path=str(model), dataset_path=str(data),
                                   prompt_template="qwen_chat", hyperparams=Hyperparams(**hp))


@pytest.fixture
def fake_training(monkeypatch):
    """Runs started by the queue in this process sleep briefly instead of training; their end kicks nothing."""
    monkeypatch.setattr(runs, "train_argv", lambda run, resume_from=None: [sys.executable, "-c", "import time; time.sleep(0.3)"])
    monkeypatch.setattr(queue, "kick_argv", lambda ws: [sys.executable, "-c", "pass"])


def drain(ws, limit=200):
    """Call the runner's move until it exits; the moves made."""
    moves = []
    for _ in range(limit):
        move = queue.advance(ws, "cpu", 0)
        moves.append(move)
        if move == "exit":
            return moves
        if move == "wait":
            time.sleep(0.1)
    raise AssertionError(f"the queue did not finish: {moves[-10:]}")


def test_add_keeps_the_settings_and_the_dataset_hash_and_a_sweep_makes_every_combination(workspace):
    p = make_project(workspace, lr=2e-4)
    queue.set_paused(workspace, True)  # nothing starts in this test
    [one] = queue.add(p, "cpu")
    assert one.settings["hyperparams"]["lr"] == 2e-4 and one.sweep is None and one.state == "pending"
    assert one.dataset_sha256 == queue.file_sha256(p.dataset_path)
    grid = {"lr": queue.parse_values("lr", "1e-4, 3e-4"), "max_epochs": queue.parse_values("max_epochs", "1;2;2"),
            "lora_r": []}
    sweep = queue.add(p, "cpu", queue.sweep_values(grid))
    assert [e.values for e in sweep] == [{"lr": 1e-4, "max_epochs": 1}, {"lr": 1e-4, "max_epochs": 2},
                                         {"lr": 3e-4, "max_epochs": 1}, {"lr": 3e-4, "max_epochs": 2}]
    assert len({e.sweep for e in sweep}) == 1 and sweep[3].settings["hyperparams"]["max_epochs"] == 2
    assert sweep[3].label == "lr=0.0003 · max_epochs=2"
    assert [e.id for e in queue.read_queue(workspace).entries] == [one.id] + [e.id for e in sweep]
    assert queue.runner_job(workspace) is None  # paused: no runner


@pytest.mark.parametrize("name, text, error", [
    ("lr", "1e-4, abc", queue.E_BAD_VALUE), ("lr", "2", queue.E_OUT_OF_RANGE), ("max_epochs", "1.5", queue.E_BAD_VALUE),
    ("lora_r", "0, 8", queue.E_OUT_OF_RANGE)])
def test_sweep_values_are_checked_against_the_schema(name, text, error):
    with pytest.raises(queue.QueueError) as e:
        queue.parse_values(name, text)
    assert e.value.text == error


def test_a_sweep_needs_two_values_and_has_a_limit():
    with pytest.raises(queue.QueueError, match="two or more"):
        queue.sweep_values({"lr": [1e-4], "max_epochs": []})
    with pytest.raises(queue.QueueError) as e:
        queue.sweep_values({"lr": [1e-4, 2e-4, 3e-4], "max_epochs": [1, 2, 3], "lora_r": [4, 8, 16]})
    assert e.value.params == {"n": 27, "max": queue.MAX_SWEEP_RUNS}


def test_reorder_and_remove_only_what_waits(workspace):
    p = make_project(workspace)
    queue.set_paused(workspace, True)
    a, b, c = (queue.add(p, "cpu")[0] for _ in range(3))
    queue.move(workspace, c.id, -1)
    assert [e.id for e in queue.read_queue(workspace).entries] == [a.id, c.id, b.id]
    queue.move(workspace, c.id, -5)  # clamped at the front
    queue.move(workspace, a.id, 1)
    assert [e.id for e in queue.read_queue(workspace).entries] == [c.id, b.id, a.id]
    queue._set(workspace, c.id, state="running", run="r")
    with pytest.raises(queue.QueueError, match="has not started"):
        queue.remove(workspace, c.id)
    with pytest.raises(queue.QueueError, match="has not started"):
        queue.move(workspace, c.id, 1)
    queue.move(workspace, a.id, -1)  # among the pending ones only: the running entry keeps its place
    assert [e.id for e in queue.read_queue(workspace).entries] == [c.id, a.id, b.id]
    queue.remove(workspace, b.id)
    with pytest.raises(queue.QueueError, match="no longer exists"):
        queue.remove(workspace, b.id)
    assert [e.id for e in queue.read_queue(workspace).entries] == [c.id, a.id]


def test_the_runner_starts_one_after_another_and_refuses_changed_data_and_deleted_projects(workspace, fake_training):
    p = make_project(workspace, lr=1e-4)
    changed = make_project(workspace, "changed")
    gone = make_project(workspace, "gone")
    queue.set_paused(workspace, True)
    first = queue.add(p, "cpu")[0]
    data_changed = queue.add(changed, "cpu")[0]
    project_gone = queue.add(gone, "cpu")[0]
    sweep = queue.add(p, "cpu", queue.sweep_values({"lr": [2e-4, 3e-4]}))
    with open(changed.dataset_path, "a") as f:
        f.write("\n")
    shutil.rmtree(gone.dir)
    assert drain(workspace)[-1] == "exit"  # paused: nothing starts
    queue._change(workspace, lambda q: setattr(q, "paused", False))

    moves = drain(workspace)
    q = {e.id: e for e in queue.read_queue(workspace).entries}
    assert [q[e.id].state for e in (first, data_changed, project_gone, *sweep)] == [
        "done", "refused", "refused", "done", "done"]
    assert q[data_changed.id].error["text"] == queue.E_DATA_CHANGED
    assert q[project_gone.id].error["text"] == queue.E_PROJECT_GONE
    assert moves.count("moved") == 3 * 2 + 2  # started + ended for each run, one move per refusal
    started = [runs.Run(p.runs_dir / q[e.id].run) for e in (first, *sweep)]
    assert [r.spec["hyperparams"]["lr"] for r in started] == [1e-4, 2e-4, 3e-4]
    assert [r.info["queue"]["entry"] for r in started] == [first.id] + [e.id for e in sweep]
    assert started[1].info["queue"]["sweep"] == sweep[0].sweep
    assert all(r.job().state == "succeeded" for r in started)
    ends = [(r.job().started_at, r.job().ended_at) for r in started]
    assert all(ends[i][1] <= ends[i + 1][0] for i in range(2)), f"runs overlapped: {ends}"


def test_a_busy_gpu_set_holds_the_queue_and_a_half_started_entry_keeps_its_run(workspace, fake_training):
    p = make_project(workspace)
    queue.set_paused(workspace, True)
    entry = queue.add(p, "cpu")[0]
    queue._change(workspace, lambda q: setattr(q, "paused", False))
    other = workspace / "manual"
    jobs.start_job(other, [Step(name="train", argv=[sys.executable, "-c", "import time; time.sleep(30)"])],
                   kind="train", exclusive=runs.gpu_claim_path(p))
    try:
        assert queue.advance(workspace, "cpu", 0) == "wait"
        assert queue.read_queue(workspace).entries[0].state == "pending"
        queue._set(workspace, entry.id, state="starting")  # taken just before the page's run claimed the GPUs
        assert queue.advance(workspace, "cpu", 0) == "wait"
        assert runs.list_runs(p) == []  # no run folder made (and removed) while it waits
    finally:
        jobs.request_stop(other)
        jobs.wait_job(other, timeout=30)
    # a runner that died after creating the entry's run, before recording it: the next one finds that run
    queue._set(workspace, entry.id, state="starting")
    half = runs.new_run(p, "cpu", gpu_count=0, origin={"entry": entry.id, "sweep": None, "values": {}})
    assert drain(workspace)[-1] == "exit"
    [done] = queue.read_queue(workspace).entries
    assert done.state == "done" and done.outcome == "succeeded" and done.run == half.id
    assert [r.id for r in runs.list_runs(p)] == [half.id]


def test_the_runner_process_refuses_and_exits_and_a_kick_with_nothing_waiting_starts_nothing(workspace):
    p = make_project(workspace)
    queue.set_paused(workspace, True)
    queue.add(p, "cpu", [{"lr": 1e-4}, {"lr": 2e-4}])
    shutil.rmtree(p.dir)
    queue.set_paused(workspace, False)  # starts the runner: a real process, as after an app restart
    runner = queue.runner_job(workspace)
    assert runner is not None
    done = jobs.wait_job(queue.runner_dir(workspace), timeout=60)
    assert done.state == "succeeded", (queue.runner_dir(workspace) / jobs.LOG_FILE).read_text()
    assert [(e.state, e.error["text"]) for e in queue.read_queue(workspace).entries] == [
        ("refused", queue.E_PROJECT_GONE)] * 2
    assert queue.read_queue(workspace).runner_exit == done.id
    out = subprocess.run(queue.kick_argv(workspace), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert queue.runner_job(workspace).id == done.id  # nothing waited: no new runner


ADDER = """
import sys, time
from pathlib import Path
from core.project import ProjectStore
from core.train import queue
ws, me, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
p = ProjectStore(ws).load("p")
while not go.exists():
    time.sleep(0.005)
for i in range(8):
    queue.add(p.model_copy(update={"hyperparams": p.hyperparams.model_copy(update={"max_epochs": 1 + i})}), "cpu",
              [{"lora_r": int(me)}])
"""


def test_adds_racing_from_several_processes_all_land_in_order(workspace, tmp_path, report_figure):
    make_project(workspace)
    queue.set_paused(workspace, True)
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", ADDER, str(workspace), str(r), str(go)], cwd=REPO,
                              stderr=subprocess.PIPE, text=True) for r in (1, 2, 3, 4)]
    t0 = time.monotonic()
    go.touch()
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    entries = queue.read_queue(workspace).entries
    report_figure(f"queue racing adds: 4 processes x 8 adds, {len(entries)} entries kept, "
                  f"{time.monotonic() - t0:.2f}s")
    assert len(entries) == 32 and len({e.id for e in entries}) == 32
    for r in (1, 2, 3, 4):  # each process's own adds keep their order
        mine = [e.settings["hyperparams"]["max_epochs"] for e in entries if e.values == {"lora_r": r}]
        assert mine == list(range(1, 9))


def fake_run(project, run_id, sweep, values, records, answers=None):
    """A run folder as a queued sweep leaves it: run.json with its queue origin, scalars.json lines and
    ``answers`` {iteration: answer to "Who are you?"} as XTuner's evaluation hook writes them."""
    d = project.runs_dir / run_id
    vis = d / "work_dir" / "20260101_000000" / "vis_data"
    vis.mkdir(parents=True)
    (d / "config.py").write_text("# config\n")
    (d / "run.json").write_text(json.dumps({"id": run_id, "queue": {"entry": run_id, "sweep": sweep, "values": values},
                                            "spec": {"hyperparams": values, "prompt_template": "qwen_chat",
                                                     "evaluation_inputs": ["Who are you?"]}}))
    (vis / "scalars.json").write_text("".join(json.dumps(r) + "\n" for r in records))
    for it, answer in (answers or {}).items():
        (vis / f"eval_outputs_iter_{it - 1}.txt").write_text(f"Eval output 1:\n{answer}\n\n")
    return runs.Run(d)


def test_a_sweep_is_one_table_with_final_and_best_values(workspace):
    from core.results import sweeps

    from core.results.scoring import ExpectedAnswer

    p = make_project(workspace)
    p = ProjectStore(workspace).save(p.model_copy(update={
        "evaluation_inputs": ["Who are you?"],
        "evaluation_expected": [ExpectedAnswer(text="Ada's assistant\nXTuner Studio", metric="contains")]}))
    fake_run(p, "20260101-000001-lora", "s1", {"lr": 1e-4},
             [{"iter": 1, "loss": 2.0}, {"iter": 2, "loss": 1.5}, {"heldout_loss": 1.9, "step": 2},
              {"iter": 3, "loss": 1.0}, {"heldout_loss": 1.7, "step": 3}, {"iter": 4, "loss": 0.5},
              {"heldout_loss": 1.8, "step": 4}],
             answers={2: "I am Ada's assistant.", 4: "noise"})  # one of two key phrases, then none
    fake_run(p, "20260101-000002-lora", "s1", {"lr": 2e-4}, [{"iter": 1, "loss": 3.0}])
    fake_run(p, "20260101-000003-lora", None, {}, [{"iter": 1, "loss": 3.0}])  # a run of no sweep
    fake_run(p, "20260101-000004-lora", "s2", {"max_epochs": 1}, [{"iter": 1, "loss": 3.0}])
    groups = sweeps.sweeps(runs.list_runs(p))
    assert list(groups) == ["s2", "s1"]
    rows = sweeps.table(groups["s1"], p.evaluation_expected, p.evaluation_inputs)
    assert [(r.run, r.values, r.state, r.final_loss, r.best_heldout, r.best_score) for r in rows] == [
        ("20260101-000001-lora", {"lr": 1e-4}, "new", 0.5, 1.7, 0.5),
        ("20260101-000002-lora", {"lr": 2e-4}, "new", 3.0, None, None)]


def test_an_add_while_the_runner_exits_is_not_lost(workspace):
    """The runner decided to exit (nothing waited) and is still ending when an entry arrives: the start
    request waits for that runner's end and starts another, rather than trusting the one that leaves."""
    p = make_project(workspace)
    queue.set_paused(workspace, True)
    queue.add(p, "cpu")
    leaving = jobs.start_job(queue.runner_dir(workspace),
                             [Step(name="run queue", argv=[sys.executable, "-c", "import time; time.sleep(1.5)"])],
                             kind="queue")
    queue._change(workspace, lambda q: (setattr(q, "runner_exit", leaving.id), setattr(q, "paused", False)))
    shutil.rmtree(p.dir)  # so the runner that comes refuses the entry instead of training
    started = queue.ensure_runner(workspace)
    assert started.id != leaving.id and started.attempt == 2
    assert jobs.wait_job(queue.runner_dir(workspace), timeout=60).state == "succeeded"
    assert [e.state for e in queue.read_queue(workspace).entries] == ["refused"]


KICKER = """
import sys, time
from pathlib import Path
from core.train import queue
ws, go = Path(sys.argv[1]), Path(sys.argv[2])
while not go.exists():
    time.sleep(0.002)
job = queue.ensure_runner(ws)
print(job.id if job else "-")
"""


def test_kicks_racing_from_several_processes_start_one_runner(workspace, tmp_path):
    p = make_project(workspace)
    queue.set_paused(workspace, True)
    queue.add(p, "cpu", [{"lr": 1e-4}, {"lr": 2e-4}])
    shutil.rmtree(p.dir)
    queue._change(workspace, lambda q: setattr(q, "paused", False))
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", KICKER, str(workspace), str(go)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    go.touch()
    outs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in outs]
    runner = jobs.wait_job(queue.runner_dir(workspace), timeout=60)
    assert runner.attempt == 1, "a second runner was started"
    assert {out.strip() for out, _ in outs} <= {runner.id, "-"} and runner.id in {out.strip() for out, _ in outs}
    assert [e.state for e in queue.read_queue(workspace).entries] == ["refused", "refused"]


def test_an_entry_that_cannot_start_is_refused_with_the_reason_and_the_next_one_runs(workspace, fake_training,
                                                                                    monkeypatch):
    from core.fsutil import E_DISK_FULL_NEEDS, DiskFull

    p = make_project(workspace)
    queue.set_paused(workspace, True)
    big, small = queue.add(p, "cpu", [{"lora_r": 512}, {"lora_r": 8}])
    real = runs.check_free_space

    def check_free_space(project):  # the big adapter does not fit on this disk
        if project.hyperparams.lora_r == 512:
            raise DiskFull(project.dir, 10 ** 15)
        real(project)

    monkeypatch.setattr(runs, "check_free_space", check_free_space)
    queue._change(workspace, lambda q: setattr(q, "paused", False))
    drain(workspace)
    big, small = queue.read_queue(workspace).entries
    assert big.state == "refused" and big.error["text"] == E_DISK_FULL_NEEDS and big.error["params"]["needs"] > 0
    assert (small.state, small.outcome) == ("done", "succeeded")
    assert [r.id for r in runs.list_runs(p)] == [small.run]  # the refused one left no run folder
