"""Plotly figures of a run's scalars (no streamlit here: pages only display them).

The Train page, the Results page and run comparison all draw through this module:

- ``Curves``: a run's curves ready to draw, built record by record (raw, smoothed, throughput, the
  share of time spent loading data, memory in GiB). Each curve is downsampled as it grows: the
  minimum and maximum of each bucket of consecutive points are kept (so a spike survives), at most
  ``2 × MAX_BUCKETS`` points per curve, whatever the length of the run.
- ``RunCurves``: ``Curves`` fed by a ``ScalarsReader``; ``poll()`` costs only what was appended.
- ``scalar_figures`` (one run) and ``compare_figure`` (several runs, one key). The loss chart also
  shows the held-out loss at each checkpoint, when the run measures it, with its lowest point starred.

Text goes through ``tr`` (the page passes its translator; default English). mmengine's keys:
``loss``, ``lr``, ``grad_norm``, ``time`` (seconds per iteration), ``data_time`` and, on GPU,
``memory`` (MB of CUDA memory allocated, the peak). Preference runs (XTuner's DPO / ORPO) add
``reward_margin`` (chosen − rejected reward, with ``chosen_rewards`` / ``rejected_rewards``) and
``reward_acc`` (the share of pairs whose chosen answer wins).
"""
from __future__ import annotations

import os
from typing import Callable, Iterable, Optional

import plotly.graph_objects as go

from core.results import heldout
from core.results.metrics import ScalarsReader

Series = tuple[list[int], list[float]]
Translate = Callable[[str], str]

MAX_BUCKETS = 500  # per curve: at most 1000 points drawn
SMOOTHING = 0.1
SMOOTHED = ("loss", "grad_norm", "rate", "reward_margin", "reward_acc")  # curves drawn raw (thin) and smoothed (EMA)
# the order the charts are shown in; other numeric keys get a plain line chart after these
KNOWN = ("loss", "reward_margin", "reward_acc", "lr", "grad_norm", "time", "memory")
# shown inside another chart (data_time, rate, data_share: throughput), or not a curve
HIDDEN = ("data_time", "iter", "step", "epoch", "rate", "data_share", "heldout_loss", "heldout_s", "chosen_rewards",
          "rejected_rewards")


def _same(text: str) -> str:
    return text


def ema(values: list[float], alpha: float = SMOOTHING) -> list[float]:
    """Exponential moving average, bias-corrected so the curve starts at the first value."""
    out, avg, weight = [], 0.0, 0.0
    for v in values:
        avg = (1 - alpha) * avg + alpha * v
        weight = (1 - alpha) * weight + alpha
        out.append(avg / weight)
    return out


class Downsampler:
    """Points appended in x order, kept as the min and max of buckets of consecutive points.

    A bucket holds ``width`` points; when there are more than ``max_buckets`` buckets, neighbours
    are merged and ``width`` doubles, so appending costs O(1) on average. ``max_buckets=None``
    keeps every point.
    """

    def __init__(self, max_buckets: Optional[int] = MAX_BUCKETS):
        self.max_buckets = max_buckets
        self.width = 1
        self._buckets: list[list] = []  # [count, x_min, y_min, x_max, y_max]

    def add(self, x: int, y: float) -> None:
        buckets = self._buckets
        if buckets and buckets[-1][0] < self.width:
            b = buckets[-1]
            b[0] += 1
            if y < b[2]:
                b[1], b[2] = x, y
            elif y > b[4]:
                b[3], b[4] = x, y
            return
        buckets.append([1, x, y, x, y])
        if self.max_buckets is not None and len(buckets) > self.max_buckets:
            self._merge()

    def _merge(self) -> None:
        merged = []
        for i in range(0, len(self._buckets), 2):
            a = self._buckets[i]
            if i + 1 == len(self._buckets):
                merged.append(a)
                break
            b = self._buckets[i + 1]
            lo = a if a[2] <= b[2] else b
            hi = a if a[4] >= b[4] else b
            merged.append([a[0] + b[0], lo[1], lo[2], hi[3], hi[4]])
        self._buckets = merged
        self.width *= 2

    def points(self) -> Series:
        xs: list[int] = []
        ys: list[float] = []
        for _, x1, y1, x2, y2 in self._buckets:
            if x1 == x2:
                xs.append(x1)
                ys.append(y1)
            elif x1 < x2:
                xs += [x1, x2]
                ys += [y1, y2]
            else:
                xs += [x2, x1]
                ys += [y2, y1]
        return xs, ys


_NUMBER = (int, float)  # compared by exact type: a bool is not a number here


class Curves:
    """Every curve of one run, downsampled as records are added (see the module docstring).

    Derived curves: ``rate`` (iterations per second, from ``time``) and ``data_share`` (% of an
    iteration spent waiting for data); ``memory`` is kept in GiB (mmengine logs MB).
    """

    def __init__(self, max_buckets: Optional[int] = MAX_BUCKETS):
        self.max_buckets = max_buckets
        self.clear()

    def clear(self) -> None:
        self._raw: dict[str, Downsampler] = {}
        self._smooth: dict[str, list] = {}  # key -> [average, weight, Downsampler]

    def add(self, it: int, rec: dict) -> None:
        put = self._put
        for key, v in rec.items():
            if type(v) in _NUMBER and key != "iter" and key != "step":
                put(key, it, v / 1024 if key == "memory" else float(v))
        seconds = rec.get("time")
        if type(seconds) in _NUMBER and seconds > 0:
            put("rate", it, 1.0 / seconds)
            data = rec.get("data_time")
            if type(data) in _NUMBER:
                put("data_share", it, 100.0 * data / seconds)

    def _put(self, key: str, it: int, v: float) -> None:
        raw = self._raw.get(key)
        if raw is None:
            raw = self._raw[key] = Downsampler(self.max_buckets)
        raw.add(it, v)
        if key in SMOOTHED:
            s = self._smooth.get(key)
            if s is None:
                s = self._smooth[key] = [0.0, 0.0, Downsampler(self.max_buckets)]
            s[0] = (1 - SMOOTHING) * s[0] + SMOOTHING * v
            s[1] = (1 - SMOOTHING) * s[1] + SMOOTHING
            s[2].add(it, s[0] / s[1])

    def keys(self) -> list[str]:
        """Numeric keys seen, in first-seen order (derived curves included)."""
        return list(self._raw)

    def points(self, key: str, smoothed: bool = False, scale: float = 1.0) -> Series:
        """(iterations, values) to draw; ``scale`` multiplies the values (tokens per iteration)."""
        source = self._smooth[key][2] if smoothed and key in self._smooth else self._raw.get(key)
        if source is None:
            return [], []
        xs, ys = source.points()
        return xs, ys if scale == 1.0 else [y * scale for y in ys]

    @classmethod
    def of(cls, series: dict[str, Series], max_buckets: Optional[int] = MAX_BUCKETS) -> "Curves":
        """Curves from whole series {key: (iterations, values)} (tests, one-off figures)."""
        recs: dict[int, dict] = {}
        for key, (xs, ys) in series.items():
            for x, y in zip(xs, ys):
                recs.setdefault(x, {})[key] = y
        curves = cls(max_buckets)
        for it in sorted(recs):
            curves.add(it, recs[it])
        return curves


class RunCurves(Curves):
    """``Curves`` of a run's ``work_dir``, read incrementally; keep one per run between refreshes."""

    def __init__(self, work_dir: str | os.PathLike, max_buckets: Optional[int] = MAX_BUCKETS):
        super().__init__(max_buckets)
        self.reader = ScalarsReader(work_dir)
        self._version, self._done = self.reader.version, 0

    def poll(self) -> int:
        """Read what was appended; returns the number of new records."""
        self.reader.poll()
        if self.reader.version != self._version:  # a resume cut or a rewritten file: start over
            self.clear()
            self._version, self._done = self.reader.version, 0
        new = self.reader.items_from(self._done)
        for it, rec in new:
            self.add(it, rec)
        self._done += len(new)
        return len(new)

    def resumes(self) -> list[int]:
        return self.reader.resumes()


def _layout(fig: go.Figure, title: str, y_title: str, tr: Translate, marks: Iterable[int] = (),
            x_max: Optional[int] = None) -> go.Figure:
    fig.update_layout(
        title=title, height=300, margin=dict(l=10, r=10, t=40, b=10),
        xaxis_title=tr("iteration"), yaxis_title=y_title,
        legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"),  # above the plot
        uirevision=title,  # keep zoom and hidden traces across live updates
    )
    for it in marks:  # labelled at the bottom, inside the plot: the legend is above it
        fig.add_vline(x=it - 0.5, line_dash="dot", line_color="gray", opacity=0.6,
                      annotation_text=tr("resumed"), annotation_position="bottom right")
    if x_max:
        fig.update_xaxes(range=[0, x_max])
    return fig


def _raw_and_smoothed(fig: go.Figure, curves: Curves, key: str, name: str, tr: Translate,
                      scale: float = 1.0) -> None:
    xs, ys = curves.points(key, scale=scale)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, line=dict(width=1), opacity=0.45))
    xs, ys = curves.points(key, smoothed=True, scale=scale)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=tr("smoothed"), line=dict(width=2)))


def _line(curves: Curves, key: str, name: str) -> go.Figure:
    xs, ys = curves.points(key)
    return go.Figure(go.Scatter(x=xs, y=ys, mode="lines", name=name))


def _heldout(fig: go.Figure, curves: Curves, tr: Translate) -> None:
    """The held-out loss at each checkpoint beside the training loss, its lowest point marked."""
    xs, ys = curves.points("heldout_loss")
    if not xs:
        return
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=tr("held-out loss"),
                             line=dict(width=2, dash="dash", color="#d62728")))
    best = heldout.lowest((xs, ys))
    fig.add_trace(go.Scatter(x=[best[0]], y=[best[1]], mode="markers", name=tr("lowest held-out loss"),
                             marker=dict(symbol="star", size=14, color="#d62728")))


def throughput_label(tokens_per_iter: Optional[float], tr: Translate = _same) -> str:
    return tr("tokens/s") if tokens_per_iter else tr("iterations/s")


def _throughput(curves: Curves, tr: Translate, tokens_per_iter: Optional[float]) -> go.Figure:
    """Iterations (or tokens) per second from mmengine's ``time``; the share of time spent loading data."""
    fig = go.Figure()
    label = throughput_label(tokens_per_iter, tr)
    _raw_and_smoothed(fig, curves, "rate", label, tr, scale=tokens_per_iter or 1.0)
    xs, ys = curves.points("data_share")
    if xs:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=tr("% time loading data"), yaxis="y2",
                                 line=dict(width=1, dash="dot")))
        fig.update_layout(yaxis2=dict(overlaying="y", side="right", range=[0, 100], showgrid=False, title="%"))
    return fig


def _reward_margin(curves: Curves, tr: Translate) -> go.Figure:
    """DPO / ORPO: the reward margin (raw + smoothed), the chosen and rejected rewards behind it."""
    fig = go.Figure()
    _raw_and_smoothed(fig, curves, "reward_margin", tr("reward margin"), tr)
    for key, name in (("chosen_rewards", tr("chosen")), ("rejected_rewards", tr("rejected"))):
        xs, ys = curves.points(key)
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, line=dict(width=1, dash="dot")))
    return fig


def scalar_figures(curves: Curves, tr: Translate = _same, resumes: Iterable[int] = (), x_max: Optional[int] = None,
                   tokens_per_iter: Optional[float] = None) -> list[tuple[str, go.Figure]]:
    """(key, figure) for every scalar present: loss, learning rate, gradient norm, throughput,
    memory, then any other numeric key. ``resumes`` marks where a resume continued the run;
    ``x_max`` (the run's total iterations) fixes the x axis, so a live chart shows how far it has come."""
    keys = curves.keys()
    out: list[tuple[str, go.Figure]] = []
    for key in [k for k in KNOWN if k in keys] + [k for k in keys if k not in KNOWN and k not in HIDDEN]:
        marks: Iterable[int] = ()
        if key == "loss":
            fig = go.Figure()
            _raw_and_smoothed(fig, curves, "loss", tr("loss"), tr)
            _heldout(fig, curves, tr)
            title, y_title, marks = tr("Training loss"), tr("loss"), resumes
        elif key == "reward_margin":
            fig, title, y_title = _reward_margin(curves, tr), tr("Reward margin"), tr("chosen − rejected reward")
        elif key == "reward_acc":
            fig = go.Figure()
            _raw_and_smoothed(fig, curves, "reward_acc", tr("reward accuracy"), tr)
            fig.update_yaxes(range=[-0.05, 1.05])
            title, y_title = tr("Reward accuracy"), tr("share of pairs where chosen wins")
        elif key == "lr":
            fig, title, y_title = _line(curves, key, tr("learning rate")), tr("Learning rate"), tr("learning rate")
        elif key == "grad_norm":
            fig = go.Figure()
            _raw_and_smoothed(fig, curves, "grad_norm", tr("gradient norm"), tr)
            title, y_title = tr("Gradient norm"), tr("norm before clipping")
        elif key == "time":
            if "rate" not in keys:
                continue
            fig = _throughput(curves, tr, tokens_per_iter)
            title, y_title = tr("Throughput"), throughput_label(tokens_per_iter, tr)
        elif key == "memory":
            fig, title, y_title = _line(curves, key, tr("memory")), tr("GPU memory (peak allocated)"), "GiB"
        else:
            fig, title, y_title = _line(curves, key, key), key, key
        out.append((key, _layout(fig, title, y_title, tr, marks=marks, x_max=x_max)))
    return out


def compare_figure(runs: list[tuple[str, Curves]], key: str, title: str, y_title: str, tr: Translate = _same,
                   smoothed: bool = False, scales: Optional[list[float]] = None) -> go.Figure:
    """One key of several runs on one chart (run comparison): the smoothed curve with the raw one
    faint behind it when ``smoothed``; ``scales`` multiplies each run's values (tokens per iteration)."""
    fig = go.Figure()
    for i, (label, curves) in enumerate(runs):
        scale = scales[i] if scales else 1.0
        xs, ys = curves.points(key, scale=scale)
        if not xs:
            continue
        color = _COLORS[i % len(_COLORS)]
        if smoothed:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"{label} (raw)", showlegend=False,
                                     line=dict(width=1, color=color), opacity=0.25))
            xs, ys = curves.points(key, smoothed=True, scale=scale)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=label, line=dict(width=2, color=color)))
    return _layout(fig, title, y_title, tr)


def score_heatmap(table: dict[int, dict[int, float]], questions: list[str], iterations: list[int],
                  tr: Translate = _same) -> go.Figure:
    """Evaluation scores: one row per scored question, one column per checkpoint, 0 (red) to 1 (green)."""
    rows = sorted(table)
    labels = [tr("Q{n}").format(n=qi + 1) for qi in rows]
    z = [[table[qi].get(it) for it in iterations] for qi in rows]
    hover = [[questions[qi] if qi < len(questions) else ""] * len(iterations) for qi in rows]
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"iter {it}" for it in iterations], y=labels, zmin=0, zmax=1, colorscale="RdYlGn",
        text=[[f"{v:.0%}" if v is not None else "" for v in row] for row in z], texttemplate="%{text}",
        customdata=hover, hovertemplate="%{customdata}<br>%{x}: %{text}<extra></extra>",
        colorbar=dict(title=tr("score"))))
    fig.update_layout(title=tr("Scores by checkpoint"), height=120 + 40 * len(rows),
                      margin=dict(l=10, r=10, t=40, b=10), yaxis=dict(autorange="reversed"),
                      xaxis=dict(type="category"))
    return fig


_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
