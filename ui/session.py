"""The open project and workspace, kept in ``st.session_state`` and the URL (a reload loses nothing).

The open project is one value, ``st.session_state["project"]``, written only by ``open_project`` /
``close_project`` (the sidebar's picker calls them from its callback, before the page runs; the
picker shows this value, it does not hold its own). A fresh session takes it from ``?project=``,
else from the workspace's last-used project (``settings.json``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import streamlit as st

from core import settings
from core.paths import default_workspace
from core.project import Project, ProjectDamaged, ProjectError, ProjectStore
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
    if "project" not in st.session_state:  # a fresh session: the link's project, else the last-used one
        st.session_state["project"] = st.query_params.get("project") or settings.load(workspace()).get("last_project")
    name = st.session_state["project"]
    if name and store().exists(name):
        if st.query_params.get("project") != name:
            st.query_params["project"] = name
        return name
    return None


def current_project() -> Optional[Project]:
    """The open project; None when none is open or its file is damaged (``damage_notice`` says so)."""
    name = project_name()
    if not name:
        return None
    try:
        return store().load(name)
    except ProjectDamaged:
        return None
    except ProjectError as e:
        show_error(e)
        return None


def damage_notice() -> None:
    """Above every page: the open project's file is damaged, with the repair (its last good copy)."""
    name = project_name()
    if not name:
        return
    try:
        store().load(name)
    except ProjectDamaged as e:
        show_error(e)
        if e.restorable and st.button(t("Restore its last good copy"), key="restore_project",
                                      icon=":material/restore:"):
            store().restore(name)
            st.rerun()
    except ProjectError:
        pass


def open_project(name: str) -> None:
    """Make ``name`` the open project everywhere (session, URL, sidebar) and the workspace's last-used one."""
    st.session_state["project"] = name
    st.query_params["project"] = name
    try:
        settings.save(workspace(), last_project=name)
    except OSError:
        pass  # a full disk: only the memory of the last-used project is lost


def close_project() -> None:
    st.session_state["project"] = None
    st.query_params.pop("project", None)


def save_project(project: Project) -> Project:
    """Save the project; on a full disk (or another I/O error) say so and go on with it unsaved."""
    try:
        return store().save(project)
    except OSError as e:
        show_error(e, lead=t("Could not save the project:"))
        return project


def require_project() -> Project:
    """The open project, or a pointer to Home and a stop of this page."""
    project = current_project()
    if project is None:
        st.info(t("No project is open. Create one, or the one-click demo, on the Home page."))
        st.page_link("pages/home.py", label=t("Go to Home"), icon=":material/home:")
        st.stop()
    return project
