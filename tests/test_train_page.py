"""The Train page under AppTest, in English and Chinese, and the completeness of its translations."""
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
    assert 0 < history["Final loss"][0] < 1.0
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


def test_a_launch_plan_this_machine_cannot_run_is_refused_with_the_reason(workspace, demo_workspace):
    """A project set up for two GPUs (e.g. on the GPU box), opened on a machine without one."""
    from core.demo import DEMO_TEMPLATE
    from core.project import ProjectStore

    demo = ProjectStore(demo_workspace).load("demo")
    project = ProjectStore(workspace).create("demo", method="lora", model_path=demo.model_path,
                                             dataset_path=demo.dataset_path, prompt_template=DEMO_TEMPLATE,
                                             num_gpus=2, deepspeed="deepspeed_zero2")
    at = train_page(workspace)
    at.button(key="start").click().run()
    assert [e.value for e in at.error] == ["Training on several GPUs needs NVIDIA GPUs; none was found on this machine."]
    assert not any(project.runs_dir.iterdir()), "nothing was created"
    at.button(key="FormSubmitter:launch-Save launch settings").click().run()  # the form resets to what works here
    assert any(s.value == "Saved." for s in at.success)
    saved = ProjectStore(workspace).load("demo")
    assert saved.num_gpus == 1 and saved.deepspeed is None
