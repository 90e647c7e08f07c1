"""The frame around every page: project picker and the status of the running job."""
from __future__ import annotations

import streamlit as st

from core.train import runs
from ui import session
from ui.i18n import t


def render() -> None:
    with st.sidebar:
        names = session.store().list()
        current = session.project_name()
        if names:
            # the picker shows the open project (one value, ui.session); a choice goes back through
            # its callback, before the page runs
            st.session_state["sidebar_project"] = current if current in names else "—"
            st.selectbox(t("Project"), ["—"] + names, key="sidebar_project", on_change=_picked,
                         help=t("Projects in the workspace. Create new ones on Home."))
        else:
            st.caption(t("No project yet — create one on Home."))
        project = session.current_project()
        if project is not None:
            _job_badge(project)


def _picked() -> None:
    choice = st.session_state.get("sidebar_project")
    if choice in (None, "—"):
        session.close_project()
    else:
        session.open_project(choice)


PHASES = {None: "preparing", "starting": "starting", "resuming": "resuming", "stopped": "stopping",
          "finished": "finishing"}


def _job_badge(project) -> None:
    run = runs.active_training(project)
    if run is None:
        last = next(iter(runs.list_runs(project)), None)
        status = runs.status(last) if last else None
        if status is not None and status.job is not None:
            st.caption(t("Last run {run}: **{state}**", run=last.id, state=t(status.state.capitalize())))
        return
    status = runs.status(run)  # the same reading the Train page's header and history use
    if status.fraction is not None and status.phase == "training":
        st.progress(status.fraction, text=t("Training {run} · {pct:.0%}", run=run.id, pct=status.fraction))
    else:
        st.caption(t("Training {run} · {phase}", run=run.id, phase=t(PHASES.get(status.phase, "preparing"))))
    st.page_link("pages/train.py", label=t("Open Train"), icon=":material/model_training:")
