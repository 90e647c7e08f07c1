"""The Model & Data page under AppTest: upload, check, convert, build, own model, token stats, downloads, Chinese."""
import html
import json
import os
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.models import hub
from core import jobs
from core.project import ProjectStore
from ui.data_insight import TRAINED
from tests.apptests import open_page
from tests.test_hub import olah, repos  # noqa: F401  (session fixtures: the local Hugging Face mirror)

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).parent / "data" / "datasets"


@pytest.fixture
def ws(tmp_path, demo_workspace, monkeypatch):
    """A fresh copy of the demo workspace (each test changes its project)."""
    target = tmp_path / "ws"
    shutil.copytree(demo_workspace, target)
    store = ProjectStore(target)
    store.save(store.load("demo").model_copy(update={"download_cache": str(target / "downloads")}))
    monkeypatch.setenv("XTUNER_STUDIO_HOME", str(target))
    return target


def page(ws, lang=None) -> AppTest:
    return open_page(ws, "pages/model_data.py", lang=lang)


def project(ws):
    return ProjectStore(ws).load("demo")


def texts(at, kind):
    return " ".join(str(e.value) for e in getattr(at, kind))


def upload(at, name, data: bytes):
    at.file_uploader(key="md_upload").set_value((name, data, "application/json"))
    at.run()
    at.button(key="use_upload").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_good_upload_is_checked_and_used(ws):
    at = upload(page(ws), "mine.jsonl", (CORPUS / "good_openai.jsonl").read_bytes())
    assert "mine.jsonl: 3 records (OpenAI messages · JSONL)" in texts(at, "success")
    at.button(key="md_use_data").click().run()
    p = project(ws)
    assert Path(p.dataset_path) == p.data_dir / "mine.jsonl"
    assert (p.data_dir / "mine.jsonl").read_bytes() == (CORPUS / "good_openai.jsonl").read_bytes()


def test_a_bad_upload_gets_line_and_field_and_leaves_nothing_behind(ws):
    before = sorted(os.listdir(project(ws).data_dir))
    at = upload(page(ws), "bad.jsonl", (CORPUS / "bad_types.jsonl").read_bytes())
    assert "bad.jsonl: 9 problem(s) found; nothing was changed." in texts(at, "error")
    table = at.dataframe[0].value
    assert {"line", "field", "problem"} <= set(table.columns)
    row = table[table["line"] == 3].iloc[0]
    assert row["field"] == "messages[0].content" and row["problem"] == "Must be text, got a number."
    assert sorted(os.listdir(project(ws).data_dir)) == before
    assert project(ws).dataset_path.endswith("self_intro.jsonl")


def test_a_latin1_upload_says_save_as_utf8(ws):
    at = upload(page(ws), "latin.jsonl", (CORPUS / "bad_latin1.jsonl").read_bytes())
    assert "save the file as UTF-8" in at.dataframe[0].value["problem"].iloc[0]


def test_an_alpaca_upload_is_converted_to_openai_jsonl(ws):
    at = upload(page(ws), "alpaca.json", (CORPUS / "good_alpaca.json").read_bytes())
    assert any("convert this Alpaca · JSON array file" in i.value for i in at.info)
    at.button(key="md_use_data").click().run()
    p = project(ws)
    assert Path(p.dataset_path).name == "alpaca.openai.jsonl"
    first = json.loads(Path(p.dataset_path).read_text().splitlines()[0])
    assert first["messages"][0] == {"role": "user", "content": "Give three tips for staying healthy."}


def test_warnings_are_shown_and_duplicates_can_be_dropped(ws):
    at = upload(page(ws), "seed.json", (CORPUS / "seed_identical_rows.json").read_bytes())
    assert any("warning(s) that matter" in e.label for e in at.expander)
    at.checkbox(key="md_drop_dups").check().run()
    at.button(key="md_use_data").click().run()
    p = project(ws)
    assert Path(p.dataset_path).name == "seed.openai.jsonl"
    assert len(Path(p.dataset_path).read_text().splitlines()) == 1


def test_own_model_is_checked_cross_checked_and_used(ws, tmp_path):
    model = tmp_path / "my-model"
    shutil.copytree(ws / "projects" / "demo" / "model", model)
    at = page(ws)
    at.text_input(key="md_model_path").set_value(str(model)).run()
    at.button(key="check_model").click().run()
    assert any(m.label == "Architecture" and m.value == "Qwen2ForCausalLM" for m in at.metric)
    assert any("XTuner prompt template: **qwen_chat**" in m.value for m in at.markdown)
    assert any("100% alike" in e.label for e in at.expander)
    assert "Identical: the template matches the model." in texts(at, "success")
    at.button(key="md_use_model").click().run()
    p = project(ws)
    assert p.model_path == str(model) and p.prompt_template == "qwen_chat" and not p.trust_remote_code


def test_a_model_needing_its_own_code_is_used_only_after_opt_in(ws, tmp_path):
    model = tmp_path / "rc"
    shutil.copytree(ws / "projects" / "demo" / "model", model)
    cfg = json.loads((model / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    (model / "config.json").write_text(json.dumps(cfg))
    (model / "modeling_x.py").write_text("raise SystemExit('never run')\n")
    at = page(ws)
    at.text_input(key="md_model_path").set_value(str(model)).run()
    at.button(key="check_model").click().run()
    assert at.button(key="md_use_model").disabled
    at.checkbox(key="md_trust").check().run()
    at.button(key="md_use_model").click().run()
    p = project(ws)
    assert p.model_path == str(model) and p.trust_remote_code


def test_a_matched_template_replaces_the_previous_one(ws, tmp_path):
    from tests.test_models import LLAMA3, make_model

    model = make_model(tmp_path / "llama", chat_template=LLAMA3, bos="<|begin_of_text|>", eos="<|eot_id|>")
    at = page(ws)
    at.text_input(key="md_model_path").set_value(str(model)).run()
    at.button(key="check_model").click().run()
    at.button(key="md_use_model").click().run()
    at.run()
    assert project(ws).prompt_template == "llama3_chat"


def test_a_broken_model_folder_changes_nothing(ws, tmp_path):
    at = page(ws)
    at.text_input(key="md_model_path").set_value(str(tmp_path)).run()
    at.button(key="check_model").click().run()
    assert "has no config.json" in texts(at, "error")
    assert project(ws).model_path.endswith("model")


def test_an_empty_model_path_replaces_the_previous_report_with_its_error(ws):
    at = page(ws)
    at.text_input(key="md_model_path").set_value(str(ws / "projects" / "demo" / "model")).run()
    at.button(key="check_model").click().run()
    assert any(m.label == "Architecture" for m in at.metric)
    at.text_input(key="md_model_path").set_value("").run()
    at.button(key="check_model").click().run()
    assert "The path is empty" in texts(at, "error")
    assert not any(m.label == "Architecture" for m in at.metric), "the previous folder's report is gone"


def test_a_new_upload_replaces_the_previous_files_report(ws):
    at = upload(page(ws), "bad.jsonl", (CORPUS / "bad_types.jsonl").read_bytes())
    assert "bad.jsonl: " in texts(at, "error")
    at.file_uploader(key="md_upload").set_value(("other.jsonl", b"not json at all", "application/json"))
    at.run()
    assert "bad.jsonl" not in texts(at, "error") and not at.dataframe, "no report of the previous file"


def test_the_builders_own_repeats_are_not_reported_as_duplicates(ws):
    at = page(ws)
    at.text_input(key="md_build_name").set_value("Ada")
    at.number_input(key="md_build_copies").set_value(30)
    at.button(key="FormSubmitter:md_self_intro-Build the dataset").click().run()
    assert not at.exception
    assert "memorise" not in " ".join(str(d.value) for d in at.dataframe)
    assert not any("warning(s) that matter" in e.label for e in at.expander)
    assert "records repeat on purpose" in texts(at, "info")


def test_self_intro_builder_with_general_data(ws):
    general = project(ws).data_dir / "general.jsonl"
    general.write_text("".join(json.dumps({"instruction": f"task {i}", "output": f"done {i}"}) + "\n"
                               for i in range(100)))
    at = page(ws)
    at.text_input(key="md_build_name").set_value("Ada")
    at.number_input(key="md_build_copies").set_value(30)
    at.selectbox(key="md_build_general").set_value(str(general))
    at.button(key="FormSubmitter:md_self_intro-Build the dataset").click().run()
    assert not at.exception
    assert "self_intro-2.jsonl: 60 records" in texts(at, "success")
    at.button(key="md_use_data").click().run()
    assert project(ws).dataset_path.endswith("self_intro-2.jsonl")


def test_find_replace_writes_a_new_file(ws):
    at = page(ws)
    at.text_input(key="md_find").set_value("Ada")
    at.text_input(key="md_replace").set_value("Grace")
    at.button(key="md_do_replace").click().run()
    assert "400 records" in texts(at, "success")
    at.button(key="md_use_data").click().run()
    data = Path(project(ws).dataset_path)
    assert data.name == "self_intro.replaced.jsonl" and "Grace" in data.read_text() and "Ada" not in data.read_text()


def test_preview_highlights_trained_tokens_and_token_stats_run_as_a_job(ws):
    at = page(ws)
    html = [e.proto.body for e in at.get("html")]
    assert html and "background:#c9f2d0" in html[0] and "I am Ada&#x27;s assistant" in html[0]
    at.button(key="md_count_tokens").click().run()
    out = project(ws).dir / "datastats"
    assert jobs.wait_job(out, timeout=120).state == "succeeded"
    at.run()
    assert any(m.label == "Tokens" for m in at.metric)
    assert any(m.label == "Cut by max_length" and m.value == "0.0%" for m in at.metric)
    assert at.get("plotly_chart")


def test_the_whole_page_is_translated_to_chinese(ws, tmp_path):
    from ui import i18n

    i18n.reset_missing()
    at = page(ws, lang="zh")
    assert at.title[0].value == "1 · 模型与数据"
    upload(at, "bad.jsonl", (CORPUS / "bad_types.jsonl").read_bytes())
    at.text_input(key="md_model_path").set_value(str(ws / "projects" / "demo" / "model")).run()
    at.button(key="check_model").click().run()
    upload(at, "seed.json", (CORPUS / "seed_identical_rows.json").read_bytes())
    assert not at.exception
    assert i18n.missing_keys() == set()


@pytest.mark.slow
def test_download_from_the_catalog_then_check_and_use(ws, tmp_path, monkeypatch, olah):  # noqa: F811
    extra = tmp_path / "catalog.json"
    extra.write_text(json.dumps({"models": [
        {"id": "studio-tiny", "name": "Studio tiny", "family": "Qwen 2.5", "params_b": 0.0002, "size_gb": 0.001,
         "template": "qwen_chat", "sources": {"huggingface": "studio/tiny-chat"}}], "datasets": []}))
    monkeypatch.setenv("XTUNER_STUDIO_CATALOG", str(extra))
    at = page(ws)
    at.text_input(key="md_hf_endpoint").set_value(olah.url).run()
    at.button(key="md_save_dl").click().run()
    assert project(ws).hub_endpoints == {"huggingface": olah.url}
    at.selectbox(key="md_cat_model").set_value("studio-tiny").run()
    at.button(key="start-model-studio-tiny").click().run()
    cache = project(ws).download_cache
    assert jobs.wait_job(hub.job_dir(cache, "model", "studio-tiny"), timeout=120).state == "succeeded"
    at.run()
    assert "Downloaded to" in texts(at, "success")
    at.button(key="md_use_catalog_model").click().run()
    at.button(key="md_use_model").click().run()
    p = project(ws)
    assert p.model_path == str(hub.download_dir(cache, "model", "studio-tiny")) and p.prompt_template == "qwen_chat"
    assert at.button(key="delete-done-model-studio-tiny").disabled, "the model in use cannot be deleted"


def test_a_llava_upload_is_refused_as_an_image_dataset(ws):
    before = sorted(os.listdir(project(ws).data_dir))
    rec = {"id": "0", "image": "0.png",
           "conversations": [{"from": "human", "value": "<image>\nDescribe it."}, {"from": "gpt", "value": "A cat."}]}
    at = upload(page(ws), "llava.json", json.dumps([rec]).encode())
    assert "llava.json: 1 problem(s) found; nothing was changed." in texts(at, "error")
    row = at.dataframe[0].value.iloc[0]
    assert row["field"] == "image" and "Switch to vision-language" in row["problem"]
    assert not any(b.key == "md_use_data" for b in at.button)
    assert sorted(os.listdir(project(ws).data_dir)) == before
    at = upload(page(ws, lang="zh"), "llava.json", json.dumps([rec]).encode())
    assert "请切换到视觉-语言模式" in at.dataframe[0].value.iloc[0].iloc[2]


def test_a_llava_dataset_is_checked_with_its_images(ws, tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (40, 30), "red").save(images / "a.png")
    good = {"id": "0", "image": "a.png",
            "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "Red."}]}
    data = tmp_path / "llava.json"
    data.write_text(json.dumps([good, {**good, "id": "1", "image": "../secret.png"}]))
    at = page(ws)
    at.text_input(key="vl_data").set_value(str(data))
    at.text_input(key="vl_images").set_value(str(images))
    at.button(key="vl_check").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "llava.json: 1 problem(s) found; nothing was changed." in texts(at, "error")
    row = at.dataframe[0].value.iloc[0]
    assert (row["line"], row["field"]) == (1, "image") and "../secret.png is outside the image folder" in row["problem"]
    data.write_text(json.dumps([good]))
    at.button(key="vl_check").click().run()
    assert ("llava.json: 1 records, 1 with an image; 1 images (" in texts(at, "success")
            and "sides 30–40 px" in texts(at, "success"))
    # the picture beside its conversation in the template, the answer marked as trained
    assert at.get("image") and any("<image>\nWhat?" in html.unescape(h.proto.body) and f'{TRAINED}">Red.' in h.proto.body
                                     for h in at.get("html"))
    at.button(key="vl_use_finetune_data").click().run()
    vision = project(ws).vision
    assert (vision.finetune_data, vision.image_folder, vision.pretrain_data) == (str(data), str(images), "")
    assert "In use for this stage." in texts(at, "success") and any(b.key == "vl_use_pretrain_data" for b in at.button)
    at = page(ws, lang="zh")
    at.text_input(key="vl_data").set_value(str(data))
    at.text_input(key="vl_images").set_value("")
    at.button(key="vl_check").click().run()
    assert not at.exception and at.error  # an empty folder path is named, in Chinese, not raised
