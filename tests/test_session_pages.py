"""Coming back: a fresh session opens the workspace's last-used project, and Home shows a run in
progress anywhere in the workspace with a way to it (AppTest)."""
import os
import sys

from streamlit.testing.v1 import AppTest

from core import jobs, settings
from core.jobs import Step
from core.project import ProjectStore
from tests.apptests import HOME, open_page


def test_a_fresh_session_opens_the_last_used_project(workspace):
    ProjectStore(workspace).create("alpha", method="lora")
    ProjectStore(workspace).create("beta", method="lora")
    settings.save(workspace, last_project="beta")
    os.environ["XTUNER_STUDIO_HOME"] = str(workspace)
    at = AppTest.from_file(HOME, default_timeout=60).run()
    assert at.session_state["project"] == "beta"
    assert at.selectbox(key="sidebar_project").value == "beta"


def test_home_shows_a_run_in_progress_in_another_project(workspace):
    store = ProjectStore(workspace)
    store.create("alpha", method="lora")
    busy = store.create("beta", method="lora")
    run_dir = busy.runs_dir / "20260101-000000-lora"
    run_dir.mkdir(parents=True)
    (run_dir / "config.py").write_text("# a run\n")
    (run_dir / "progress.json").write_text('{"phase": "training", "iter": 19, "max_iters": 156, "updated_at": 0}')
    jobs.start_job(run_dir, [Step(name="train", argv=[sys.executable, "-c", "import time; time.sleep(60)"])],
                   kind="train")
    try:
        at = open_page(workspace, "pages/home.py", project="alpha")
        shown = [i.value for i in at.info if "is training" in i.value]
        assert shown and "beta" in shown[0] and "19 of 156" in shown[0]
        at.button(key="goto_run_beta").click().run()
        assert at.session_state["project"] == "beta"
    finally:
        jobs.request_stop(run_dir)
        jobs.wait_job(run_dir, timeout=30)


def test_an_edit_on_a_full_disk_says_so_and_the_page_goes_on(workspace, monkeypatch):
    import errno

    ProjectStore(workspace).create("alpha", method="lora")
    at = open_page(workspace, "pages/model_data.py", project="alpha")

    def full(self, project):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ProjectStore, "save", full)
    at.radio[0].set_value(at.radio[0].options[2]).run()
    assert not at.exception
    assert any("Could not save the project" in e.value and "The disk is full" in e.value for e in at.error)
