"""The Train page under AppTest, in English and Chinese, and the completeness of its translations."""
import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptests import open_page

REPO = Path(__file__).resolve().parent.parent
HOME = str(REPO / "Home.py")


def train_page(ws, lang=None) -> AppTest:
    return open_page(ws, "pages/train.py", lang=lang)


def test_without_runs_the_page_offers_start_and_explains_the_cpu(demo_workspace):
    at = train_page(demo_workspace)
    assert any("No run yet" in i.value for i in at.info)
    assert any("No GPU here" in i.value for i in at.info)
    assert at.button(key="start").disabled is False
    deepspeed = at.selectbox[0]
    assert deepspeed.label == "DeepSpeed" and deepspeed.options == ["None (plain PyTorch)"]
    why = " ".join(c.value for c in at.caption)
    assert "deepspeed_zero3_offload" in why and "DeepSpeed needs an NVIDIA GPU" in why
    assert any("core.train.xtuner_entry train config.py --work-dir work_dir" in c.value for c in at.code)
    assert any("No GPU: NVML reports no NVIDIA GPU" in i.value for i in at.info), "the monitor's no-GPU state"


def test_the_page_in_chinese_has_no_english_left(demo_workspace):
    from ui import i18n

    i18n.reset_missing()
    at = train_page(demo_workspace, "zh")
    assert at.title[0].value == "3 · 训练"
    assert i18n.missing_keys() == set()


@pytest.mark.slow
def test_after_a_run_the_page_shows_progress_charts_and_history(trained_workspace):
    from ui import i18n

    at = train_page(trained_workspace)
    assert any("Succeeded" in m.value for m in at.markdown)
    assert any("Training finished." in s.value for s in at.success)
    assert len(at.get("plotly_chart")) == 4  # loss, learning rate, gradient norm, throughput (no GPU memory on CPU)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Epoch"] == "3 / 3" and metrics["ETA"] == "—"
    history = at.dataframe[0].value
    assert list(history["State"]) == ["Succeeded"]
    run_id = history["Run"][0]
    assert history["Results"][0] == f"results?project=demo&run={run_id}"
    assert 0 < float(history["Final loss"][0]) < 1.0  # shown as text with 4 decimals ("—" before any loss)
    i18n.reset_missing()
    train_page(trained_workspace, "zh")
    assert i18n.missing_keys() == set()


@pytest.mark.slow
def test_warm_start_from_the_page_makes_a_run_that_loads_the_checkpoint(trained_workspace):
    from core import jobs
    from core.train import runs
    from core.train.configgen import literal_assignments
    from core.project import ProjectStore

    project = ProjectStore(trained_workspace).load("demo")
    before = {r.id for r in runs.list_runs(project)}
    at = train_page(trained_workspace)
    at.radio(key="start_mode").set_value("warm").run()
    source = at.selectbox(key="warm_source")
    label = source.format_func(source.value)
    assert " · iter_" in label
    at.button(key="start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (new,) = [r for r in runs.list_runs(project) if r.id not in before]
    try:
        src_run, ckpt = label.split(" · ")
        expected = str(project.runs_dir / src_run / "work_dir" / f"{ckpt}.pth")
        assert literal_assignments(new.config_path.read_text())["load_from"] == expected
        assert new.job().active
    finally:
        jobs.request_stop(new.dir)
        jobs.wait_job(new.dir, timeout=120)
        shutil.rmtree(new.dir)  # the shared trained workspace keeps its one run


@pytest.mark.parametrize("settings", [dict(num_gpus=2, deepspeed="deepspeed_zero2"),
                                      dict(num_nodes=2, master_port=29500)])
def test_a_launch_plan_this_machine_cannot_run_is_refused_with_the_reason(workspace, demo_workspace, settings):
    """A project set up for two GPUs + ZeRO-2 (or two nodes), e.g. on the GPU box, opened on a machine without one:
    the reason is shown, nothing that cannot run is previewed or started, and Train itself fixes it."""
    from core.demo import DEMO_TEMPLATE
    from core.project import ProjectStore

    demo = ProjectStore(demo_workspace).load("demo")
    project = ProjectStore(workspace).create("demo", method="lora", model_path=demo.model_path,
                                             dataset_path=demo.dataset_path, prompt_template=DEMO_TEMPLATE, **settings)
    at = train_page(workspace)
    expected = ("Training on several GPUs needs NVIDIA GPUs; none was found on this machine." if "num_gpus" in settings
                else "Training on several nodes needs NVIDIA GPUs; none was found on this machine.")
    assert [e.value for e in at.error] == [
        f"The saved launch settings cannot run on this machine: {expected} Save the settings above (they start from "
        "what can run here) to train."]
    assert at.button(key="start").disabled, "Start waits until the launch settings can run here"
    assert not any("torch.distributed.run" in c.value for c in at.code), "no preview of a command that cannot run"
    assert not any(project.runs_dir.iterdir()), "nothing was created"
    at.button(key="FormSubmitter:launch-Save launch settings").click().run()  # the form resets to what works here
    assert any(s.value == "Saved." for s in at.success) and not at.error
    saved = ProjectStore(workspace).load("demo")
    assert (saved.num_gpus, saved.num_nodes, saved.deepspeed) == (1, 1, None)
    assert at.button(key="start").disabled is False
    assert any("core.train.xtuner_entry train config.py --work-dir work_dir" in c.value
               and "torch.distributed.run" not in c.value for c in at.code)


@pytest.fixture
def two_runs_ws(tmp_path, demo_workspace):
    """A copy of the demo workspace with two runs created and not started."""
    from core.project import ProjectStore
    from core.train import runs

    ws = tmp_path / "ws"
    shutil.copytree(demo_workspace, ws)
    project = ProjectStore(ws).load("demo")
    made = [runs.new_run(project, "cpu") for _ in range(2)]
    return ws, project, made


def test_run_history_shows_no_none_and_each_open_results_link_opens_its_own_run(two_runs_ws):
    from urllib.parse import parse_qs

    ws, project, made = two_runs_ws
    at = train_page(ws)
    history = at.dataframe[0].value
    assert sorted(history["Run"]) == sorted(r.id for r in made)
    cells = [str(v) for col in history.columns for v in history[col]]
    assert "None" not in cells and "nan" not in cells, cells
    assert list(history["Final loss"]) == ["—", "—"]  # nothing logged yet
    for row in range(2):
        link = history["Results"][row]
        params = {k: v[0] for k, v in parse_qs(link.split("?", 1)[1]).items()}
        results = open_page(ws, "pages/results.py")
        default = results.selectbox(key="results_run").value.id
        results.query_params.update(params)  # what following the link carries
        results.run()
        assert not results.exception
        assert results.selectbox(key="results_run").value.id == history["Run"][row] == params["run"]
    assert default == history["Run"][0], "without a link, the newest run"


def test_a_stop_while_the_model_loads_says_there_is_nothing_to_save(two_runs_ws):
    import sys
    import time

    from core import jobs

    ws, project, made = two_runs_ws
    run = made[0]
    jobs.start_job(run.dir, [jobs.Step(name="train", argv=[sys.executable, "-c", "import time; time.sleep(120)"],
                                       graceful_stop_s=60, graceful_after_file=str(run.progress_path))],
                   kind="train")
    try:
        deadline = time.monotonic() + 60
        while jobs.read_job(run.dir).state != "running":
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.1)
        assert not run.progress_path.exists()  # the training loop has not started: nothing to save
        at = train_page(ws)
        at.selectbox(key="train_run_select").set_value(run.id).run()
        at.button(key="stop").click().run()
        assert [x.value for x in at.toast] == [
            "Stop requested: the model is still loading, there is nothing to save yet; stopping now."]
        assert not any("saving a checkpoint" in x.value or "being saved" in x.value for x in at.info)
    finally:
        jobs.request_stop(run.dir)
        assert jobs.wait_job(run.dir, timeout=60).state == "stopped"


@pytest.mark.slow
def test_results_curves_are_the_train_charts_translated(trained_workspace):
    """Results draws the Train page's figures: in Chinese its titles and axes are Chinese, memory in GiB."""
    from ui import i18n

    zh = i18n.catalog("zh")
    i18n.reset_missing()
    at = open_page(trained_workspace, "pages/results.py", lang="zh")
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = [s["layout"]["title"]["text"] for s in specs]
    assert titles[:4] == [zh[k] for k in ("Training loss", "Learning rate", "Gradient norm", "Throughput")]
    assert all(s["layout"]["xaxis"]["title"]["text"] == zh["iteration"] for s in specs)
    assert not any("GB" in json.dumps(s["layout"]) for s in specs)
    assert i18n.missing_keys() == set()
