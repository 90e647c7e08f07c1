"""Both languages: the Chinese catalog (one file per area, no key twice, the same placeholders), every
text the app can show has a translation (static, so branches no test reaches count too), every page
renders in Chinese with nothing missing, and the choice is remembered."""
import ast
import importlib
import json
import os
import re
import string
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


@pytest.mark.parametrize("page", TRANSLATED_PAGES)
def test_pages_have_no_untranslated_string_in_chinese(demo_workspace, page):
    i18n.reset_missing()
    for project in (None, "demo"):
        at = run_in("zh", demo_workspace, page, project)
    assert i18n.missing_keys() == set()
    title = {"pages/home.py": None, "pages/model_data.py": "1 · 模型与数据", "pages/configure.py": "2 · 配置",
             "pages/train.py": "3 · 训练", "pages/results.py": "4 · 结果", "pages/convert_chat.py": "5 · 转换与对话"}[page]
    assert title is None or any(title == m.value for m in at.title)


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


STRING_CALLS = ("t", "tr", "Why")  # the translator, the charts' translator, the launch reasons


def literal_keys(path: Path) -> set[str]:
    """The literal first argument of every t("…") / tr("…") / Why("…") in a file."""
    keys = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in STRING_CALLS
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            keys.add(node.args[0].value)
    return keys


def app_files() -> list[Path]:
    return [REPO / "Home.py", *sorted((REPO / "pages").glob("*.py")), *sorted((REPO / "ui").glob("*.py")),
            *sorted((REPO / "core").rglob("*.py"))]


def message_modules() -> list:
    """Every core module that lists the English texts (i18n keys) of its messages in ``MESSAGES``."""
    names = [".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
             for p in (REPO / "core").rglob("*.py") if re.search(r"^MESSAGES = ", p.read_text(), re.M)]
    return [importlib.import_module(n) for n in sorted(names)]


def dynamic_keys() -> set[str]:
    """Texts held in data rather than written as t("…"): they reach the page through t(variable)."""
    from core.deploy.chat import LABELS as CHAT_LABELS
    from core.models import catalog
    from core.project import METHOD_LABELS, Hyperparams
    from core.train.launch import DEEPSPEED_LABELS

    keys = {f.description for f in Hyperparams.model_fields.values() if f.description}
    keys |= {"weights", "gradients", "optimizer state", "activations", "logits and loss"}
    keys |= set(re.findall(r'notes\.append\("([^"]+)"\)', (REPO / "core" / "models" / "estimate.py").read_text()))
    source = (REPO / "pages" / "convert_chat.py").read_text()
    keys |= set(ast.literal_eval(re.search(r"KIND_LABELS = (\{.*?\})", source).group(1)).values())
    keys |= set(METHOD_LABELS.values()) | set(DEEPSPEED_LABELS.values()) | set(i18n.STATE_LABELS.values())
    keys |= set(CHAT_LABELS.values())
    keys |= {e.note for e in catalog.models() + catalog.datasets() if e.note}
    for module in message_modules():
        keys |= set(module.MESSAGES)
    return keys


def locale_files() -> dict[str, list[tuple[str, str]]]:
    """file name -> its (English, Chinese) pairs in order, duplicates kept."""
    return {p.name: json.loads(p.read_text(encoding="utf-8"), object_pairs_hook=list)
            for p in sorted((REPO / "ui" / "locales" / "zh").glob("*.json"))}


def fields(text: str) -> list[str]:
    return sorted(f for _, f, _, _ in string.Formatter().parse(text) if f)


def test_the_chinese_catalog_has_each_key_once_with_the_same_placeholders():
    where: dict[str, list[str]] = {}
    for name, pairs in locale_files().items():
        for en, zh in pairs:
            where.setdefault(en, []).append(name)
            assert zh.strip(), f"{name}: empty translation for {en!r}"
            assert fields(en) == fields(zh), f"{name}: placeholders differ for {en!r}"
    assert {en: files for en, files in where.items() if len(files) > 1} == {}, "a key in several places"


def test_every_text_the_app_can_show_has_a_chinese_translation():
    """Static: every literal t()/tr()/Why() in Home.py, pages/, ui/ and core/, every core message
    (``MESSAGES``) and every label kept in data: branches a page test does not reach count too."""
    zh = i18n.catalog("zh")
    missing = sorted(f"{p.relative_to(REPO)}: {k!r}" for p in app_files() for k in literal_keys(p) if k not in zh)
    missing += sorted(repr(k) for k in dynamic_keys() if k not in zh)
    assert missing == []


def test_core_errors_are_templates_not_formatted_text():
    """A UserError made from an f-string or str.format() cannot be translated: core passes a template
    and its parameters."""
    from core.errors import UserError

    def subclasses(c):
        return {c.__name__} | set().union(*(subclasses(s) for s in c.__subclasses__()))

    for module in message_modules():  # import every module that defines an error class
        assert module
    names = subclasses(UserError)
    bad = []
    for path in (REPO / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                if name in names and any(isinstance(a, ast.JoinedStr) or (
                        isinstance(a, ast.Call) and getattr(a.func, "attr", None) == "format") for a in node.args):
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert bad == []


def test_pages_show_errors_through_the_translator():
    """Static: no st.error / st.warning / st.info / st.exception / st.success / st.toast in pages/ or ui/
    shows str(...), an f-string or a "…".format(...) of its own: a message goes through t() (and raw text
    through ui.errors.show_error, into its Details block)."""
    def name_of(call: ast.Call):
        return call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", None)

    def mentions(node, names: set[str]) -> bool:  # an exception caught by ``except … as e`` appears in it
        return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))

    def raw(node, caught: set[str]) -> bool:
        if isinstance(node, ast.JoinedStr):  # an f-string: English around the values, or raw values
            return any(isinstance(v, ast.Constant) and re.search("[A-Za-z]{2}", v.value) for v in node.values) or any(
                not (isinstance(v.value, ast.Call) and name_of(v.value) == "t") or raw(v.value, caught)
                for v in node.values if isinstance(v, ast.FormattedValue))
        if isinstance(node, ast.Call):
            if name_of(node) in ("str", "repr", "format"):
                return True
            if name_of(node) == "t":  # t("…", reason=str(e)): an exception's own words in a translated sentence
                return any(mentions(k.value, caught) for k in node.keywords if k.arg)
        if isinstance(node, (ast.Name, ast.Attribute)):
            return mentions(node, caught)
        return isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(re.search("[A-Za-z]", node.value))

    bad = []
    for path in [REPO / "Home.py", *(REPO / "pages").glob("*.py"), *(REPO / "ui").glob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        caught = {h.name for h in ast.walk(tree) if isinstance(h, ast.ExceptHandler) and h.name}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("error", "warning", "info", "exception", "success", "toast")
                    and node.args and raw(node.args[0], caught)):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)[:100]}")
    assert bad == []


def test_widgets_that_can_be_empty_have_a_translated_placeholder():
    """Streamlit's own "Choose an option" / "Choose options" / "None" stay English: every selectbox that
    may show no choice (index=None), every multiselect and every dataframe (its missing values) passes a
    placeholder, and never None."""
    bad = []
    for path in [REPO / "Home.py", *(REPO / "pages").glob("*.py"), *(REPO / "ui").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            kw = {k.arg: k.value for k in node.keywords}
            empty = node.func.attr in ("multiselect", "dataframe") or (
                node.func.attr == "selectbox" and isinstance(kw.get("index"), ast.Constant) and kw["index"].value is None)
            if empty and ("placeholder" not in kw or any(isinstance(n, ast.Constant) and n.value is None
                                                         for n in ast.walk(kw["placeholder"]))):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert bad == []


def test_job_states_have_one_vocabulary():
    """One map of states to labels (ui.i18n.STATE_LABELS): a finished job is 已完成 on every page."""
    zh = i18n.catalog("zh")
    assert {s: zh[label] for s, label in i18n.STATE_LABELS.items()} == {
        "queued": "启动中", "running": "运行中", "succeeded": "已完成", "failed": "失败", "stopped": "已停止",
        "new": "未启动", "damaged": "已损坏"}
    assert not [en for en, text in zh.items() if "已成功" in text]
    stray = [f"{p.relative_to(REPO)}: {k!r}" for p in app_files() for k in literal_keys(p)
             if k.lower() in {"queued", "starting", "running", "succeeded", "failed", "stopped", "not started",
                                "damaged"}]
    assert stray == [], "states go through ui.i18n.state_label"
