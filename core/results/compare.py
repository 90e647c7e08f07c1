"""Runs side by side: their series (throughput derived from iteration times), overlaid Plotly
curves, and what differs between two runs' configs. No streamlit here."""
from __future__ import annotations

import difflib
from dataclasses import dataclass

import plotly.graph_objects as go

from core.results.charts import ema
from core.results.metrics import ScalarsReader
from core.train.runs import Run


@dataclass
class RunSeries:
    """Every curve of one run: {name: (iterations, values)}."""

    run_id: str
    series: dict[str, tuple[list[int], list[float]]]
    tokens_per_iter: float | None


def tokens_per_iteration(run: Run) -> float | None:
    """Average tokens per iteration: measured by the progress hook, else batch × max_length when packed."""
    p = run.progress()
    if p.get("tokens_per_s") and p.get("iters_per_s"):
        return p["tokens_per_s"] / p["iters_per_s"]
    hp = run.spec.get("hyperparams", {})
    if hp.get("pack_to_max_length") and hp.get("batch_size") and hp.get("max_length"):
        return float(hp["batch_size"] * hp["max_length"])
    return None


def run_series(run: Run, reader: ScalarsReader | None = None) -> RunSeries:
    reader = reader or ScalarsReader(run.work_dir)
    reader.poll()
    series = {k: reader.series(k) for k in ("loss", "lr", "grad_norm", "memory", "time")}
    xs, times = series.pop("time")
    per_iter = tokens_per_iteration(run)
    series["iters_per_s"] = (xs, [1.0 / t if t > 0 else 0.0 for t in times])
    if per_iter:
        series["tokens_per_s"] = (xs, [per_iter / t if t > 0 else 0.0 for t in times])
    mx, mem = series["memory"]
    series["memory"] = (mx, [m / 1024 for m in mem])  # mmengine logs MB; shown in GB
    return RunSeries(run.id, series, per_iter)


def overlay_figure(runs: list[RunSeries], key: str, title: str, y_title: str, smoothing: float | None = None,
                   log_y: bool = False) -> go.Figure:
    """One curve per run (smoothed with an EMA when ``smoothing``, the raw curve faint behind it)."""
    fig = go.Figure()
    for i, rs in enumerate(runs):
        xs, ys = rs.series.get(key, ([], []))
        if not xs:
            continue
        color = _COLORS[i % len(_COLORS)]
        if smoothing:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"{rs.run_id} (raw)", showlegend=False,
                                     line=dict(width=1, color=color), opacity=0.25))
            ys = ema(ys, smoothing)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=rs.run_id, line=dict(width=2, color=color)))
    fig.update_layout(title=title, height=320, margin=dict(l=10, r=10, t=40, b=10), xaxis_title="iteration",
                      yaxis_title=y_title, legend=dict(orientation="h", y=-0.25))
    if log_y:
        fig.update_yaxes(type="log")
    return fig


_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]


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
