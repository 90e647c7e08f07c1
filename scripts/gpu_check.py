"""GPU checks for docs/gpu.md: ``python scripts/gpu_check.py OUT_DIR``.

On a machine with an NVIDIA GPU, runs the environment probe, the smoke pipeline on CUDA, and the
demo model through LoRA / QLoRA / full fine-tuning, plain and under DeepSpeed (through torchrun,
XTuner's launch form), each as a real XTuner training; writes ``OUT_DIR/gpu_check.json`` and
each run's log, and prints one line per check.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core import demo, runs  # noqa: E402
from core.metrics import ScalarsReader  # noqa: E402
from core.project import ProjectStore  # noqa: E402

TRAININGS = [
    # (name, method, deepspeed config or None, launch through torchrun)
    ("lora", "lora", None, False),
    ("qlora", "qlora", None, False),
    ("full", "full", None, False),
    ("lora-torchrun-1gpu", "lora", None, True),
    ("qlora-zero2", "qlora", "deepspeed_zero2", True),
    ("lora-zero3", "lora", "deepspeed_zero3", True),
    ("full-zero3-offload", "full", "deepspeed_zero3_offload", True),
]


def run(cmd: list[str], log: Path, env: dict | None = None, timeout: int = 600) -> tuple[int, float]:
    t0 = time.monotonic()
    with open(log, "wb") as f:
        try:
            rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = -999
    return rc, round(time.monotonic() - t0, 1)


def tail(path: Path, n: int = 25) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def main() -> int:
    out = Path(sys.argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"checks": []}

    def record(name: str, ok: bool, **info) -> None:
        results["checks"].append({"name": name, "ok": ok, **info})
        print(f"{'OK  ' if ok else 'FAIL'} {name}: {json.dumps(info)[:300]}", flush=True)
        (out / "gpu_check.json").write_text(json.dumps(results, indent=1))

    rc, secs = run([sys.executable, "-m", "core.doctor", "probe", str(out / "probe.json")], out / "probe.log")
    probe = json.loads((out / "probe.json").read_text()) if (out / "probe.json").exists() else {}
    record("doctor probe", rc == 0, seconds=secs,
           checks={c["name"]: (c["ok"], c["detail"][:160]) for c in probe.get("checks", [])})

    rc, secs = run([sys.executable, "-m", "core.smoke", "--device", "cuda"], out / "smoke.log")
    record("smoke (cuda)", rc == 0, seconds=secs, tail=tail(out / "smoke.log", 4))

    ws = Path("/tmp/gpu-check-ws")
    store = ProjectStore(ws)
    base = demo.create_demo_project(store)
    for name, method, ds, use_torchrun in TRAININGS:
        project = store.save(base.model_copy(update={"method": method}))
        run_ = runs.new_run(project, "cuda")
        argv = runs.train_argv(run_)
        if use_torchrun:
            argv = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "--master-port",
                    "29511", "-m", "core.xtuner_entry"] + argv[argv.index("core.xtuner_entry") + 1:] + ["--launcher", "pytorch"]
        if ds:
            argv += ["--deepspeed", ds]
        env = dict(os.environ, **runs.training_env(project))
        log = out / f"train-{name}.log"
        rc, secs = run(argv, log, env)
        reader = ScalarsReader(run_.work_dir)
        reader.poll()
        _, loss = reader.series("loss")
        _, mem = reader.series("memory")
        ckpts = [p.name for _, p in run_.checkpoints()] or sorted(x.name for x in run_.work_dir.glob("iter_*"))
        record(f"train {name}", rc == 0 and bool(loss), seconds=secs, iterations=len(loss),
               first_loss=loss[0] if loss else None, last_loss=loss[-1] if loss else None,
               peak_memory_mb=max(mem) if mem else None, checkpoints=ckpts[-2:],
               tail=None if rc == 0 else tail(log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
