"""The run queue on the Train page: "Add to queue" beside Start, a sweep over a few values of learning
rate / epochs / LoRA rank, and the queue itself (state, reorder, remove, pause), refreshed while it moves.
The queue is the workspace's (core.train.queue): entries of every project share the GPU set."""
from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st
from pydantic import ValidationError

from core.errors import UserError
from core.train import queue
from core.train.hyperparams import settings
from ui import job_status
from ui.errors import describe, show_error
from ui.i18n import state_label, t


def add_button(project, device: str, disabled: bool) -> None:
    """"Add to queue": this project as it is now, trained when the runs before it are done."""
    if st.button(t("Add to queue"), icon=":material/playlist_add:", key="queue_add", disabled=disabled,
                 help=t("Queues a run with the current settings: it starts by itself once the GPUs are free and "
                        "the runs before it are done, with or without a page open.")):
        try:
            queue.add(project, device)
        except (UserError, ValidationError, OSError) as e:
            show_error(e)
        else:
            st.toast(t("Queued: it starts when the GPUs are free."))


def sweep_form(project, device: str, disabled: bool) -> None:
    """A few values per setting: one queued run per combination, in one step."""
    names = [s for s in settings() if s.name in queue.SWEEP_SETTINGS and s.applies_to(project.method)]
    with st.expander(t("Sweep: queue several runs at once"), icon=":material/tune:"):
        with st.form("queue_sweep"):
            cols = st.columns(len(names))
            texts = {s.name: cols[i].text_input(t(s.label), key=f"sweep_{s.name}",
                                                placeholder=str(getattr(project.hyperparams, s.name)),
                                                help=t("Values separated by commas; empty: the project's value."))
                     for i, s in enumerate(names)}
            go = st.form_submit_button(t("Queue the sweep"), icon=":material/playlist_add:", disabled=disabled)
        st.caption(t("Every combination becomes one queued run (at most {n}); the other settings are the project's. "
                     "Results → Compare runs shows the sweep as one table.", n=queue.MAX_SWEEP_RUNS))
    if go:
        try:
            grid = {name: queue.parse_values(name, text) for name, text in texts.items()}
            entries = queue.add(project, device, queue.sweep_values(grid))
        except (UserError, ValidationError, OSError) as e:
            show_error(e)
        else:
            st.success(t("{n} runs queued.", n=len(entries)))


def _state(e: queue.Entry) -> str:
    if e.state == "pending":
        return t("Waiting")
    if e.state == "refused":
        return ":orange[" + t("Refused") + "]"
    if e.state == "done":
        return state_label(e.outcome, title=True) if e.outcome != "missing" else t("Run deleted")
    return state_label("queued" if e.state == "starting" else "running", title=True)


def _entry_row(project, i: int, e: queue.Entry, first: bool, last: bool) -> None:
    c = st.columns([1, 6, 3, 1, 1, 1], vertical_alignment="center")
    c[0].markdown(f"**{i}**")
    what = f"`{e.project}` · " + (e.label or t("as configured"))
    if e.run:
        what += " · [" + e.run + "](results?" + urlencode({"project": e.project, "run": e.run}) + ")"
    c[1].markdown(what)
    c[2].markdown(_state(e))
    if e.state == "refused" and e.error:
        c[1].caption(describe(e.error)[0])
    if e.state != "pending" and e.state in queue.WAITING:
        return
    try:
        if e.state == "pending" and c[3].button("", icon=":material/arrow_upward:", key=f"queue_up_{e.id}",
                                                disabled=first, help=t("Earlier")):
            queue.move(project.workspace, e.id, -1)
            st.rerun()
        if e.state == "pending" and c[4].button("", icon=":material/arrow_downward:", key=f"queue_down_{e.id}",
                                                disabled=last, help=t("Later")):
            queue.move(project.workspace, e.id, 1)
            st.rerun()
        if c[5].button("", icon=":material/close:", key=f"queue_remove_{e.id}", help=t("Remove from the queue")):
            queue.remove(project.workspace, e.id)
            st.rerun()
    except queue.QueueError as err:  # it started meanwhile
        show_error(err)


def _draw(project) -> bool:
    """The queue's entries and its controls; True while entries wait."""
    try:
        q = queue.read_queue(project.workspace)
    except queue.QueueError as e:
        show_error(e)
        return False
    if not q.entries:
        return False
    st.subheader(t("Run queue"))
    if q.paused:
        st.info(t("Paused: no queued run starts; a started one trains on."), icon=":material/pause_circle:")
    elif q.waiting():
        st.caption(t("Queued runs start one after another when the GPUs are free, with or without a page open."))
    pending = [e.id for e in q.entries if e.state == "pending"]
    for i, e in enumerate(q.entries, 1):
        _entry_row(project, i, e, first=bool(pending) and e.id == pending[0], last=bool(pending) and e.id == pending[-1])
    c1, c2 = st.columns(2)
    if c1.button(t("Resume the queue") if q.paused else t("Pause the queue"), key="queue_pause",
                 icon=":material/play_arrow:" if q.paused else ":material/pause:"):
        queue.set_paused(project.workspace, not q.paused)
        st.rerun()
    if len(q.waiting()) < len(q.entries) and c2.button(t("Clear finished entries"), key="queue_clear",
                                                       icon=":material/clear_all:"):
        queue.clear_finished(project.workspace)
        st.rerun()
    return bool(q.waiting())


def panel(project) -> None:
    """The queue, live while entries wait; a runner is started if entries wait and none runs (after an
    app restart or a killed runner)."""
    try:
        q = queue.read_queue(project.workspace)
    except queue.QueueError as e:
        show_error(e)
        return
    if not q.entries:
        return
    queue.ensure_runner(project.workspace)
    job_status.live(bool(q.waiting()) and not q.paused, lambda: _draw(project), period=3.0)


def sweep_tables(project, all_runs) -> None:
    """Results → Compare runs: each sweep of the project as one table (newest sweep first)."""
    from core.fsutil import human_duration
    from core.results import sweeps

    groups = sweeps.sweeps(all_runs)
    if not groups:
        return
    ids = list(groups)
    chosen = st.selectbox(t("Sweep"), ids, key="sweep_table",
                          format_func=lambda s: t("{first} · {n} runs", first=groups[s][0].id, n=len(groups[s])))
    rows = sweeps.table(groups[chosen], project.evaluation_expected, project.evaluation_inputs)
    names = sorted({k for r in rows for k in r.values})

    def num(x, fmt="{:.4f}"):
        return None if x is None else fmt.format(x)

    st.dataframe({
        t("Run"): [r.run for r in rows],
        **{t(next(s.label for s in settings() if s.name == n)): [r.values.get(n) for r in rows] for n in names},
        t("State"): [state_label(r.state, title=True) for r in rows],
        t("Final training loss"): [num(r.final_loss) for r in rows],
        t("Lowest held-out loss"): [num(r.best_heldout) for r in rows],
        t("Highest score"): [num(r.best_score, "{:.3f}") for r in rows],
        t("Training time"): [human_duration(r.duration_s) for r in rows],
    }, hide_index=True, placeholder="—", key="sweep_rows")
