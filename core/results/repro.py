"""What reproduces a run, kept with it and exported as one zip.

At creation a run writes ``repro.json`` (the exact command and environment variables, the seed, the
app's version, Python and platform, each dataset file's size and SHA-256) and ``environment.txt``
(every installed package, as ``pip freeze`` lists them). ``bundle`` zips those with ``config.py``,
``run.json``, the seed the trainer actually used (from its log, when the seed was left random) and a
README that says how to run it again.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import platform
import re
import shlex
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Optional

from core.fsutil import atomic_write_json, atomic_write_text, read_state
from core.paths import REPO_ROOT

REPRO_FILE = "repro.json"
FREEZE_FILE = "environment.txt"
_SEED = re.compile(r"\bseed: (\d+)")


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def app_version() -> str:
    """The app's git commit (``+modified`` with uncommitted changes), or ``unknown`` outside a checkout."""
    try:
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head + ("+modified" if dirty else "")) if head else "unknown"


def freeze() -> str:
    """Installed distributions as ``name==version`` lines, sorted (what ``pip freeze`` lists)."""
    names = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            names[name.lower()] = f"{name}=={dist.version}"
    return "".join(line + "\n" for _, line in sorted(names.items()))


def record(run_dir: Path, argv: list[str], env: dict[str, str], seed: Optional[int],
           datasets: list[str]) -> dict:
    """Write ``repro.json`` and ``environment.txt`` into ``run_dir``; returns what was recorded."""
    files = []
    for path in datasets:
        p = Path(path)
        files.append({"path": str(p), "bytes": p.stat().st_size, "sha256": sha256(p)} if p.is_file()
                     else {"path": str(p), "missing": True})
    info = {
        "app_version": app_version(),
        "created_at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "argv": argv,
        "command": shlex.join(argv),
        "env": env,
        "seed": seed,
        "datasets": files,
    }
    atomic_write_text(run_dir / FREEZE_FILE, freeze())
    atomic_write_json(run_dir / REPRO_FILE, info)
    return info


def seed_used(work_dir: Path) -> Optional[int]:
    """The seed mmengine logged at the run's first start (a random one when the config left it empty)."""
    for log in sorted(Path(work_dir).glob("*/*.log")):
        try:
            with open(log, encoding="utf-8", errors="replace") as f:
                m = _SEED.search(f.read(256 * 1024))
        except OSError:
            continue
        if m:
            return int(m.group(1))
    return None


README = """XTuner Studio run {run}: what reproduces it.

  config.py         the XTuner config the run trained with
  run.json          the settings it was made from (method, model, data, hyperparameters, launch plan)
  repro.json        the exact command and environment variables, the seed, the app's version, Python,
                    the platform, and each dataset file's size and SHA-256
  environment.txt   every package installed in the environment (pip freeze)

Seed: {seed}
Dataset(s): {datasets}

To run it again: install the packages (pip install -r environment.txt, torch from the index its
version names), check the dataset's SHA-256 (sha256sum FILE), put config.py where repro.json's
command expects it, and run from the app's repository (cwd) with repro.json's env set:

  {command}
"""


def bundle(run_dir: Path) -> bytes:
    """The run's reproducibility archive (zip) as bytes."""
    run_dir = Path(run_dir)
    info = read_state(run_dir / REPRO_FILE)
    info = info if isinstance(info, dict) else {}
    seed = info.get("seed")
    if seed is None:
        seed = seed_used(run_dir / "work_dir")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in ("config.py", "run.json", REPRO_FILE, FREEZE_FILE):
            if (run_dir / name).is_file():
                z.write(run_dir / name, f"{run_dir.name}/{name}")
        datasets = ", ".join(f"{d['path']} (sha256 {d.get('sha256', 'missing')})" for d in info.get("datasets", []))
        z.writestr(f"{run_dir.name}/README.txt", README.format(
            run=run_dir.name, seed=seed if seed is not None else "not recorded", datasets=datasets or "not recorded",
            command=info.get("command", "not recorded (a run made before the app kept it)")))
    return buf.getvalue()

