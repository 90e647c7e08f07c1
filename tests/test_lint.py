"""Static checks that keep the code honest (unused imports, undefined names, syntax)."""
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or "ruff"
    out = subprocess.run([ruff, "check", "."], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_core_never_imports_streamlit():
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "core").rglob("*.py")
                 if "import streamlit" in p.read_text() or "from streamlit" in p.read_text()]
    assert offenders == []


def test_entry_points_are_the_modules_run_as_processes():
    """Every module with a ``__main__`` block is listed in core.ENTRY_POINTS, and only those."""
    import core
    mains = {".".join(p.relative_to(REPO).with_suffix("").parts) for p in (REPO / "core").rglob("*.py")
             if 'if __name__ == "__main__"' in p.read_text()}
    assert mains == set(core.ENTRY_POINTS)
