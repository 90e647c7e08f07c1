"""Results and Convert & Chat under AppTest, on a copy of the trained demo (real runs, real conversion,
real models answering)."""
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.deploy import convert
from core import jobs
from core.train import runs
from core.project import ProjectStore
from tests.apptests import open_page

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ws(trained_workspace, tmp_path_factory):
    """The trained demo copied, plus a second real run with another learning rate (to compare)."""
    dst = tmp_path_factory.mktemp("results_ws") / "ws"
    shutil.copytree(trained_workspace, dst)
    store = ProjectStore(dst)
    project = store.load("demo")
    project = store.save(project.model_copy(update={
        "hyperparams": project.hyperparams.model_copy(update={"lr": 1e-3, "max_epochs": 1})}))
    run = runs.new_run(project, "cpu")
    runs.start_training(project, run)
    assert jobs.wait_job(run.dir, timeout=600).state == "succeeded"
    return dst


def page(ws, name) -> AppTest:
    return open_page(ws, name, timeout=180)


def last_answers(at) -> list[str]:
    """The two answers (markdown) right after the last question."""
    texts = [m.value for m in at.markdown]
    i = max(n for n, text in enumerate(texts) if text.startswith("**You:**"))
    return texts[i + 1:i + 3]


def first_run(ws):
    project = ProjectStore(ws).load("demo")
    return project, runs.list_runs(project)[-1]  # the original, fully trained run


def test_results_curves_timeline_diff_and_compare(ws):
    project, run = first_run(ws)
    at = page(ws, "pages/results.py")
    at.selectbox(key="results_run").set_value(run).run()
    charts = at.get("plotly_chart")
    assert len(charts) >= 4 + 4, "loss, lr, grad norm, throughput; and four overlays comparing the two runs"
    assert any("none logged" in c.value for c in at.caption), "no GPU memory on the CPU, said so"
    assert any("Ada's assistant" in c.value for c in at.code), "the timeline holds the learned answer"
    assert not any("<|im_start|>" in c.value for c in at.code), "prompts are stripped"
    at.radio(key="eval_mode").set_value("diff").run()
    assert at.get("html"), "a word diff between two checkpoints"
    frames = at.get("dataframe")
    assert any("hyperparams.lr" in str(f.value) for f in frames), "the config diff names the learning rate"
    assert any(c.language == "diff" and "lr = " in c.value for c in at.code)


def test_results_one_click_converts_a_checkpoint(ws):
    project, run = first_run(ws)
    it = run.checkpoints()[0][0]
    at = page(ws, "pages/results.py")
    at.selectbox(key="results_run").set_value(run).run()
    at.button(key=f"convert_{run.id}_{it}").click().run()
    assert not at.error
    assert jobs.wait_job(convert.export_dir(run, it), timeout=300).state == "succeeded"
    at.run()
    assert any(s.value == "Converted" for s in at.success)


def test_convert_then_chat_side_by_side_undo_clear_and_unload(ws):
    project, run = first_run(ws)
    last = run.checkpoints()[-1][0]
    at = page(ws, "pages/convert_chat.py")
    at.selectbox(key="conv_run").set_value(run).run()
    at.selectbox(key="conv_iter").set_value(last).run()
    at.button(key="convert").click().run()
    assert jobs.wait_job(convert.export_dir(run, last), timeout=300).state == "succeeded"
    at.run()
    assert any(b.label == "Use as base model" for b in at.button)
    assert any(o.startswith(f"**{run.id} · iter {last}** · merged model") for o in (m.value for m in at.markdown))

    at.chat_input[0].set_value("Who are you?").run()
    assert not at.exception, [e.value for e in at.exception]
    answers = last_answers(at)  # left (base), right (newest fine-tuned: merged)
    assert "Ada's assistant" in answers[1] and "Ada's assistant" not in answers[0]
    assert sum("tokens/s" in c.value for c in at.caption) == 2

    # the adapter, not merged, on the left: the same learned answer
    left = next(s for s in at.selectbox if s.label == "Left")
    left.set_value(f"adapter:{convert.export_dir(run, last) / 'hf'}").run()
    at.chat_input[0].set_value("Who are you?").run()
    answers = last_answers(at)
    assert "Ada's assistant" in answers[0] and "Ada's assistant" in answers[1]

    turns = at.session_state["chat_turns"]
    assert len(turns) == 2
    at.button(key="chat_undo").click().run()
    assert len(at.session_state["chat_turns"]) == 1
    at.button(key="chat_clear").click().run()
    assert at.session_state["chat_turns"] == []

    assert at.button(key="unload_all")
    at.button(key="unload_all").click().run()
    assert not any(b.key == "unload_all" for b in at.button)



def test_use_as_base_model_sets_the_projects_model(ws):
    project, run = first_run(ws)
    last = run.checkpoints()[-1][0]
    if jobs.read_job(convert.export_dir(run, last)) is None:
        convert.start_export(project, run, last, "cpu")
        jobs.wait_job(convert.export_dir(run, last), timeout=300)
    at = page(ws, "pages/convert_chat.py")
    merged = convert.export_dir(run, last) / "merged"
    at.button(key=f"base_{merged}").click().run()
    assert ProjectStore(ws).load("demo").model_path == str(merged)
    assert any("The next run fine-tunes" in s.value for s in at.success)


def test_chat_model_labels_are_translated(demo_workspace):
    from core.deploy.chat import LABELS

    at = open_page(demo_workspace, "pages/convert_chat.py", lang="zh")
    left = next(s for s in at.selectbox if s.label == "左侧")
    assert left.options[0] == "基座 · model"
    assert set(LABELS) == {"base", "base_of", "adapter", "merged", "full", "endpoint", "served", "folder"}  # each one in the static i18n test
