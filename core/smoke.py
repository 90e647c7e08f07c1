"""Headless smoke run of the whole pipeline on the embedded demo: ``python -m core.smoke``.

Builds the tiny model and the self-introduction data, trains with LoRA through the same job
mechanism the app uses, converts and merges the last checkpoint, then asks the demo question to the
base and the fine-tuned model. Exits 0 only if the fine-tuned greedy answer contains the demo
identity and the base model's does not. Doubles as the "does my machine work?" check.

``python -m core.smoke --arch NAME`` does the same for a tiny random model of one architecture family
(``core.models.tiny``; ``--arch all``: every family), with LoRA and full fine-tuning (``--method``),
and prints one line per run: train / convert / merge / chat, the fine-tuned answer and the time.

``python -m core.smoke --multimodal``: XTuner's LLaVA, both stages, on a tiny vision demo (``core.vision.smoke``).
``python -m core.smoke --method dpo`` (or ``orpo``): the demo, then preference tuning on top of it
(``core.preference_demo``).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def run(workspace: Path, device: str | None = None, timeout_s: float = 900) -> int:
    from core.deploy import chat, convert
    from core import demo, jobs
    from core.train import runs
    from core.machine import system
    from core.project import ProjectStore

    t0 = time.monotonic()

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {msg}", flush=True)

    device = device or system.device()
    say(f"workspace {workspace}, device {device}")
    store = ProjectStore(workspace)
    project = demo.create_demo_project(store)
    say(f"demo project ready: model {project.model_path}, data {project.dataset_path}")

    run_ = runs.new_run(project, device)
    job = runs.start_training(project, run_)
    say(f"training started: run {run_.id}, supervisor pid {job.supervisor.pid if job.supervisor else '?'}")
    job = jobs.wait_job(run_.dir, timeout=timeout_s)
    if job.state != "succeeded":
        say(f"training {job.state}: {job.reason}")
        print(run_.log_path.read_text(errors="replace")[-4000:])
        return 1
    ckpts = run_.checkpoints()
    last_iter, _ = ckpts[-1]
    say(f"training succeeded: {len(ckpts)} checkpoints, last iter_{last_iter}.pth")

    cjob = convert.start_export(project, run_, last_iter, device)
    cjob = jobs.wait_job(convert.export_dir(run_, last_iter), timeout=timeout_s)
    if cjob.state != "succeeded":
        say(f"conversion {cjob.state}: {cjob.reason}")
        print((convert.export_dir(run_, last_iter) / jobs.LOG_FILE).read_text(errors="replace")[-4000:])
        return 1
    merged = convert.final_model_dir(run_, last_iter, project.method)
    say(f"converted and merged: {merged}")

    settings = chat.GenerationSettings(max_new_tokens=40)
    base = chat.load_model(project.model_path, device=device)
    tuned = chat.load_model(str(merged), device=device)
    base_answer = chat.generate(base, project.prompt_template, demo.DEMO_QUESTION, settings)
    tuned_answer = chat.generate(tuned, project.prompt_template, demo.DEMO_QUESTION, settings)
    print(f"Q: {demo.DEMO_QUESTION}")
    print(f"base model:       {base_answer!r}")
    print(f"fine-tuned model: {tuned_answer!r}")
    ok = demo.DEMO_IDENTITY in tuned_answer and demo.DEMO_IDENTITY not in base_answer
    say("SMOKE OK: the fine-tuned model has its new identity" if ok else
        f"SMOKE FAILED: expected {demo.DEMO_IDENTITY!r} in the fine-tuned answer only")
    return 0 if ok else 1


ARCH_COPIES = 240  # self-introduction records per family run: ~70-100 iterations
# R1's template has no role names or newlines: 24.6 tokens a record against Qwen2's 33.6, so 240 records pack
# into 69 iterations (Qwen2: ~95) and the answer stayed garbled; 400 give 114 (docs/models.md)
ARCH_COPIES_BY = {"r1_distill": 400}


def arch_hyperparams(method: str):
    """The demo's settings, with one evaluation at the end only (a random model's first answers are long)."""
    from core import demo

    hp = demo.demo_hyperparams()
    # fewer iterations than the demo, so a higher learning rate (full: every weight moves at lr per step)
    update = {"evaluation_freq": 1000, "save_steps": 1000, "save_total_limit": 1, "lr": 4e-3 if method != "full" else 5e-3}
    return hp.model_copy(update=update)


def run_arch(workspace: Path, arch: str, method: str, device: str, timeout_s: float = 1800) -> dict:
    """One family × method through the app's job path; the outcome of each step."""
    from core import demo, jobs
    from core.deploy import chat, convert
    from core.models import tiny
    from core.models.families import BY_KEY
    from core.project import ProjectStore
    from core.train import runs

    t0 = time.monotonic()
    family = BY_KEY[arch]
    out = {"arch": arch, "method": method, "train": "not run", "convert": "not run",
           "merge": "n/a" if method == "full" else "not run", "chat": "not run", "answer": "", "seconds": 0.0}
    if arch not in tiny.SPECS:
        out["error"] = "needs the model's own code (trust_remote_code): not available offline"
        return out
    store = ProjectStore(workspace)
    name = f"{arch}-{method}".replace("_", "-")
    project = store.create(name, method=method, prompt_template=family.template,
                           evaluation_inputs=[demo.DEMO_QUESTION], hyperparams=arch_hyperparams(method))
    model_dir = tiny.build_tiny_model(project.dir / "model", arch)
    data_path = demo.build_demo_dataset(project.data_dir / "self_intro.jsonl", copies=ARCH_COPIES_BY.get(arch, ARCH_COPIES))
    project = store.save(project.model_copy(update={"model_path": str(model_dir), "dataset_path": str(data_path)}))
    run_ = runs.new_run(project, device)
    runs.start_training(project, run_)
    job = jobs.wait_job(run_.dir, timeout=timeout_s)
    out["seconds"] = round(time.monotonic() - t0, 1)
    if job.state != "succeeded":
        out["train"] = "FAIL"
        out["error"] = f"training {job.state}: {job.reason}\n" + run_.log_path.read_text(errors="replace")[-3000:]
        return out
    out["train"] = "ok"
    last_iter, _ = run_.checkpoints()[-1]
    convert.start_export(project, run_, last_iter, device)
    cjob = jobs.wait_job(convert.export_dir(run_, last_iter), timeout=timeout_s)
    hf = convert.export_dir(run_, last_iter) / "hf"
    out["convert"] = "ok" if (hf / "adapter_config.json").is_file() or (hf / "config.json").is_file() else "FAIL"
    if method != "full":
        out["merge"] = "ok" if (convert.final_model_dir(run_, last_iter, method) / "config.json").is_file() else "FAIL"
    if cjob.state != "succeeded":
        log = (convert.export_dir(run_, last_iter) / jobs.LOG_FILE).read_text(errors="replace")[-3000:]
        out["error"] = f"conversion {cjob.state}: {cjob.reason}\n{log}"
        out["seconds"] = round(time.monotonic() - t0, 1)
        return out
    settings = chat.GenerationSettings(max_new_tokens=40)
    tuned = chat.load_model(str(convert.final_model_dir(run_, last_iter, method)), device=device)
    out["answer"] = chat.generate(tuned, project.prompt_template, demo.DEMO_QUESTION, settings)
    out["chat"] = "ok" if demo.DEMO_IDENTITY in out["answer"] else "FAIL"
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out


def run_matrix(workspace: Path, archs: list[str], methods: list[str], device: str) -> int:
    """Every arch × method; a table line per run. Exit 0 only if every run reached its new identity."""
    t0 = time.monotonic()
    results = []
    for arch in archs:
        for method in methods:
            r = run_arch(workspace, arch, method, device)
            results.append(r)
            print(f"{r['arch']:<11} {r['method']:<5} train={r['train']:<7} convert={r['convert']:<7} "
                  f"merge={r['merge']:<7} chat={r['chat']:<7} {r['seconds']:>6.1f}s  answer={r['answer']!r}",
                  flush=True)
            if r.get("error"):
                print("   " + r["error"].replace("\n", "\n   "), flush=True)
    ran = [r for r in results if r["train"] != "not run" or not r.get("error", "").startswith("needs")]
    ok = bool(ran) and all(r["chat"] == "ok" for r in ran)
    print(f"{'MATRIX OK' if ok else 'MATRIX FAILED'}: {sum(r['chat'] == 'ok' for r in ran)}/{len(ran)} runs "
          f"in {time.monotonic() - t0:.0f}s ({len(results) - len(ran)} not runnable offline)", flush=True)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    from core.models.families import FAMILIES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", help="where to build the demo project (default: a new temporary directory)")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when a GPU is found, else cpu")
    parser.add_argument("--arch", choices=[f.key for f in FAMILIES] + ["all"],
                        help="a tiny model of this family instead of the demo ('all': every family)")
    parser.add_argument("--method", choices=["lora", "full", "both", "dpo", "orpo", "qlora"], default="both",
                        help="with --arch: lora, full or both; without: dpo or orpo runs core.preference_demo; "
                             "with --multimodal: stage 2 with lora (default) or qlora (a GPU)")
    parser.add_argument("--multimodal", action="store_true",
                        help="XTuner's LLaVA (stage 1, stage 2, convert, chat with an image) on a tiny vision demo")
    parser.add_argument("--encoder", choices=["tiny", "clip-l-336"], default="tiny",
                        help="with --multimodal: the vision tower's size (clip-l-336: CLIP ViT-L/14-336's, random "
                             "weights, for a GPU)")
    parser.add_argument("--export", choices=["gguf"], help="then GGUF F16 + Q8_0 answered by llama.cpp "
                        "(core.deploy.gguf_smoke)")
    parser.add_argument("--serve", action="store_true", help="with --export gguf: and through its server")
    args = parser.parse_args(argv)
    if args.arch and args.method in ("dpo", "orpo"):
        parser.error("--method dpo / orpo runs on the demo model: leave out --arch")
    if (args.method == "qlora" or args.encoder != "tiny") and not args.multimodal:
        parser.error("--method qlora and --encoder are for --multimodal")

    def go(workspace: Path) -> int:
        if args.multimodal:
            from core.machine import system
            from core.vision import smoke

            return smoke.run(workspace, args.device or system.device(), encoder=args.encoder,
                             method="qlora" if args.method == "qlora" else "lora")
        if args.export:
            from core.deploy.gguf_smoke import run_gguf

            return run_gguf(workspace, args.device, serve=args.serve)
        if args.method in ("dpo", "orpo"):
            from core import preference_demo

            return preference_demo.run(workspace, args.method, args.device)
        if not args.arch:
            return run(workspace, args.device)
        from core.machine import system

        archs = [f.key for f in FAMILIES] if args.arch == "all" else [args.arch]
        methods = ["lora", "full"] if args.method == "both" else [args.method]
        return run_matrix(workspace, archs, methods, args.device or system.device())

    if args.workspace:
        return go(Path(args.workspace).expanduser().resolve())
    with tempfile.TemporaryDirectory(prefix="xtuner-studio-smoke-") as tmp:
        return go(Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
