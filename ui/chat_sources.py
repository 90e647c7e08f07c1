"""Convert & Chat: what answers on one side of the chat — a project model, a served endpoint (a running
serve job of the project, or any OpenAI-compatible address typed in) or a local model folder."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import streamlit as st

from core.deploy import endpoint_chat
from core.deploy.chat import ModelChoice
from core.errors import UserError
from ui.errors import show_error
from ui.i18n import t

SOURCES = {"project": "Project model", "endpoint": "Served endpoint", "folder": "Local folder"}
TYPED = "typed"  # the endpoint list's "another address" entry


def label(choice: ModelChoice) -> str:
    return t(choice.text, **choice.params)


def pick(project, side: str, choices: list[ModelChoice], default: int, options_id: int) -> Optional[ModelChoice]:
    """The chosen model of ``side`` ("left" / "right"), or None while an address or folder is not usable yet."""
    source = st.radio(t("Answered by"), list(SOURCES), format_func=lambda s: t(SOURCES[s]), horizontal=True,
                      key=f"chat_source_{side}", label_visibility="collapsed")
    side_label = t("Left") if side == "left" else t("Right")
    if source == "endpoint":
        return _endpoint(project, side, side_label)
    if source == "folder":
        return _folder(side)
    by_key = {c.key: c for c in choices}
    key = st.selectbox(side_label, list(by_key), index=default, format_func=lambda k: label(by_key[k]),
                       key=f"chat_{side}_{options_id}")
    return by_key[key]


def _base_or_none(url: str) -> Optional[str]:
    try:
        return endpoint_chat.base_url(url)
    except UserError:
        return None


def _endpoint(project, side: str, side_label: str) -> Optional[ModelChoice]:
    served = {c.key: c for c in endpoint_chat.served_choices(project)}
    names = {**{k: label(c) for k, c in served.items()}, TYPED: t("Another address…")}
    chosen = st.selectbox(side_label, list(names), format_func=names.get, key=f"chat_endpoint_{side}")
    if chosen != TYPED:
        return served[chosen]
    url = st.text_input(t("Base URL of an OpenAI-compatible API"), key=f"chat_url_{side}",
                        placeholder="http://127.0.0.1:8080/v1")
    state = f"chat_url_models_{side}"  # (base URL, its models) of the last successful Connect
    if st.button(t("Connect"), key=f"chat_connect_{side}", icon=":material/link:", disabled=not url.strip()):
        st.session_state.pop(state, None)
        try:
            st.session_state[state] = (endpoint_chat.base_url(url), endpoint_chat.list_models(url))
        except UserError as e:
            show_error(e, lead=t("Cannot use this endpoint:"))
    connected = st.session_state.get(state)
    if not connected or connected[0] != _base_or_none(url):
        st.caption(t("Connect to list the models it serves (GET /v1/models)."))
        return None
    model = st.selectbox(t("Model"), connected[1], key=f"chat_url_model_{side}")
    return endpoint_chat.endpoint_choice(connected[0], model)


def _folder(side: str) -> Optional[ModelChoice]:
    path = st.text_input(t("Model folder on this machine"), key=f"chat_folder_{side}",
                         placeholder=t("/path/to/model (config.json, tokenizer, weights)"))
    if not path.strip():
        return None
    state = f"chat_folder_checked_{side}"  # (typed path, its choice or error): checked once per path
    if st.session_state.get(state, (None,))[0] != path:
        try:
            st.session_state[state] = (path, endpoint_chat.folder_choice(path))
        except UserError as e:
            st.session_state[state] = (path, e)
    checked = st.session_state[state][1]
    if isinstance(checked, UserError):
        show_error(checked, lead=t("Cannot chat with this folder:"))
        return None
    st.caption(t("{name}: prompted with its tokenizer's chat template (else the prompt template below).",
                 name=Path(checked.model_path).name))
    return checked
