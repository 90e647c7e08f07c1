"""Plotly figures of a run's scalars (no streamlit here: pages only display them)."""
from __future__ import annotations

import plotly.graph_objects as go


def ema(values: list[float], alpha: float = 0.1) -> list[float]:
    """Exponential moving average, bias-corrected so the curve starts at the first value."""
    out, avg, weight = [], 0.0, 0.0
    for v in values:
        avg = (1 - alpha) * avg + alpha * v
        weight = (1 - alpha) * weight + alpha
        out.append(avg / weight)
    return out


def _layout(fig: go.Figure, title: str, y_title: str, log_y: bool = False) -> go.Figure:
    fig.update_layout(
        title=title, height=300, margin=dict(l=10, r=10, t=40, b=10),
        xaxis_title="iteration", yaxis_title=y_title, legend=dict(orientation="h", y=1.02, x=1, xanchor="right"),
    )
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def loss_figure(iters: list[int], loss: list[float], smoothing: float = 0.1) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=iters, y=loss, mode="lines", name="loss", line=dict(width=1), opacity=0.45))
    if loss:
        fig.add_trace(go.Scatter(x=iters, y=ema(loss, smoothing), mode="lines", name="smoothed", line=dict(width=2)))
    return _layout(fig, "Training loss", "loss")


def line_figure(iters: list[int], values: list[float], title: str, y_title: str, name: str | None = None) -> go.Figure:
    fig = go.Figure(go.Scatter(x=iters, y=values, mode="lines", name=name or y_title))
    return _layout(fig, title, y_title)
