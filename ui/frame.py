"""The app's frame: password gate, language, navigation, sidebar — run by Home.py for every page.

Streamlit has a legacy mode for apps with a ``pages/`` folder: when a fresh server's first request
is a deep link (``/train`` after a restart), or in ``AppTest`` reruns, it runs the page file
directly and Home.py never runs — no password check, no navigation. Every page therefore starts
with ``page_frame()``, which detects that mode and runs the real router instead.
"""
from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from ui import auth, i18n, session, sidebar
from ui.i18n import t

PAGE_FILES = [
    ("pages/home.py", "Home", ":material/home:"),
    ("pages/model_data.py", "1 · Model & Data", ":material/database:"),
    ("pages/configure.py", "2 · Configure", ":material/tune:"),
    ("pages/train.py", "3 · Train", ":material/model_training:"),
    ("pages/results.py", "4 · Results", ":material/monitoring:"),
    ("pages/convert_chat.py", "5 · Convert & Chat", ":material/chat:"),
]


def run_router() -> None:
    st.set_page_config(page_title="XTuner Studio", page_icon=":material/tune:", layout="wide")
    auth.require_login()
    i18n.init_language(session.workspace())
    i18n.translate_streamlit_widgets()
    pages = [st.Page(path, title=t(title), icon=icon, default=(i == 0))
             for i, (path, title, icon) in enumerate(PAGE_FILES)]
    page = st.navigation(pages)
    i18n.language_picker(session.workspace())
    sidebar.render()
    session.damage_notice()
    page.run()


def page_frame() -> None:
    """First line of every page: make sure the router (and its password gate) ran."""
    if PagesManager.uses_pages_directory:
        run_router()
        st.stop()
