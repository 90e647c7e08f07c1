"""Runs without training: config and metadata, warm-start checks, checkpoints, summaries, start races."""
import json
import sys
import zipfile

import pytest

from core import jobs
from core.train import runs
from core.train.configgen import ConfigError, literal_assignments
from core.train.launch import LaunchError, LaunchPlan
from core.project import ProjectStore


@pytest.fixture
def project(workspace, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": []}\n')
    return ProjectStore(workspace).create("p", method="lora", model_path=str(tmp_path / "model"),
                                          dataset_path=str(data), prompt_template="qwen_chat")


def fake_checkpoint(path, complete=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"x" * 1000)
    if not complete:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])  # a save killed half-way
    return path


def test_new_run_writes_config_and_launch_plan(project):
    run = runs.new_run(project, "cpu", gpu_count=0)
    values = literal_assignments(run.config_path.read_text())
    assert values["studio_progress_file"] == str(run.progress_path)
    assert values["studio_stop_file"] == str(run.dir / jobs.STOP_FILE)
    assert values["load_from"] is None
    assert run.launch_plan() == LaunchPlan()
    assert runs.train_argv(run)[1:4] == ["-m", "core.train.xtuner_entry", "train"]
    assert runs.summarize(run).state == "new"


def test_a_plan_that_cannot_run_here_writes_nothing(project):
    project = project.model_copy(update={"num_gpus": 2})
    with pytest.raises(LaunchError, match="NVIDIA"):
        runs.new_run(project, "cpu", gpu_count=0)
    assert not any(project.runs_dir.iterdir())


def test_two_runs_in_the_same_second_get_two_folders(project):
    a, b = runs.new_run(project, "cpu", gpu_count=0), runs.new_run(project, "cpu", gpu_count=0)
    assert a.dir != b.dir and a.dir.is_dir() and b.dir.is_dir()


def test_checkpoint_completeness(tmp_path):
    assert runs.checkpoint_complete(fake_checkpoint(tmp_path / "iter_1.pth"))
    assert not runs.checkpoint_complete(fake_checkpoint(tmp_path / "iter_2.pth", complete=False))
    ds = tmp_path / "iter_3.pth"
    ds.mkdir()
    assert not runs.checkpoint_complete(ds)
    (ds / "mp_rank_00_model_states.pt").write_bytes(b"x")
    assert runs.checkpoint_complete(ds)
    assert not runs.checkpoint_complete(tmp_path / "missing.pth")


def test_latest_checkpoint_skips_an_incomplete_save(project):
    run = runs.new_run(project, "cpu", gpu_count=0)
    fake_checkpoint(run.work_dir / "iter_10.pth")
    fake_checkpoint(run.work_dir / "iter_20.pth", complete=False)
    assert run.latest_checkpoint() == run.work_dir / "iter_10.pth"
    (run.work_dir / "last_checkpoint").write_text(str(run.work_dir / "iter_20.pth"))
    assert run.latest_checkpoint() == run.work_dir / "iter_10.pth"
    with pytest.raises(ConfigError, match="incomplete"):
        runs.start_training(project, run, resume_from=run.work_dir / "iter_20.pth")
    with pytest.raises(FileNotFoundError):
        runs.start_training(project, run, resume_from=run.work_dir / "iter_99.pth")


def test_warm_start_records_load_from(project):
    source = runs.new_run(project, "cpu", gpu_count=0)
    ckpt = fake_checkpoint(source.work_dir / "iter_5.pth")
    run = runs.new_run(project, "cpu", warm_start=ckpt, gpu_count=0)
    assert literal_assignments(run.config_path.read_text())["load_from"] == str(ckpt)
    assert literal_assignments(run.config_path.read_text())["resume"] is False
    assert run.info["warm_start"] == {"checkpoint": str(ckpt)}
    assert runs.summarize(run).warm_start == str(ckpt)


@pytest.mark.parametrize("change, message", [
    ({"method": "full"}, "Warm start needs the same method"),
    ({"model_path": "/elsewhere"}, "Warm start needs the same base model"),
    ({"hyperparams.lora_r": 8}, "Warm start needs the same adapter shape"),
])
def test_warm_start_refuses_a_checkpoint_that_would_load_nothing(project, change, message):
    source = runs.new_run(project, "cpu", gpu_count=0)
    ckpt = fake_checkpoint(source.work_dir / "iter_5.pth")
    (key, value), = change.items()
    if key.startswith("hyperparams."):
        project = project.model_copy(update={"hyperparams": project.hyperparams.model_copy(update={key[12:]: value})})
    else:
        project = project.model_copy(update={key: value})
    before = set(project.runs_dir.iterdir())
    with pytest.raises(ConfigError, match=message):
        runs.new_run(project, "cpu", warm_start=ckpt, gpu_count=0)
    assert set(project.runs_dir.iterdir()) == before


def test_warm_start_refuses_incomplete_foreign_and_deepspeed_mismatched_checkpoints(project, tmp_path):
    source = runs.new_run(project, "cpu", gpu_count=0)
    with pytest.raises(ConfigError, match="incomplete"):
        runs.new_run(project, "cpu", warm_start=fake_checkpoint(source.work_dir / "iter_5.pth", complete=False),
                     gpu_count=0)
    with pytest.raises(ConfigError, match="not a checkpoint of a run"):
        runs.new_run(project, "cpu", warm_start=fake_checkpoint(tmp_path / "x" / "y" / "iter_1.pth"), gpu_count=0)
    ds = source.work_dir / "iter_7.pth"
    ds.mkdir()
    (ds / "mp_rank_00_model_states.pt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="saved with DeepSpeed"):
        runs.new_run(project, "cpu", warm_start=ds, gpu_count=0)


def test_a_start_that_loses_the_race_leaves_no_run_folder(project):
    holder = jobs.start_job(project.dir / "other", [jobs.Step(name="s", argv=[sys.executable, "-c",
                                                                                "import time; time.sleep(30)"])],
                            kind="train", exclusive=runs.gpu_claim_path(project))
    try:
        with pytest.raises(jobs.JobBusy):
            runs.start_new_run(project, "cpu", gpu_count=0)
        assert not any(project.runs_dir.iterdir())
    finally:
        jobs.request_stop(project.dir / "other")
        jobs.wait_job(project.dir / "other", timeout=15)
    assert holder.kind == "train"


def test_summary_sums_attempts_and_reads_the_final_loss(project):
    run = runs.new_run(project, "cpu", gpu_count=0)
    vis = run.work_dir / "20260101_000000" / "vis_data"
    vis.mkdir(parents=True)
    (vis / "scalars.json").write_text(json.dumps({"iter": 7, "loss": 0.25}) + "\n")
    jobs.start_job(run.dir, [jobs.Step(name="a", argv=[sys.executable, "-c", "import time; time.sleep(0.3)"])],
                   kind="train")
    jobs.wait_job(run.dir, timeout=30)
    jobs.start_job(run.dir, [jobs.Step(name="b", argv=[sys.executable, "-c", "import time; time.sleep(0.3)"])],
                   kind="train")
    job = jobs.wait_job(run.dir, timeout=30)
    s = runs.summarize(run)
    assert s.state == "succeeded" and s.attempts == 2 and s.final_loss == 0.25 and s.last_iter == 7
    assert s.duration_s == pytest.approx(job.history[0]["duration_s"] + job.duration_s)
    assert s.duration_s >= 0.6
