"""Every page under streamlit.testing.v1.AppTest: without a project, with the demo, after training."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent
HOME = str(REPO / "Home.py")
PAGES = ["pages/home.py", "pages/model_data.py", "pages/configure.py", "pages/train.py",
         "pages/results.py", "pages/convert_chat.py"]


def app(ws, project=None) -> AppTest:
    os.environ["XTUNER_STUDIO_HOME"] = str(ws)
    at = AppTest.from_file(HOME, default_timeout=60)
    if project:
        at.query_params["project"] = project
    return at


def visit(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_a_project(workspace, page):
    at = app(workspace).run()
    assert not at.exception
    visit(at, page)
    if page != "pages/home.py":
        assert any("No project is open" in i.value for i in at.info)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_the_demo_project(demo_workspace, page):
    at = app(demo_workspace, "demo").run()
    visit(at, page)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_after_a_training_run(trained_workspace, page):
    at = app(trained_workspace, "demo").run()
    visit(at, page)
    if page == "pages/train.py":
        assert at.get("plotly_chart"), "the loss chart is shown"
        assert any("Succeeded" in m.value for m in at.markdown)
    if page == "pages/results.py":
        assert len(at.get("plotly_chart")) == 4  # loss, lr, grad norm, throughput
        assert any("Ada's assistant" in c.value for c in at.code), "evaluation answers per checkpoint"


def test_home_creates_a_project_from_the_form(workspace):
    at = app(workspace).run()
    at.text_input[0].set_value("first project")
    at.button(key="FormSubmitter:new_project-Create").click().run()
    assert not at.exception and not at.error
    from core.project import ProjectStore

    assert ProjectStore(workspace).list() == ["first project"]
    assert at.query_params["project"] == ["first project"] or at.query_params["project"] == "first project"


def test_home_shows_a_clear_error_for_a_bad_project_name(workspace):
    at = app(workspace).run()
    at.text_input[0].set_value("../escape")
    at.button(key="FormSubmitter:new_project-Create").click().run()
    assert at.error and "not allowed" in at.error[0].value


def heavy_modules_after_visiting_every_page(ws) -> list[str]:
    """Visit every page in a fresh interpreter (this test process may have imported torch already)
    and return which of torch / transformers / xtuner / mmengine / peft got imported."""
    script = f"""
import os, sys, json
os.environ["XTUNER_STUDIO_HOME"] = {str(ws)!r}
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({HOME!r}, default_timeout=60)
at.query_params["project"] = "demo"
at.run()
for page in {tuple(PAGES)!r}:
    at.switch_page(page).run()
    assert not at.exception, page
print(json.dumps([m for m in ("torch", "transformers", "xtuner", "mmengine", "peft") if m in sys.modules]))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_page_loads_do_not_import_torch_transformers_or_xtuner(demo_workspace):
    assert heavy_modules_after_visiting_every_page(demo_workspace) == []


@pytest.mark.slow
def test_page_loads_with_runs_and_checkpoints_do_not_import_torch(trained_workspace):
    """Results with curves and answers, Convert & Chat with checkpoints and chat choices: still no torch."""
    assert heavy_modules_after_visiting_every_page(trained_workspace) == []


def test_the_demo_is_built_as_a_job_and_opened_when_it_succeeds(workspace):
    """Create the demo starts a job (no blocking subprocess in the page); the tab opens the demo once it succeeded."""
    from core import jobs
    from core.project import ProjectStore

    at = app(workspace).run()
    at.button(key="create_demo").click().run()
    assert not at.exception, [e.value for e in at.exception]
    job = jobs.read_job(workspace / "demo_build")
    assert job is not None and job.kind == "demo"
    assert jobs.wait_job(workspace / "demo_build", timeout=600).state == "succeeded"
    at.run()  # what the job fragment's rerun does once the job has ended
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.value.startswith("Demo project ready.") for s in at.success)
    assert ProjectStore(workspace).load("demo").dataset_path
