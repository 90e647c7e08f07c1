import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("XTUNER_STUDIO_FORCE_CPU", "1")  # tests train on the CPU, GPU or not


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.setenv("XTUNER_STUDIO_HOME", str(ws))
    return ws


@pytest.fixture(scope="session", autouse=True)
def _studio_home(tmp_path_factory):
    """Code that a test runs without its own workspace writes to a temporary one, never to ~/xtuner-studio."""
    if "XTUNER_STUDIO_HOME" not in os.environ:
        os.environ["XTUNER_STUDIO_HOME"] = str(tmp_path_factory.mktemp("studio_home"))


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


def session_shared_dir(tmp_path_factory) -> Path:
    """A folder every pytest-xdist worker of this session sees (the session's own one without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _run_smoke(ws: Path, project: str, *args: str) -> SmokeRun:
    out = subprocess.run([sys.executable, "-m", "core.smoke", *args, "--workspace", str(ws), "--device", "cpu"],
                         cwd=REPO, capture_output=True, text=True, timeout=1800)
    runs_dir = ws / "projects" / project / "runs"
    run_dirs = sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []
    return SmokeRun(ws, out.returncode, out.stdout, out.stderr, run_dirs)


def _smoke_once(tmp_path_factory, name: str, workspace: str, project: str, *args: str) -> SmokeRun:
    """``python -m core.smoke *args`` once per session in ``workspace``: under pytest-xdist the first worker to
    ask runs it and the others read its result (``name``.json)."""
    shared = session_shared_dir(tmp_path_factory)
    record = shared / f"{name}.json"
    with FileLock(str(shared / f"{name}.lock")):
        if record.exists():
            data = json.loads(record.read_text())
            return SmokeRun(Path(data["workspace"]), data["returncode"], data["stdout"], data["stderr"],
                            [Path(d) for d in data["run_dirs"]])
        result = _run_smoke(shared / workspace, project, *args)
        record.write_text(json.dumps(asdict(result), default=str))
        return result


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> SmokeRun:
    """The whole pipeline, once per session: ``python -m core.smoke`` builds the demo project, trains it,
    converts and merges the last checkpoint and asks both models the demo question (~1 min)."""
    return _smoke_once(tmp_path_factory, "smoke_run", "trained_ws", "demo")


@pytest.fixture(scope="session")
def trained_workspace(smoke_run):
    """A workspace whose demo project has one finished training run, its last checkpoint converted and
    merged (the session's smoke run), shared by every test and worker: read it, or work on a copy."""
    assert smoke_run.returncode == 0, smoke_run.stdout[-4000:] + smoke_run.stderr[-4000:]
    return smoke_run.workspace


@pytest.fixture(scope="session")
def vision_smoke_run(tmp_path_factory) -> SmokeRun:
    """``python -m core.smoke --multimodal`` once per session (both LLaVA stages trained on the tiny vision demo,
    stage 2's last checkpoint converted, held-out pictures asked; ~2 min on a quiet machine), shared like
    ``smoke_run``: read its workspace, or work on a copy."""
    return _smoke_once(tmp_path_factory, "vision_smoke_run", "vision_ws", "llava-demo", "--multimodal")


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
