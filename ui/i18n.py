"""UI text in English and Simplified Chinese.

Pages wrap every user-visible string in ``t(...)``; the English text is the key, so pages stay
readable. Translations live in ``ui/locales/zh/*.json`` (one file per page or area, merged), and
placeholders use ``str.format`` names: ``t("Iteration {it}/{total}", it=3, total=10)``.
A key missing from the Chinese catalog falls back to English and is recorded, so a test that walks
every page in Chinese can fail on any untranslated string.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import streamlit as st

LANGUAGES = {"en": "English", "zh": "简体中文"}
_LOCALES = Path(__file__).parent / "locales"
_missing: set[str] = set()


@functools.cache
def catalog(lang: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted((_LOCALES / lang).glob("*.json")):
        merged.update(json.loads(path.read_text(encoding="utf-8")))
    return merged


def current_language() -> str:
    lang = st.session_state.get("lang") or st.query_params.get("lang") or "en"
    return lang if lang in LANGUAGES else "en"


def t(text: str, **params) -> str:
    lang = current_language()
    out = text
    if lang != "en":
        translated = catalog(lang).get(text)
        if translated is None:
            _missing.add(text)
        else:
            out = translated
    return out.format(**params) if params else out


# The one vocabulary for job and run states (lower case: they also sit inside sentences).
STATE_LABELS = {"queued": "starting", "running": "running", "succeeded": "succeeded", "failed": "failed",
                "stopped": "stopped", "new": "not started", "damaged": "damaged"}


def state_label(state: str, title: bool = False) -> str:
    """A job's or run's state in the current language; ``title``: capitalised, for a heading or a table."""
    label = t(STATE_LABELS[state]) if state in STATE_LABELS else state
    return label[:1].upper() + label[1:] if title else label


def missing_keys() -> set[str]:
    return set(_missing)


def reset_missing() -> None:
    _missing.clear()


def _css_text(text: str) -> str:
    return '"' + text.replace("\\", "").replace('"', "") + '"'


def translate_streamlit_widgets() -> None:
    """Texts Streamlit draws itself and offers no parameter for: the file uploader's "Upload" button and
    its "200MB per file • JSON" line. Outside English a small style sheet hides them and shows ours."""
    if current_language() == "en":
        return
    size = st.get_option("server.maxUploadSize")
    st.html(f"""<style>
[data-testid="stFileUploaderDropzoneInstructions"] > * {{ display: none !important; }}
[data-testid="stFileUploaderDropzoneInstructions"]::after {{
  content: {_css_text(t("Up to {size} MB per file", size=size))}; font-size: 0.875rem; opacity: 0.6; }}
[data-testid="stFileUploaderDropzone"] button > * {{ display: none !important; }}
[data-testid="stFileUploaderDropzone"] button::after {{ content: {_css_text(t("Upload"))}; }}
</style>""")


def init_language(workspace) -> None:
    """URL ``?lang=`` wins, then this session's choice, then the workspace's remembered one."""
    from core import settings

    url = st.query_params.get("lang")
    if url in LANGUAGES:
        st.session_state["lang"] = url
    elif "lang" not in st.session_state:
        remembered = settings.load(workspace).get("language")
        st.session_state["lang"] = remembered if remembered in LANGUAGES else "en"


def language_picker(workspace) -> None:
    from core import settings

    codes = list(LANGUAGES)
    current = current_language()
    choice = st.sidebar.selectbox("Language / 语言", codes, index=codes.index(current),
                                  format_func=LANGUAGES.get, key="lang_picker")
    if choice != current:
        st.session_state["lang"] = choice
        st.query_params["lang"] = choice
        try:
            settings.save(workspace, language=choice)
        except OSError:
            pass  # remembered for this session only
        st.rerun()
