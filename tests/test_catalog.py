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


def test_every_catalog_entry_records_where_its_ids_come_from():
    assert [e.id for e in catalog.models() + catalog.datasets() if not e.source.strip()] == []


def test_catalog_sizes_agree_with_the_parameter_count():
    """The config.json sizes the memory estimate uses give the entry's parameter count: a mistyped size shows.
    (Qwen3 0.6B / 1.7B list what their files store: the tied output head once more.)"""
    from core.models.estimate import shape_from_config

    for m in catalog.models():
        if m.config:
            ratio = shape_from_config(m.config).total_params / (m.params_b * 1e9)
            assert 0.78 <= ratio <= 1.02, (m.id, ratio)
    assert sum(bool(m.config) for m in catalog.models()) >= len(catalog.models()) - 3


def test_which_method_fits_which_gpu_memory():
    from core.models.method_fit import GPU_SIZES_GB, method_fits

    small, big = method_fits(catalog.get_model("qwen2_5-0_5b-instruct")), method_fits(catalog.get_model("qwen3-32b"))
    assert set(small) == {"qlora", "lora", "full"} and all(gb in GPU_SIZES_GB for gb in small.values())
    assert small["qlora"] <= small["lora"] <= small["full"] <= 24  # a 0.5B model: full fine-tuning on one card
    assert big["qlora"] <= 80 and big["full"] is None  # 32B: QLoRA on one large GPU, full needs several
    for m in catalog.models():
        fits = method_fits(m)
        if fits and fits["qlora"] and fits["full"]:
            assert fits["qlora"] <= fits["lora"] <= fits["full"], m.id
    assert method_fits(catalog.get_model("chatglm3-6b")) == {}  # no sizes recorded: nothing claimed


def test_model_data_shows_the_gpu_memory_each_method_needs():
    from ui.model_picker import fits_caption

    text = fits_caption(catalog.get_model("qwen3-0_6b"))
    assert "QLoRA ≥ 8 GB" in text and "LoRA ≥ 12 GB" in text and "full fine-tuning ≥ 16 GB" in text
    assert "more than one GPU" in fits_caption(catalog.get_model("qwen3-32b"))
    assert fits_caption(catalog.get_model("chatglm3-6b")) == ""
