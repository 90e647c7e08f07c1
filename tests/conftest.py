import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("XTUNER_STUDIO_FORCE_CPU", "1")  # tests train on the CPU, GPU or not


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.setenv("XTUNER_STUDIO_HOME", str(ws))
    return ws


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory):
    """A workspace holding the demo project (built once per session, ~7 s)."""
    from core.demo import create_demo_project
    from core.project import ProjectStore

    ws = tmp_path_factory.mktemp("demo_ws")
    create_demo_project(ProjectStore(ws))
    return ws


@pytest.fixture(scope="session")
def trained_workspace(tmp_path_factory):
    """A workspace whose demo project has one finished training run (~25 s, once per session)."""
    from core import jobs
    from core.train import runs
    from core.demo import create_demo_project
    from core.project import ProjectStore

    ws = tmp_path_factory.mktemp("trained_ws")
    project = create_demo_project(ProjectStore(ws))
    run = runs.new_run(project, "cpu")
    runs.start_training(project, run)
    job = jobs.wait_job(run.dir, timeout=600)
    assert job.state == "succeeded", run.log_path.read_text()[-3000:]
    return ws


# Figures a test measured (e.g. the newcomer's time to a first fine-tune), printed at the end of the run.
_FIGURES: list[str] = []


@pytest.fixture
def report_figure():
    return _FIGURES.append


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("measured")
        for line in _FIGURES:
            terminalreporter.write_line(line)
