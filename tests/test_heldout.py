"""Held-out loss: the split, the < 1 batch refusal, the config, reading it back, the lowest point, over-fitting."""
import json
import time

import pytest

from core.project import ProjectStore
from core.train import runs
from core.train.configgen import ConfigError
from core.results import charts, heldout
from core.results.metrics import ScalarsReader, last_record
from core.train.configgen import TrainSpec, render_config
from core.train.heldout import check_heldout, count_records, split_dataset, split_sizes
from core.train.hyperparams import Hyperparams


def dataset(tmp_path, n):
    path = tmp_path / "d.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")  # a blank last line is not a record
    return path


def test_the_split_is_disjoint_complete_and_the_same_every_time(tmp_path):
    path = str(dataset(tmp_path, 40))
    train = [r["messages"][0]["content"] for r in split_dataset(path, 0.1, "train")]
    test = [r["messages"][0]["content"] for r in split_dataset(path, 0.1, "test")]
    assert (len(train), len(test)) == split_sizes(40, 0.1) == (36, 4)
    assert not set(train) & set(test) and len(set(train) | set(test)) == 40
    assert test == [r["messages"][0]["content"] for r in split_dataset(path, 0.1, "test")]


def test_a_share_leaving_fewer_than_one_batch_is_refused_with_the_numbers(tmp_path):
    path = dataset(tmp_path, 30)
    assert count_records(path) == 30
    check_heldout(path, 0.0, 64)  # no held-out share: nothing to check
    check_heldout(path, 0.1, 3)  # 3 held out, a batch of 3
    with pytest.raises(ConfigError) as e:
        check_heldout(path, 0.1, 4)
    assert e.value.text == "A held-out share of {share:.0%} of {n} records keeps {heldout} for held-out loss and " \
                           "{train} for training; each needs at least one batch ({batch}). Choose a larger share, " \
                           "a larger dataset or 0."
    assert e.value.params == dict(share=0.1, n=30, heldout=3, train=27, batch=4)
    assert "10% of 30 records keeps 3" in str(e.value)


def spec(ratio):
    return TrainSpec(method="lora", model_path="/m", prompt_template="qwen_chat", dataset_path="/d.jsonl",
                     hyperparams=Hyperparams(heldout_ratio=ratio), device="cpu")


def test_the_config_holds_out_the_share_and_measures_it_at_each_save(tmp_path):
    from mmengine.config import Config

    assert "heldout" not in render_config(spec(0.0)).replace("heldout_ratio = 0.0", "")
    path = tmp_path / "cfg.py"
    path.write_text(render_config(spec(0.05)))
    cfg = Config.fromfile(str(path))
    assert cfg.train_dataset.dataset.part == "train" and cfg.train_dataset.dataset.heldout_ratio == 0.05
    hook = cfg.custom_hooks[-1]
    assert hook.dataset.dataset.part == "test" and not hook.dataset.shuffle_before_pack
    assert hook.interval == cfg.save_steps and hook.batch_size == cfg.batch_size
    assert hook.dataset.tokenizer == cfg.train_dataset.tokenizer


def write_scalars(tmp_path, lines):
    f = tmp_path / "20260101_000000" / "vis_data" / "scalars.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_held_out_records_join_the_training_record_of_their_iteration(tmp_path):
    write_scalars(tmp_path, [{"loss": 2.0, "iter": 1, "step": 1}, {"loss": 1.0, "iter": 2, "step": 2},
                             {"heldout_loss": 1.5, "heldout_s": 0.1, "step": 2}])
    r = ScalarsReader(tmp_path)
    r.poll()
    assert r.series("loss") == ([1, 2], [2.0, 1.0])
    assert r.series("heldout_loss") == ([2], [1.5])
    assert last_record(tmp_path)["loss"] == 1.0  # the newest training record, not the held-out one
    curves = charts.RunCurves(tmp_path)
    curves.poll()
    figs = dict(charts.scalar_figures(curves))
    assert "heldout_loss" not in figs and "heldout_s" not in figs  # drawn inside the loss chart
    names = [t.name for t in figs["loss"].data]
    assert names == ["loss", "smoothed", "held-out loss", "lowest held-out loss"]
    assert list(figs["loss"].data[3].x) == [2]


def test_the_lowest_checkpoint_and_over_fitting_in_words():
    train = ([i for i in range(1, 101)], [10.0 - i * 0.09 for i in range(1, 101)])  # falls throughout
    assert heldout.lowest(([20, 40, 60], [3.0, 1.0, 1.0])) == (40, 1.0)
    assert heldout.lowest(([], [])) is None
    assert heldout.overfitting(([20, 40, 60, 80], [3.0, 2.0, 1.0, 0.5]), train) is None
    assert heldout.overfitting(([20, 40, 60, 80], [3.0, 2.0, 2.5, 2.4]), train) is None  # rose once only
    over = heldout.overfitting(([20, 40, 60, 80, 100], [3.0, 1.0, 1.2, 1.5, 1.9]), train)
    assert over == heldout.Overfit(40, 80)
    flat = ([i for i in range(1, 101)], [1.0] * 100)  # training loss not falling: not over-fitting
    assert heldout.overfitting(([20, 40, 60, 80], [3.0, 1.0, 1.2, 1.5]), flat) is None
    assert heldout.cost_share([1.0, 2.0], 100.0) == 0.03


def test_start_refuses_such_a_share_before_making_a_run(workspace, tmp_path):
    (workspace / "model").mkdir()
    store = ProjectStore(workspace)
    project = store.create("p", method="lora", prompt_template="qwen_chat", model_path=str(workspace / "model"),
                           dataset_path=str(dataset(tmp_path, 10)))
    project = store.save(project.model_copy(update={"hyperparams": project.hyperparams.model_copy(
        update={"heldout_ratio": 0.05, "batch_size": 2})}))
    with pytest.raises(ConfigError, match="keeps 1 for held-out loss and 9 for training"):
        runs.new_run(project, "cpu", gpu_count=0)
    assert runs.list_runs(project) == [] and not any(project.runs_dir.iterdir())


@pytest.mark.slow
def test_a_stopped_and_resumed_run_measures_every_checkpoint_once(demo_workspace, tmp_path):
    """Real training on the demo: held-out loss at each save point, at the checkpoint a stop saved, and
    at the end; the resumed stretch continues the same series without duplicates."""
    from core import jobs
    from core.demo import DEMO_TEMPLATE, demo_hyperparams

    demo = ProjectStore(demo_workspace).load("demo")
    project = ProjectStore(tmp_path / "ws").create(
        "demo", method="lora", model_path=demo.model_path, dataset_path=demo.dataset_path,
        prompt_template=DEMO_TEMPLATE, evaluation_inputs=[],
        hyperparams=demo_hyperparams().model_copy(update={"max_epochs": 1, "heldout_ratio": 0.05,
                                                          "evaluation_freq": 1000}))
    run, _ = runs.start_new_run(project, "cpu", gpu_count=0)

    def measured():
        reader = ScalarsReader(run.work_dir)
        reader.poll()
        return reader.series("heldout_loss")[0]

    deadline = time.monotonic() + 600
    while not measured() or (run.progress().get("iter") or 0) < 23:  # past the first save (20), not at the next
        assert run.job().active and time.monotonic() < deadline, run.log_path.read_text()[-3000:]
        time.sleep(0.2)
    jobs.request_stop(run.dir)
    assert jobs.wait_job(run.dir, timeout=300).state == "stopped"
    n = run.latest_checkpoint()
    stop_at = int(n.stem.split("_")[1])
    assert stop_at > 20 and measured() == sorted({20, stop_at})  # a stop at 40 is a save point: measured once
    runs.start_training(project, run, resume_from=n)
    assert jobs.wait_job(run.dir, timeout=900).state == "succeeded", run.log_path.read_text()[-3000:]
    total = run.progress()["max_iters"]
    assert measured() == sorted({20, stop_at, *range(20, total + 1, 20), total})
