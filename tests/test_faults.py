"""Faults handled, cheaply (no training): damaged state files, a full disk, a dead supervisor, a
failed conversion's partial output. The real thing (kill -9, tmpfs, a server restart) is tests/chaos/."""
import errno
import json
import os
import signal
import sys

import pytest

from core import jobs
from core.fsutil import DiskFull, Unreadable, read_state
from core.jobs import JobBusy, Step
from core.project import ProjectDamaged, ProjectStore
from tests.test_jobs import py_step, wait_for


@pytest.mark.parametrize("content, reason", [("", "empty"), ('{"id": "x", "kind"', "not valid JSON"),
                                             ('{"id": 1}', "invalid content")])
def test_read_state_says_which_file_and_why(tmp_path, content, reason):
    path = tmp_path / "job.json"
    path.write_text(content)
    got = read_state(path, jobs.Job)
    assert isinstance(got, Unreadable) and got.path == path and reason in got.reason
    assert read_state(tmp_path / "missing.json") is None


def test_a_damaged_job_reads_as_damaged_refuses_a_start_and_still_stops(tmp_path):
    jd = tmp_path / "j"
    code = ("import os, time, json\n"
            "while not os.path.exists('stop.request'): time.sleep(0.05)\n"
            "json.dump({'phase': 'stopped'}, open('progress.json', 'w')); print('saved')")
    jobs.start_job(jd, [py_step(code, cwd=str(jd), graceful_stop_s=30, outcome_file=str(jd / "progress.json"))],
                   kind="train")
    wait_for(lambda: (j := jobs.read_job(jd)) and j.child)
    (jd / jobs.JOB_FILE).write_text('{"state": "runn')  # truncated mid-run
    job = jobs.read_job(jd)
    assert job.state == "damaged" and "job.json" in job.reason and not job.active
    with pytest.raises(JobBusy):
        jobs.start_job(jd, [py_step("print(1)")], kind="train")
    rebuilt = jobs.rebuild_job(jd, kind="train", outcome_file=jd / "progress.json")
    assert rebuilt.state == "running" and rebuilt.supervisor is not None  # found from the process
    (jd / jobs.JOB_FILE).write_text("garbage")
    jobs.request_stop(jd)  # works without reading job.json
    # the supervisor records the end from its own copy: the damaged file is replaced
    job = wait_for(lambda: (j := jobs.read_job(jd)) and j.state not in ("damaged", "queued", "running") and j, 30)
    assert job.state == "stopped" and "saved" in (jd / jobs.LOG_FILE).read_text()


def test_rebuild_of_a_finished_run_reads_its_outcome(tmp_path):
    jd = tmp_path / "j"
    jd.mkdir()
    (jd / jobs.JOB_FILE).write_text("{")
    (jd / "progress.json").write_text(json.dumps({"phase": "finished", "iter": 10, "max_iters": 10}))
    job = jobs.rebuild_job(jd, kind="train", outcome_file=jd / "progress.json")
    assert job.state == "succeeded" and (jd / "job.json.damaged").read_text() == "{"
    assert jobs.read_job(jd).state == "succeeded"


def test_a_damaged_project_file_is_restored_from_its_last_good_copy(tmp_path):
    store = ProjectStore(tmp_path)
    project = store.create("p", method="lora")
    store.save(project.model_copy(update={"system_prompt": "kept"}))
    (tmp_path / "projects" / "p" / "project.json").write_text('{"name": "p", "work')
    with pytest.raises(ProjectDamaged) as e:
        store.load("p")
    assert e.value.restorable and "project.json" in str(e.value.problem)
    assert store.restore("p").system_prompt == "kept"
    assert store.load("p").system_prompt == "kept"


def test_a_damaged_run_file_is_named_and_the_run_still_lists(demo_workspace):
    from core.train import runs

    project = ProjectStore(demo_workspace).load("demo")
    run = runs.new_run(project, "cpu")
    try:
        (run.dir / "run.json").write_text("[1, 2")
        assert run.info == {} and "run.json" in run.damage()
        assert runs.summarize(run).state == "new"
    finally:
        import shutil

        shutil.rmtree(run.dir)


def test_start_on_a_full_disk_says_so_and_leaves_no_run_folder(demo_workspace, monkeypatch):
    from core.machine import system
    from core.train import runs

    project = ProjectStore(demo_workspace).load("demo")
    before = sorted(p.name for p in project.runs_dir.iterdir())
    monkeypatch.setattr(system, "disk_free", lambda path: 5 * 1024 * 1024)
    with pytest.raises(DiskFull, match=r"disk full: 5 MB free in .*, the run needs about \d+ MB"):
        runs.start_new_run(project, "cpu")
    assert sorted(p.name for p in project.runs_dir.iterdir()) == before


def test_a_write_that_fails_with_enospc_at_start_is_disk_full_and_the_run_folder_goes(demo_workspace, monkeypatch):
    from core.train import runs

    project = ProjectStore(demo_workspace).load("demo")
    before = sorted(p.name for p in project.runs_dir.iterdir())

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jobs, "_spawn_supervisor", full)
    with pytest.raises(DiskFull, match="disk full"):
        runs.start_new_run(project, "cpu")
    assert sorted(p.name for p in project.runs_dir.iterdir()) == before


def test_a_step_that_ran_out_of_space_fails_with_disk_full(tmp_path):
    code = "import sys; print('OSError: [Errno 28] No space left on device'); sys.exit(1)"
    jobs.start_job(tmp_path / "j", [py_step(code)], kind="train", meta={"needs_bytes": 300 * 1024 * 1024})
    job = jobs.wait_job(tmp_path / "j", timeout=30)
    assert job.state == "failed" and job.reason.startswith("disk full: ")
    assert "MB free in" in job.reason and "the run needs about 300 MB" in job.reason


def test_a_reader_that_cannot_write_back_says_so_and_goes_on(tmp_path, monkeypatch):
    jd = tmp_path / "j"
    jd.mkdir()
    job = jobs.Job(id="x", kind="t", steps=[], state="running", supervisor=jobs.ProcInfo(pid=1, create_time=1.0))
    jobs._save(jd, job)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jobs, "_save", full)
    got = jobs.read_job(jd)
    assert got.state == "failed" and "could not be updated" in got.unsaved


def test_a_dead_supervisor_asks_the_step_to_stop_and_a_step_that_saved_is_stopped(tmp_path):
    jd = tmp_path / "j"
    code = ("import os, time, json\n"
            "open('ready', 'w').close()\n"
            "while not os.path.exists('stop.request'): time.sleep(0.05)\n"
            "json.dump({'phase': 'stopped'}, open('progress.json', 'w'))")
    jobs.start_job(jd, [py_step(code, cwd=str(jd), graceful_stop_s=30, graceful_after_file=str(jd / "ready"),
                                outcome_file=str(jd / "progress.json"))], kind="train")
    running = wait_for(lambda: (j := jobs.read_job(jd)) and j.child and (jd / "ready").exists() and j)
    os.kill(running.supervisor.pid, signal.SIGKILL)
    asked = wait_for(lambda: (j := jobs.read_job(jd)) and j.orphaned_at and j, 10)
    assert asked.active and (jd / jobs.STOP_FILE).exists()  # asked, not killed
    job = wait_for(lambda: (j := jobs.read_job(jd)) and not j.active and j, 20)
    assert job.state == "stopped" and "saving" in job.reason


def test_a_step_that_finished_after_its_supervisor_died_is_succeeded(tmp_path):
    jd = tmp_path / "j"
    code = ("import os, time, json\n"
            "while not os.path.exists('go'): time.sleep(0.05)\n"
            "json.dump({'phase': 'finished'}, open('progress.json', 'w'))")
    jobs.start_job(jd, [py_step(code, cwd=str(jd), graceful_stop_s=30, graceful_after_file=str(jd / "never"),
                                outcome_file=str(jd / "progress.json"))], kind="train")
    running = wait_for(lambda: (j := jobs.read_job(jd)) and j.child and j)
    # the supervisor dies and the step finishes before anyone looks
    os.kill(running.supervisor.pid, signal.SIGKILL)
    wait_for(lambda: not jobs.is_alive(running.supervisor), 10)
    jobs._SPAWNED.clear()
    (jd / "go").touch()
    wait_for(lambda: not jobs.is_alive(running.child), 10)
    # read from a process that did not start the job (the child is reaped by init there)
    job = wait_for(lambda: (j := jobs.read_job(jd)) and not j.active and j, 10)
    assert job.state == "succeeded", job.reason


def test_a_failed_conversion_step_removes_its_partial_output(tmp_path):
    out = tmp_path / "runs" / "r" / "exports" / "iter_5"
    code = "import os, sys; os.makedirs(sys.argv[1]); open(os.path.join(sys.argv[1], 'part'), 'w').write('x'); sys.exit(1)"
    step = Step(name="pth_to_hf", argv=[sys.executable, "-c", code, str(out / "hf")],
                cleanup_argv=[sys.executable, "-m", "core.deploy.convert", "clean", str(out / "hf")])
    jobs.start_job(out, [step], kind="convert")
    job = jobs.wait_job(out, timeout=60)
    assert job.state == "failed"
    wait_for(lambda: not (out / "hf").exists(), 30)  # removed right after the end was recorded
    wait_for(lambda: "removed the partial output" in (out / jobs.LOG_FILE).read_text(), 10)
