"""XTuner Studio: ``streamlit run Home.py``. Router and frame; each step is a page in pages/."""
import streamlit as st

from ui import sidebar

st.set_page_config(page_title="XTuner Studio", page_icon=":material/tune:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/model_data.py", title="1 · Model & Data", icon=":material/database:"),
    st.Page("pages/configure.py", title="2 · Configure", icon=":material/tune:"),
    st.Page("pages/train.py", title="3 · Train", icon=":material/model_training:"),
    st.Page("pages/results.py", title="4 · Results", icon=":material/monitoring:"),
    st.Page("pages/convert_chat.py", title="5 · Convert & Chat", icon=":material/chat:"),
]

page = st.navigation(PAGES)
sidebar.render()
page.run()
