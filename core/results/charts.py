"""Plotly figures of a run's scalars (no streamlit here: pages only display them).

Every function takes plain lists (iterations, values), so the Train and Results pages and run
comparisons share them. Text goes through ``tr`` (the UI passes its translator; default English).
mmengine's keys: ``loss``, ``lr``, ``grad_norm``, ``time`` (seconds per iteration), ``data_time``
and, on GPU, ``memory`` (MB of CUDA memory allocated, the peak).
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional

import plotly.graph_objects as go

Series = tuple[list[int], list[float]]
Translate = Callable[[str], str]


def _same(text: str) -> str:
    return text


def ema(values: list[float], alpha: float = 0.1) -> list[float]:
    """Exponential moving average, bias-corrected so the curve starts at the first value."""
    out, avg, weight = [], 0.0, 0.0
    for v in values:
        avg = (1 - alpha) * avg + alpha * v
        weight = (1 - alpha) * weight + alpha
        out.append(avg / weight)
    return out


def _layout(fig: go.Figure, title: str, y_title: str, tr: Translate, log_y: bool = False,
            marks: Iterable[int] = ()) -> go.Figure:
    fig.update_layout(
        title=title, height=300, margin=dict(l=10, r=10, t=40, b=10),
        xaxis_title=tr("iteration"), yaxis_title=y_title,
        legend=dict(orientation="h", y=1.02, x=1, xanchor="right"),
        uirevision=title,  # keep zoom and hidden traces across live updates
    )
    if log_y:
        fig.update_yaxes(type="log")
    for it in marks:
        fig.add_vline(x=it - 0.5, line_dash="dot", line_color="gray", opacity=0.6,
                      annotation_text=tr("resumed"), annotation_position="top left")
    return fig


def loss_figure(iters: list[int], loss: list[float], smoothing: float = 0.1, tr: Translate = _same,
                resumes: Iterable[int] = (), title: Optional[str] = None) -> go.Figure:
    """Loss, raw (thin) and smoothed (EMA); dotted lines where a resume continued the run."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=iters, y=loss, mode="lines", name=tr("loss"), line=dict(width=1), opacity=0.45))
    if loss:
        fig.add_trace(go.Scatter(x=iters, y=ema(loss, smoothing), mode="lines", name=tr("smoothed"),
                                 line=dict(width=2)))
    return _layout(fig, title or tr("Training loss"), tr("loss"), tr, marks=resumes)


def line_figure(iters: list[int], values: list[float], title: str, y_title: str, name: str | None = None,
                tr: Translate = _same, log_y: bool = False) -> go.Figure:
    fig = go.Figure(go.Scatter(x=iters, y=values, mode="lines", name=name or y_title))
    return _layout(fig, title, y_title, tr, log_y=log_y)


def lr_figure(iters: list[int], lr: list[float], tr: Translate = _same) -> go.Figure:
    return line_figure(iters, lr, tr("Learning rate"), tr("learning rate"), tr=tr)


def grad_norm_figure(iters: list[int], norm: list[float], tr: Translate = _same) -> go.Figure:
    fig = go.Figure(go.Scatter(x=iters, y=norm, mode="lines", name=tr("gradient norm"), line=dict(width=1),
                               opacity=0.5))
    if norm:
        fig.add_trace(go.Scatter(x=iters, y=ema(norm), mode="lines", name=tr("smoothed"), line=dict(width=2)))
    return _layout(fig, tr("Gradient norm"), tr("norm before clipping"), tr)


def memory_figure(iters: list[int], memory_mb: list[float], tr: Translate = _same) -> go.Figure:
    return line_figure(iters, [m / 1024 for m in memory_mb], tr("GPU memory (peak allocated)"), "GiB",
                       name=tr("memory"), tr=tr)


def throughput_figure(iters: list[int], seconds_per_iter: list[float], data_seconds: Series | None = None,
                      tr: Translate = _same) -> go.Figure:
    """Iterations per second from mmengine's ``time``; with ``data_time``, the share spent waiting for data."""
    rate = [1.0 / s if s > 0 else None for s in seconds_per_iter]
    fig = go.Figure(go.Scatter(x=iters, y=rate, mode="lines", name=tr("iterations/s"), line=dict(width=1),
                               opacity=0.5))
    clean = [r for r in rate if r is not None]
    if clean and len(clean) == len(rate):
        fig.add_trace(go.Scatter(x=iters, y=ema(clean), mode="lines", name=tr("smoothed"), line=dict(width=2)))
    if data_seconds is not None and data_seconds[0]:
        by_iter = dict(zip(iters, seconds_per_iter))
        share = [(x, 100.0 * d / by_iter[x]) for x, d in zip(*data_seconds) if by_iter.get(x)]
        if share:
            fig.add_trace(go.Scatter(x=[x for x, _ in share], y=[s for _, s in share], mode="lines",
                                     name=tr("% time loading data"), yaxis="y2", line=dict(width=1, dash="dot")))
            fig.update_layout(yaxis2=dict(overlaying="y", side="right", range=[0, 100], showgrid=False,
                                          title="%"))
    return _layout(fig, tr("Throughput"), tr("iterations/s"), tr)


# the order the charts are shown in; other numeric keys get a plain line chart after these
KNOWN = ("loss", "lr", "grad_norm", "time", "memory")
HIDDEN = ("data_time", "iter", "step", "epoch")  # shown inside another chart, or not a curve


def scalar_figures(series: Callable[[str], Series], keys: Iterable[str], tr: Translate = _same,
                   resumes: Iterable[int] = (), x_max: Optional[int] = None) -> list[tuple[str, go.Figure]]:
    """(key, figure) for every scalar present: loss, learning rate, gradient norm, throughput,
    memory, then any other numeric key. ``series(key)`` gives (iterations, values); ``x_max`` (the
    run's total iterations) fixes the x axis, so a live chart also shows how far the run has come."""
    keys = list(keys)
    out: list[tuple[str, go.Figure]] = []
    for key in [k for k in KNOWN if k in keys] + [k for k in keys if k not in KNOWN and k not in HIDDEN]:
        xs, ys = series(key)
        if not xs:
            continue
        if key == "loss":
            fig = loss_figure(xs, ys, tr=tr, resumes=resumes)
        elif key == "lr":
            fig = lr_figure(xs, ys, tr=tr)
        elif key == "grad_norm":
            fig = grad_norm_figure(xs, ys, tr=tr)
        elif key == "time":
            fig = throughput_figure(xs, ys, series("data_time") if "data_time" in keys else None, tr=tr)
        elif key == "memory":
            fig = memory_figure(xs, ys, tr=tr)
        else:
            fig = line_figure(xs, ys, key, key, tr=tr)
        if x_max:
            fig.update_xaxes(range=[0, x_max])
        out.append((key, fig))
    return out


def overlay_figure(curves: dict[str, Series], title: str, y_title: str, smoothing: float | None = 0.1,
                   tr: Translate = _same) -> go.Figure:
    """Several runs' curves of one key on one chart (run comparison); smoothed when ``smoothing``."""
    fig = go.Figure()
    for label, (xs, ys) in curves.items():
        fig.add_trace(go.Scatter(x=xs, y=ema(ys, smoothing) if smoothing and ys else ys, mode="lines", name=label))
    return _layout(fig, title, y_title, tr)
