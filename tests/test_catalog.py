import json

import pytest

from core.models import catalog
from core.data.templates import PROMPT_TEMPLATES


def test_catalog_is_valid_and_covers_the_families_xtuner_has_templates_for():
    models = catalog.models()
    assert len({m.id for m in models}) == len(models)
    families = {m.family.split()[0] for m in models}
    assert {"InternLM", "Qwen", "Llama", "Mistral", "Gemma", "Phi-3", "DeepSeek"} <= families
    assert all(m.template in PROMPT_TEMPLATES for m in models)
    assert all("huggingface" in m.sources or "modelscope" in m.sources for m in models)
    assert any("openxlab" in m.sources for m in models)
    assert {d.id for d in catalog.datasets()} >= {"alpaca", "alpaca-zh", "oasst1-guanaco"}


def test_an_extra_catalog_file_adds_and_overrides_entries(tmp_path, monkeypatch):
    extra = tmp_path / "catalog.json"
    extra.write_text(json.dumps({"models": [
        {"id": "qwen2_5-0_5b-instruct", "name": "Qwen mirror", "family": "Qwen 2.5", "params_b": 0.5, "size_gb": 1,
         "template": "qwen_chat", "sources": {"huggingface": "mirror/qwen"}},
        {"id": "ours", "name": "Our model", "family": "Internal", "params_b": 1, "size_gb": 2,
         "template": "default", "sources": {"modelscope": "org/ours"}}]}))
    monkeypatch.setenv("XTUNER_STUDIO_CATALOG", str(extra))
    assert catalog.get_model("qwen2_5-0_5b-instruct").sources == {"huggingface": "mirror/qwen"}
    assert catalog.get_model("ours").template == "default"
    assert len(catalog.models()) == len(catalog._load(None).models) + 1


@pytest.mark.parametrize("bad", [
    {"template": "nope"}, {"sources": {}}, {"sources": {"github": "a/b"}}, {"sources": {"huggingface": "../etc"}},
    {"id": "Bad Id"},
])
def test_bad_entries_are_refused(bad):
    entry = {"id": "x", "name": "x", "family": "x", "params_b": 1, "size_gb": 1, "template": "default",
             "sources": {"huggingface": "a/b"}} | bad
    with pytest.raises(ValueError):
        catalog.ModelEntry.model_validate(entry)
