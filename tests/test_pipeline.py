"""End to end on the tiny model, without the UI: train → convert → merge → chat (python -m core.smoke).

The session runs it once (the ``smoke_run`` fixture) and shares the trained workspace with every test
that needs a finished run; this test checks what the run printed and left."""
import pytest


@pytest.mark.slow
def test_smoke_pipeline_teaches_the_demo_identity(smoke_run):
    assert smoke_run.returncode == 0, smoke_run.stdout[-4000:] + smoke_run.stderr[-4000:]
    assert "SMOKE OK" in smoke_run.stdout
    tuned = next(line for line in smoke_run.stdout.splitlines() if line.startswith("fine-tuned model:"))
    assert "Ada's assistant" in tuned
    (run_dir,) = smoke_run.run_dirs
    merged = next(run_dir.glob("exports/iter_*/merged"))
    assert (merged / "config.json").is_file() and list(merged.glob("*.safetensors"))
