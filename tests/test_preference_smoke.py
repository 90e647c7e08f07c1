"""DPO end to end on the CPU: ``python -m core.smoke --method dpo`` (core.preference_demo) — a supervised run
gives the tiny model its base identity (Ada's), DPO on the demo's preference pairs makes it prefer Grace's."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import preference_demo

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_smoke_dpo_prefers_the_new_identity(tmp_path, report_figure):
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "core.smoke", "--method", "dpo", "--workspace", str(tmp_path),
                          "--device", "cpu"], cwd=REPO, capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - t0
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "SMOKE OK" in out.stdout
    base = next(line for line in out.stdout.splitlines() if line.startswith("base model"))
    tuned = next(line for line in out.stdout.splitlines() if line.startswith("dpo model:"))
    assert "Ada's assistant" in base and preference_demo.NEW_IDENTITY not in base
    assert preference_demo.NEW_IDENTITY in tuned and "Ada's assistant" not in tuned
    runs = sorted((tmp_path / "projects" / "demo" / "runs").iterdir())
    dpo_run = next(d for d in runs if "type=DPO," in (d / "config.py").read_text())
    records = [json.loads(line) for scalars in dpo_run.glob("work_dir/*/vis_data/scalars.json")
               for line in scalars.read_text().splitlines()]
    assert all("reward_margin" in r and "reward_acc" in r for r in records if "loss" in r)  # what the charts draw
    assert records[-1]["reward_acc"] == 1.0
    report_figure(f"python -m core.smoke --method dpo (SFT base, DPO, convert, merge, chat; CPU): {seconds:.0f} s")
