import os
import subprocess
import sys
from dataclasses import dataclass
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


@dataclass
class SmokeRun:
    workspace: Path
    returncode: int
    stdout: str
    stderr: str
    run_dirs: list  # the runs it left (tests sharing the workspace may add and remove their own)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> SmokeRun:
    """The whole pipeline, once per session: ``python -m core.smoke`` builds the demo project, trains it,
    converts and merges the last checkpoint and asks both models the demo question (~1 min)."""
    ws = tmp_path_factory.mktemp("trained_ws")
    out = subprocess.run([sys.executable, "-m", "core.smoke", "--workspace", str(ws), "--device", "cpu"],
                         cwd=REPO, capture_output=True, text=True, timeout=1800)
    runs_dir = ws / "projects" / "demo" / "runs"
    run_dirs = sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []
    return SmokeRun(ws, out.returncode, out.stdout, out.stderr, run_dirs)


@pytest.fixture(scope="session")
def trained_workspace(smoke_run):
    """A workspace whose demo project has one finished training run, its last checkpoint converted and
    merged (the session's smoke run). Tests that change it work on a copy or undo what they add."""
    assert smoke_run.returncode == 0, smoke_run.stdout[-4000:] + smoke_run.stderr[-4000:]
    return smoke_run.workspace


# Figures a test measured (e.g. the newcomer's time to a first fine-tune), printed at the end of the run.
# They travel as the test's user_properties, so they reach the summary from pytest-xdist workers too.
@pytest.fixture
def report_figure(request):
    return lambda line: request.node.user_properties.append(("figure", line))


def pytest_terminal_summary(terminalreporter):
    figures = [value for reports in terminalreporter.stats.values() for r in reports
               if getattr(r, "when", None) == "call" for key, value in getattr(r, "user_properties", ()) if key == "figure"]
    if figures:
        terminalreporter.section("measured")
        for line in figures:
            terminalreporter.write_line(line)
