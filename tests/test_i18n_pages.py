"""Configure, Results and Convert & Chat: every user-visible string has a Chinese translation with the
same placeholders, and the pages render in Chinese."""
import ast
import json
import re
from pathlib import Path

import pytest

from tests.apptests import open_page

REPO = Path(__file__).resolve().parent.parent
PAGES = ["pages/configure.py", "pages/results.py", "pages/convert_chat.py"]
CATALOGS = ["configure", "results", "convert_chat"]


def literal_keys(path: Path) -> set[str]:
    keys = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "t" and node.args:
            if isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                keys.add(node.args[0].value)
    return keys


def dynamic_keys() -> set[str]:
    """Text from core/ that these pages pass through t()."""
    import importlib

    from core.project import Hyperparams

    keys = {f.description for f in Hyperparams.model_fields.values() if f.description}
    keys |= {"weights", "gradients", "optimizer state", "activations", "logits and loss"}
    keys |= set(re.findall(r'notes\.append\("([^"]+)"\)', (REPO / "core" / "models" / "estimate.py").read_text()))
    keys |= {"queued", "running", "succeeded", "failed", "stopped"}
    source = (REPO / "pages" / "convert_chat.py").read_text()
    kinds = ast.literal_eval(re.search(r"KIND_LABELS = (\{.*?\})", source).group(1))
    importlib.import_module("core.models.estimate")
    return keys | set(kinds.values())


def zh() -> dict[str, str]:
    merged = {}
    for name in CATALOGS:
        merged.update(json.loads((REPO / "ui" / "locales" / "zh" / f"{name}.json").read_text(encoding="utf-8")))
    return merged


def test_every_string_of_these_pages_is_translated():
    catalog = zh()
    needed = set().union(*(literal_keys(REPO / p) for p in PAGES)) | dynamic_keys()
    assert sorted(needed - set(catalog)) == []


def test_translations_keep_the_placeholders():
    fields = re.compile(r"\{(\w*)[^{}]*\}")
    for en, text in zh().items():
        assert sorted(fields.findall(en)) == sorted(fields.findall(text)), en


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_in_chinese(demo_workspace, page):
    at = open_page(demo_workspace, page, lang="zh")
    title = {"pages/configure.py": "2 · 配置", "pages/results.py": "4 · 结果",
             "pages/convert_chat.py": "5 · 转换与对话"}[page]
    assert any(title == m.value for m in at.title)
