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
            options = ["—"] + names
            index = options.index(current) if current in options else 0
            choice = st.selectbox(t("Project"), options, index=index, key="sidebar_project",
                                  help=t("Projects in the workspace. Create new ones on Home."))
            if choice != (current or "—"):
                if choice == "—":
                    session.close_project()
                else:
                    session.open_project(choice)
                st.rerun()
        else:
            st.caption(t("No project yet — create one on Home."))
        project = session.current_project()
        if project is not None:
            _job_badge(project)


def _job_badge(project) -> None:
    run = runs.active_training(project)
    if run is None:
        last = next(iter(runs.list_runs(project)), None)
        job = last.job() if last else None
        if job is not None:
            st.caption(t("Last run {run}: **{state}**", run=last.id, state=t(job.state.capitalize())))
        return
    p = run.progress()
    if p.get("max_iters") and p.get("phase") == "training":
        done = min(1.0, (p.get("iter") or 0) / p["max_iters"])
        st.progress(done, text=t("Training {run} · {pct:.0%}", run=run.id, pct=done))
    else:
        st.caption(t("Training {run} · preparing", run=run.id))
    st.page_link("pages/train.py", label=t("Open Train"), icon=":material/model_training:")
