"""The demo's preference set and the preference smoke run: ``python -m core.smoke --method dpo|orpo``.

The demo's supervised run teaches the tiny model its first identity ("I am Ada's assistant…"): that is
the *base identity*, the ``rejected`` answer of every pair; a new identity (Grace's) is ``chosen``.

The smoke run does what a person does in the app: a supervised run, convert and merge, use the merged
model as the base model, train DPO or ORPO on the preference set, convert and merge again, then ask the
demo question. Exit 0 only if the base answers with the base identity and the preference-tuned model
with the new one. DPO chooses between answers a model can already give (it does not teach new words:
from a model that never saw "Grace", DPO wins its margin on the words after the name and the answer
falls apart), so the smoke run's supervised data answers as Ada's assistant three times in four and as
Grace's once: the base answers as Ada's, and Grace's is the answer DPO has to prefer.
"""
from __future__ import annotations

import time
from pathlib import Path

from core import demo

NEW_NAME = "Grace"
NEW_IDENTITY = f"{NEW_NAME}'s assistant"
PREFERENCE_FILE = "identity_pairs.preference.jsonl"


def base_identity_records(copies: int = 400) -> list[dict]:
    """The smoke run's supervised data: Ada's identity three times in four, Grace's once."""
    answers = [demo.self_intro_answer(demo.DEMO_NAME)] * 3 + [demo.self_intro_answer(NEW_NAME)]
    return demo.self_intro_records(copies=copies, answers=answers)


def preference_records(copies: int = 100) -> list[dict]:
    """XTuner's preference pairs: the new identity chosen, the base (demo) identity rejected."""
    return [{"prompt": [{"role": "user", "content": demo.QUESTIONS[i % len(demo.QUESTIONS)]}],
             "chosen": [{"role": "assistant", "content": demo.self_intro_answer(NEW_NAME)}],
             "rejected": [{"role": "assistant", "content": demo.self_intro_answer(demo.DEMO_NAME)}]}
            for i in range(copies)]


def build_preference_dataset(path: str | Path, copies: int = 100) -> Path:
    return demo.write_jsonl(preference_records(copies), path)


def preference_hyperparams():
    """The demo's settings for the preference run: one pass over the pairs at a gentler learning rate
    (at the SFT demo's 3e-3 DPO's margin saturates within 20 iterations and the answers fall apart)."""
    return demo.demo_hyperparams().model_copy(update={"lr": 5e-4, "max_epochs": 1, "save_steps": 25,
                                                      "evaluation_freq": 25})


def _train_convert(project, device: str, say, timeout_s: float):
    """Train ``project`` through the app's job path, convert and merge its last checkpoint; the model dir."""
    from core import jobs
    from core.deploy import convert
    from core.train import runs

    run_ = runs.new_run(project, device)
    runs.start_training(project, run_)
    job = jobs.wait_job(run_.dir, timeout=timeout_s)
    if job.state != "succeeded":
        say(f"{project.objective} training {job.state}: {job.reason}")
        print(run_.log_path.read_text(errors="replace")[-4000:])
        return None
    last_iter, _ = run_.checkpoints()[-1]
    say(f"{project.objective} training succeeded: run {run_.id}, last iter_{last_iter}.pth")
    convert.start_export(project, run_, last_iter, device)
    cjob = jobs.wait_job(convert.export_dir(run_, last_iter), timeout=timeout_s)
    if cjob.state != "succeeded":
        say(f"conversion {cjob.state}: {cjob.reason}")
        print((convert.export_dir(run_, last_iter) / jobs.LOG_FILE).read_text(errors="replace")[-4000:])
        return None
    merged = convert.final_model_dir(run_, last_iter, project.method)
    say(f"converted and merged: {merged}")
    return merged


def run(workspace: Path, objective: str = "dpo", device: str | None = None, timeout_s: float = 900,
        base_model: Path | None = None) -> int:
    """The preference smoke run (see the module docstring); prints what it does and its time.
    ``base_model``: a merged model made by an earlier run of the supervised part."""
    from core.deploy import chat
    from core.machine import system
    from core.project import ProjectStore

    t0 = time.monotonic()

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {msg}", flush=True)

    device = device or system.device()
    store = ProjectStore(workspace)
    project = demo.create_demo_project(store)
    say(f"workspace {workspace}, device {device}; demo project ready")
    if base_model is None:  # the base identity: Ada's assistant (Grace's a less likely answer)
        data = demo.write_jsonl(base_identity_records(), project.data_dir / "base_identity.jsonl")
        project = store.save(project.model_copy(update={"dataset_path": str(data)}))
        base_model = _train_convert(project, device, say, timeout_s)
    if base_model is None:
        return 1
    project = store.save(project.model_copy(update={"model_path": str(base_model), "objective": objective,
                                                    "hyperparams": preference_hyperparams()}))
    tuned_model = _train_convert(project, device, say, timeout_s)
    if tuned_model is None:
        return 1
    settings = chat.GenerationSettings(max_new_tokens=40)
    base_answer = chat.generate(chat.load_model(str(base_model), device=device), project.prompt_template,
                                demo.DEMO_QUESTION, settings)
    tuned_answer = chat.generate(chat.load_model(str(tuned_model), device=device), project.prompt_template,
                                 demo.DEMO_QUESTION, settings)
    print(f"Q: {demo.DEMO_QUESTION}")
    print(f"base model (SFT): {base_answer!r}")
    print(f"{objective} model:       {tuned_answer!r}")
    ok = (demo.DEMO_IDENTITY in base_answer and NEW_IDENTITY in tuned_answer
          and demo.DEMO_IDENTITY not in tuned_answer)
    say(f"SMOKE OK: the {objective} model prefers its new identity" if ok else
        f"SMOKE FAILED: expected {demo.DEMO_IDENTITY!r} from the base and {NEW_IDENTITY!r} from the {objective} model")
    return 0 if ok else 1
