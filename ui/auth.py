"""Optional password gate, checked before any page renders.

The password comes from the environment (``XTUNER_STUDIO_PASSWORD``) or Streamlit secrets
(``password`` in ``.streamlit/secrets.toml``); without one the app is open (it listens on loopback
only, reached through an SSH tunnel). The password is never shown, logged or put in the URL.
"""
from __future__ import annotations

import hmac
import os
import time

import streamlit as st

from ui.i18n import t


def expected_password() -> str | None:
    env = os.environ.get("XTUNER_STUDIO_PASSWORD")
    if env:
        return env
    try:
        value = st.secrets.get("password")
    except Exception:  # no secrets file
        value = None
    return str(value) if value else None


def require_login() -> None:
    expected = expected_password()
    if not expected or st.session_state.get("authenticated"):
        return
    st.title("XTuner Studio")
    with st.form("login"):
        given = st.text_input(t("Password"), type="password")
        submitted = st.form_submit_button(t("Sign in"), type="primary")
    if submitted:
        if hmac.compare_digest(given.encode(), expected.encode()):
            st.session_state["authenticated"] = True
            st.rerun()
        time.sleep(1.0)  # slows down guessing
        st.error(t("Wrong password."))
    st.stop()
