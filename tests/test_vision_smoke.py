"""XTuner's LLaVA end to end on the tiny vision demo (``python -m core.smoke --multimodal``): stage 1 →
stage 2 → pth_to_hf + merge + transformers folder → answers about held-out pictures, fine-tuned vs base."""
import json
import re
from pathlib import Path

import pytest


@pytest.mark.slow
def test_the_multimodal_smoke_names_colour_and_shape_of_held_out_pictures(vision_smoke_run, report_figure):
    out = vision_smoke_run  # `python -m core.smoke --multimodal`, run once for the session (tests/conftest.py)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "MULTIMODAL SMOKE OK" in out.stdout
    tuned, base, n = map(int, re.search(r"held-out accuracy: fine-tuned (\d+)/(\d+), base (\d+)/\2",
                                         out.stdout).group(1, 3, 2))
    assert n >= 5 and tuned * 2 > n and base * 2 <= n
    assert f"transformers LLaVA folder (hf_llava/): the fine-tuned answer for {n}/{n}" in out.stdout
    runs = sorted((out.workspace / "projects" / "llava-demo" / "runs").iterdir())
    assert [r.name.rsplit("-", 1)[-1] for r in runs] == ["stage1", "stage2"]
    export = next(runs[1].glob("exports/iter_*"))
    assert (export / "hf" / "projector" / "config.json").is_file() and (export / "hf" / "llm_adapter").is_dir()
    assert (export / "hf" / "visual_encoder_adapter").is_dir()  # stage 2 also trains LoRA on the encoder
    assert (export / "merged" / "config.json").is_file()
    assert (export / "hf_llava" / "config.json").is_file() and (export / "hf_llava" / "processor_config.json").is_file()
    # both stages asked about two held-out pictures at their checkpoints (XTuner's EvaluateChatHook)
    from core.results import evals
    from core.results.metrics import eval_outputs
    from core.vision.demo import QUESTION

    spec = json.loads((runs[1] / "run.json").read_text())["spec"]
    assert spec["evaluation_inputs"] == [QUESTION] * 2 and len(set(spec["evaluation_images"])) == 2
    assert all(Path(p).is_file() for p in spec["evaluation_images"])
    assert eval_outputs(runs[0] / "work_dir"), "stage 1 wrote no evaluation outputs"
    answers = evals.timeline(runs[1] / "work_dir", "qwen_chat", spec["evaluation_inputs"], images=True)
    last = max(int(p.stem.removeprefix("iter_")) for p in (runs[1] / "work_dir").glob("iter_*.pth"))
    assert last in answers and len(answers[last]) == 2, answers
    assert all(a.strip() for a in answers[last]), answers
    seconds = float(re.findall(r"^\[\s*([\d.]+)s\]", out.stdout, re.M)[-1])
    report_figure(f"multimodal smoke: {seconds:.0f} s, held-out accuracy fine-tuned {tuned}/{n}, "
                  f"base {base}/{n}; stage-2 evaluation answers at iter {last}: {answers[last]}")


def test_qlora_stage_2_on_a_cpu_is_refused_in_words(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "core.smoke", "--multimodal", "--method", "qlora", "--device", "cpu",
                          "--workspace", str(tmp_path)], cwd=Path(__file__).resolve().parent.parent,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr, out.stdout + out.stderr
    assert "stage 2 cannot start: QLoRA" in out.stdout, out.stdout
