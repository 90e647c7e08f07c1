"""The open project and workspace, kept in ``st.session_state`` and the URL (a reload loses nothing)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import streamlit as st

from core.paths import default_workspace
from core.project import Project, ProjectError, ProjectStore
from ui.errors import show_error
from ui.i18n import t


def workspace() -> Path:
    ws = st.session_state.get("workspace") or st.query_params.get("ws")
    path = Path(ws).expanduser().resolve() if ws else default_workspace()
    st.session_state["workspace"] = str(path)
    return path


def set_workspace(path: Path) -> None:
    st.session_state["workspace"] = str(path)
    if path != default_workspace():
        st.query_params["ws"] = str(path)
    else:
        st.query_params.pop("ws", None)
    close_project()


def store() -> ProjectStore:
    return ProjectStore(workspace())


def project_name() -> Optional[str]:
    name = st.session_state.get("project") or st.query_params.get("project")
    if name and store().exists(name):
        st.session_state["project"] = name
        if st.query_params.get("project") != name:
            st.query_params["project"] = name
        return name
    return None


def current_project() -> Optional[Project]:
    name = project_name()
    if not name:
        return None
    try:
        return store().load(name)
    except ProjectError as e:
        show_error(e)
        return None


def open_project(name: str) -> None:
    st.session_state["project"] = name
    st.query_params["project"] = name


def close_project() -> None:
    st.session_state.pop("project", None)
    st.query_params.pop("project", None)


def save_project(project: Project) -> Project:
    return store().save(project)


def require_project() -> Project:
    """The open project, or a pointer to Home and a stop of this page."""
    project = current_project()
    if project is None:
        st.info(t("No project is open. Create one, or the one-click demo, on the Home page."))
        st.page_link("pages/home.py", label=t("Go to Home"), icon=":material/home:")
        st.stop()
    return project
