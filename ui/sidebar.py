"""The frame around every page: project picker and the status of the running job."""
from __future__ import annotations

import streamlit as st

from core import runs
from ui import session


def render() -> None:
    with st.sidebar:
        names = session.store().list()
        current = session.project_name()
        if names:
            options = ["—"] + names
            index = options.index(current) if current in options else 0
            choice = st.selectbox("Project", options, index=index, key="sidebar_project",
                                  help="Projects in the workspace. Create new ones on Home.")
            if choice != (current or "—"):
                if choice == "—":
                    session.close_project()
                else:
                    session.open_project(choice)
                st.rerun()
        else:
            st.caption("No project yet — create one on Home.")
        project = session.current_project()
        if project is not None:
            _job_badge(project)


def _job_badge(project) -> None:
    run = runs.active_training(project)
    if run is None:
        last = next(iter(runs.list_runs(project)), None)
        job = last.job() if last else None
        if job is not None:
            st.caption(f"Last run {last.id}: **{job.state}**")
        return
    job = run.job()
    progress = None
    from core.metrics import read_progress

    p = read_progress(run.progress_path)
    if p and p.get("max_iters"):
        progress = min(1.0, p.get("iter", 0) / p["max_iters"])
    label = f"Training {run.id}: {job.state if job else '?'}"
    if progress is not None:
        st.progress(progress, text=f"{label} · {progress:.0%}")
    else:
        st.caption(label + " · preparing")
