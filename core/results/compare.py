"""Runs side by side: tokens per iteration (to show throughput in tokens/s) and what differs between
two runs' configs; the curves are drawn by ``charts.compare_figure``. No streamlit here."""
from __future__ import annotations

import difflib

from core.train.runs import Run


def tokens_per_iteration(run: Run) -> float | None:
    """Average tokens per iteration: measured by the progress hook, else batch × max_length when packed."""
    p = run.progress()
    if p.get("tokens_per_s") and p.get("iters_per_s"):
        return p["tokens_per_s"] / p["iters_per_s"]
    hp = run.spec.get("hyperparams", {})
    if hp.get("pack_to_max_length") and hp.get("batch_size") and hp.get("max_length"):
        return float(hp["batch_size"] * hp["max_length"])
    return None


def flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


_NOT_CHOICES = {"progress_file", "stop_file"}  # per-run paths, always different


def spec_diff(a: Run, b: Run) -> list[tuple[str, object, object]]:
    """(setting, value in a, value in b) for every choice that differs between two runs."""
    fa = flatten(a.spec)
    fb = flatten(b.spec)
    fa["device"], fb["device"] = a.info.get("device"), b.info.get("device")
    keys = sorted(set(fa) | set(fb))
    return [(k, fa.get(k), fb.get(k)) for k in keys if k not in _NOT_CHOICES and fa.get(k) != fb.get(k)]


def config_diff(a: Run, b: Run, context: int = 2) -> str:
    """Unified diff of the two generated config.py files."""
    ta = a.config_path.read_text(encoding="utf-8").splitlines(keepends=True)
    tb = b.config_path.read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(difflib.unified_diff(ta, tb, fromfile=f"{a.id}/config.py", tofile=f"{b.id}/config.py", n=context))
