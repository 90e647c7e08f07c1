"""XTuner Studio behind its password gate: ``streamlit run serve.py`` (what run.sh starts).

The app is Home.py; ``ui.auth.PasswordGate`` sits in front of every URL Streamlit serves, so with a
password set nothing — pages, websocket, ``/media`` downloads, metrics — answers before sign-in.
"""
import streamlit as st
from starlette.middleware import Middleware

from ui.auth import PasswordGate

app = st.App("Home.py", middleware=[Middleware(PasswordGate)])
