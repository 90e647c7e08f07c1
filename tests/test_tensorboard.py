"""TensorBoard: configs write its events when the package is there; Results serves them as a job."""
import time
import urllib.request

import pytest

from core import jobs
from core.results import tensorboard
from core.train import runs
from core.train.configgen import TrainSpec, render_config


def test_configs_write_tensorboard_events_beside_scalars(tmp_path):
    from mmengine.config import Config

    assert tensorboard.available()
    path = tmp_path / "cfg.py"
    path.write_text(render_config(TrainSpec(method="lora", model_path="/m", prompt_template="qwen_chat",
                                            dataset_path="/d.jsonl", device="cpu")))
    cfg = Config.fromfile(str(path))
    assert [b["type"].__name__ for b in cfg.visualizer.vis_backends] == ["LocalVisBackend", "TensorboardVisBackend"]


def test_the_command_line_is_quoted_and_on_the_loopback(tmp_path):
    run = runs.Run(tmp_path / "run's dir")
    line = tensorboard.command_line(run, 6007)
    assert line == f"tensorboard --logdir '{tmp_path}/run'\"'\"'s dir/work_dir' --host 127.0.0.1 --port 6007"


@pytest.mark.slow
def test_the_tensorboard_job_serves_the_run_until_stopped(tmp_path):
    run = runs.Run(tmp_path / "run")
    (run.work_dir / "20260101_000000" / "vis_data").mkdir(parents=True)
    port = tensorboard.free_port(6150)
    job = tensorboard.start(run, port)
    assert tensorboard.port_of(job) == port
    deadline, answer = time.monotonic() + 120, None
    while answer is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/logdir", timeout=2) as r:
                answer = r.read().decode()
        except OSError:
            assert jobs.read_job(tensorboard.job_dir(run)).active, (tensorboard.job_dir(run) / "job.log").read_text()
            time.sleep(0.3)  # polling for the server to listen
    assert answer is not None and str(run.work_dir) in answer
    jobs.request_stop(tensorboard.job_dir(run))
    assert jobs.wait_job(tensorboard.job_dir(run), timeout=60).state == "stopped"
