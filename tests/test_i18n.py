"""Every page in both languages: no missing Chinese string, and the choice is remembered."""
import json
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptests import open_page
from ui import i18n

REPO = Path(__file__).resolve().parent.parent
HOME = str(REPO / "Home.py")
TRANSLATED_PAGES = ["pages/home.py", "pages/model_data.py", "pages/configure.py", "pages/train.py", "pages/results.py", "pages/convert_chat.py"]


def run_in(lang, ws, page, project=None):
    return open_page(ws, page, project=project, lang=lang)


def test_catalog_files_are_valid_and_placeholders_match():
    for path in (REPO / "ui" / "locales" / "zh").glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        for en, zh in data.items():
            assert zh.strip(), f"{path.name}: empty translation for {en!r}"
            import string

            fields = lambda s: sorted(f for _, f, _, _ in string.Formatter().parse(s) if f)  # noqa: E731
            assert fields(en) == fields(zh), f"{path.name}: placeholders differ for {en!r}"


@pytest.mark.parametrize("page", TRANSLATED_PAGES)
def test_pages_have_no_untranslated_string_in_chinese(demo_workspace, page):
    i18n.reset_missing()
    for project in (None, "demo"):
        run_in("zh", demo_workspace, page, project)
    assert i18n.missing_keys() == set()


def test_english_is_the_default_and_chinese_is_remembered(workspace):
    os.environ["XTUNER_STUDIO_HOME"] = str(workspace)
    at = AppTest.from_file(HOME, default_timeout=60).run()
    assert any("Try it in one click" in s.value for s in at.subheader)
    at.selectbox(key="lang_picker").set_value("zh").run()
    assert at.session_state["lang"] == "zh" and at.query_params["lang"] in ("zh", ["zh"])
    # a new session (a browser reload without the URL parameter) starts in Chinese: it was remembered
    again = AppTest.from_file(HOME, default_timeout=60).run()
    assert any("一键体验" in s.value for s in again.subheader)
    assert any("Language" in s.label for s in again.selectbox)


def test_every_literal_ui_string_has_a_chinese_translation():
    """Static: every t("…") with a literal argument in the app's code is in the Chinese catalog."""
    import ast

    zh = i18n.catalog("zh")
    missing = []
    files = [REPO / "Home.py", *(REPO / "pages").glob("*.py"), *(REPO / "ui").glob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "t" and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                    and node.args[0].value not in zh):
                missing.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.args[0].value!r}")
    assert missing == []
