"""A run's curves on a page: one incremental ``RunCurves`` per run and tab session, drawn two per row.

Train, Results and run comparison all go through here, so every refresh reads only the new
scalars and draws the same downsampled, translated figures (``core.results.charts``)."""
from __future__ import annotations

import streamlit as st

from core.results import charts, compare, heldout
from core.train.runs import Run
from ui.i18n import t


def curves_of(run: Run) -> charts.RunCurves:
    """The run's curves, polled: kept in the session, so a refresh reads only what was appended."""
    key = f"curves:{run.work_dir}"
    curves = st.session_state.get(key)
    if curves is None:
        curves = st.session_state[key] = charts.RunCurves(run.work_dir)
    curves.poll()
    return curves


def show(run: Run, key: str, x_max: int | None = None) -> bool:
    """Draw every chart of ``run``; False when nothing was logged yet."""
    curves = curves_of(run)
    figures = charts.scalar_figures(curves, tr=t, resumes=curves.resumes(), x_max=x_max,
                                    tokens_per_iter=compare.tokens_per_iteration(run))
    for i in range(0, len(figures), 2):
        cols = st.columns(2)
        for col, (name, fig) in zip(cols, figures[i:i + 2]):
            col.plotly_chart(fig, key=f"{key}_{name}")
    heldout_note(curves)
    return bool(figures)


def heldout_note(curves: charts.RunCurves) -> None:
    """The checkpoint with the lowest held-out loss, and over-fitting in words when it shows."""
    points = curves.reader.series("heldout_loss")
    best = heldout.lowest(points)
    if best is None:
        return
    st.caption(t("Lowest held-out loss: {loss:.4f} at iter {iteration}.", loss=best[1], iteration=best[0]))
    over = heldout.overfitting(points, curves.reader.series("loss"))
    if over is not None:
        st.warning(t(heldout.E_OVERFIT, start=over.start, end=over.end), icon=":material/trending_up:")


def compare_runs(runs: list[Run], key: str) -> None:
    """Loss, learning rate, gradient norm, throughput (and held-out loss, when measured) of several runs."""
    pairs = [(r.id, curves_of(r)) for r in runs]
    per_iter = [compare.tokens_per_iteration(r) for r in runs]
    tokens = all(per_iter)
    rows = [("loss", t("Loss (smoothed)"), t("loss"), True, None),
            ("lr", t("Learning rate"), t("learning rate"), False, None),
            ("grad_norm", t("Gradient norm"), t("norm before clipping"), False, None),
            ("rate", t("Throughput"), charts.throughput_label(per_iter[0] if tokens else None, t), False,
             per_iter if tokens else None)]
    if any(curves.points("heldout_loss")[0] for _, curves in pairs):
        rows.append(("heldout_loss", t("Held-out loss"), t("loss"), False, None))
    for i in range(0, len(rows), 2):
        cols = st.columns(2)
        for col, (name, title, y_title, smoothed, scales) in zip(cols, rows[i:i + 2]):
            col.plotly_chart(charts.compare_figure(pairs, name, title, y_title, tr=t, smoothed=smoothed, scales=scales),
                             key=f"{key}_{name}")
