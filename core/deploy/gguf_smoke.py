"""``python -m core.smoke --export gguf [--serve]``: the demo from training to llama.cpp.

Demo → train → merge (``core.smoke.run``, or the demo project a ``--workspace`` already trained) →
GGUF F16 and Q8_0 of the merged model and F16 of the base model, each exported as the app does (a
job) → each file loaded by llama.cpp and asked the demo question greedily. OK only if both fine-tuned
files answer with the demo identity and the base model's does not. ``--serve`` then serves the Q8_0
file as a job, asks it through the OpenAI HTTP API and stops it.
"""
from __future__ import annotations

import time
from pathlib import Path


def ask_gguf(path: Path, question: str, max_tokens: int = 40) -> str:
    """A greedy answer from llama.cpp with the GGUF's own chat template."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=512, verbose=False, seed=0)
    out = llm.create_chat_completion([{"role": "user", "content": question}], max_tokens=max_tokens,
                                     temperature=0.0)
    return out["choices"][0]["message"]["content"]


def trained_demo(workspace: Path, device: str | None):
    """The demo project and its merged model: the one already in ``workspace``, else trained now."""
    from core import smoke
    from core.deploy import convert
    from core.project import ProjectStore

    store = ProjectStore(workspace)
    if not store.exists("demo"):
        if smoke.run(workspace, device) != 0:
            return None, None
    project = store.load("demo")
    merged = [o for o in convert.outputs(project) if o.kind == "merged"]
    return project, (merged[0].path if merged else None)


def run_gguf(workspace: Path, device: str | None = None, serve: bool = False) -> int:
    from core import demo, jobs
    from core.deploy import gguf, serve as serving
    from core.errors import UserError

    t0 = time.monotonic()

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {msg}", flush=True)

    missing = gguf.converter_missing()
    if missing:
        say(f"GGUF SMOKE FAILED: llama.cpp is not installed ({missing}); run scripts/ensure_env.sh")
        return 1
    project, merged = trained_demo(workspace, device)
    if merged is None:
        say("GGUF SMOKE FAILED: no merged model")
        return 1
    files = {}
    for label, model, quant in (("fine-tuned F16", merged, "F16"), ("fine-tuned Q8_0", merged, "Q8_0"),
                                ("base F16", Path(project.model_path), "F16")):
        started = time.monotonic()
        gguf.start_gguf_export(model, quant, system=project.system_prompt, name="ada",
                               template=project.prompt_template)
        job_dir = gguf.gguf_job_dir(model, quant)
        job = jobs.wait_job(job_dir, timeout=900)
        if job.state != "succeeded":
            say(f"GGUF SMOKE FAILED: {label} export {job.state}: {job.reason}")
            print((job_dir / jobs.LOG_FILE).read_text(errors="replace")[-3000:])
            return 1
        files[label] = gguf.finished_gguf(job_dir)
        say(f"{label}: {files[label].stat().st_size} bytes in {time.monotonic() - started:.1f}s "
            f"(estimated {gguf.estimate_bytes(model, quant)})")
    answers = {label: ask_gguf(path, demo.DEMO_QUESTION) for label, path in files.items()}
    print(f"Q: {demo.DEMO_QUESTION}")
    for label, answer in answers.items():
        print(f"{label:16s} {answer!r}")
    ok = all(demo.DEMO_IDENTITY in a for label, a in answers.items() if label.startswith("fine")) \
        and demo.DEMO_IDENTITY not in answers["base F16"]
    if ok and serve:
        job = serving.start_serve(files["fine-tuned Q8_0"], alias="ada")
        sdir = serving.serve_dir(files["fine-tuned Q8_0"])
        try:
            job = serving.wait_ready(sdir)
            say(f"server ready on {serving.base_url(job)}")
            answer = serving.ask(job, demo.DEMO_QUESTION)
            print(f"served Q8_0       {answer!r}")
            ok = demo.DEMO_IDENTITY in answer
        except UserError as e:
            say(f"server failed: {e}")
            ok = False
        finally:
            jobs.request_stop(sdir)
            job = jobs.wait_job(sdir, timeout=60)
            say(f"server {job.state}")
    say("GGUF SMOKE OK: llama.cpp answers with the new identity" if ok else
        f"GGUF SMOKE FAILED: expected {demo.DEMO_IDENTITY!r} from the fine-tuned files only")
    return 0 if ok else 1
