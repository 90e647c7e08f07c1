"""Evaluation questions and the system prompt reach XTuner's real EvaluateChatHook exactly as typed."""
import pytest

from core import jobs
from core.train import runs
from core.demo import create_demo_project
from core.results.metrics import eval_outputs
from core.project import ProjectStore
from core.data.templates import format_prompt

pytestmark = pytest.mark.slow
SYSTEM = 'Answer as {name} would: "quotes", braces {}, {lr}\n__import__("os")'
QUESTIONS = ["Who are you? {0} {lr}", 'Line one\nline "two" \\n'] + [f"q{i}" for i in range(8)]


def test_typed_text_reaches_the_evaluation_hook_verbatim(tmp_path):
    store = ProjectStore(tmp_path)
    project = create_demo_project(store)
    hp = project.hyperparams.model_copy(update={"max_epochs": 1, "evaluation_freq": 50, "save_steps": 50})
    project = store.save(project.model_copy(update={
        "hyperparams": hp, "system_prompt": SYSTEM, "evaluation_inputs": QUESTIONS}))
    run = runs.new_run(project, "cpu")
    runs.start_training(project, run)
    job = jobs.wait_job(run.dir, timeout=1500)
    assert job.state == "succeeded", run.log_path.read_text()[-3000:]
    answers = eval_outputs(run.work_dir)
    assert answers, "XTuner wrote evaluation outputs"
    last = answers[max(answers)]
    assert len(last) == 10
    for question, text in zip(QUESTIONS, last):
        assert text.startswith(format_prompt("qwen_chat", question, system=SYSTEM)), text[:300]
