"""Convert & Chat, vision-language, under AppTest: a converted stage-2 output (tiny random parts) answers
about an uploaded image, base and fine-tuned side by side."""
import io
import json
import shutil

import pytest
from PIL import Image

from core.project import ProjectStore
from tests.apptests import open_page

pytestmark = pytest.mark.slow


@pytest.fixture
def ws(tmp_path, demo_workspace):
    """The demo workspace with one stage-2 run whose iter_1 is converted (the demo LLM, a random tower and
    projector: the page's path, not the training, is under test)."""
    from xtuner.model.modules import ProjectorConfig, ProjectorModel

    from core.vision.demo import build_encoder

    target = tmp_path / "ws"
    shutil.copytree(demo_workspace, target)
    project = ProjectStore(target).load("demo")
    encoder = build_encoder(project.dir / "vision" / "encoder")
    run = project.runs_dir / "20260101-000000-llava-stage2"
    export = run / "exports" / "iter_1"
    shutil.copytree(project.model_path, export / "merged")
    ProjectorModel(ProjectorConfig(visual_hidden_size=48, llm_hidden_size=64, depth=2)).save_pretrained(
        export / "hf" / "projector")
    (run / "config.py").write_text("# a LLaVA stage-2 config\n")
    (run / "work_dir").mkdir()
    (run / "work_dir" / "iter_1.pth").write_bytes(b"a checkpoint")
    (run / "run.json").write_text(json.dumps({"id": run.name, "kind": "llava", "spec": {
        "stage": 2, "llm_path": project.model_path, "encoder_path": str(encoder), "prompt_template": "qwen_chat"}}))
    return target


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buf, format="PNG")
    return buf.getvalue()


def test_chat_about_an_uploaded_image_base_and_fine_tuned(ws):
    at = open_page(ws, "pages/convert_chat.py", timeout=180)
    assert at.selectbox(key="vl_output").value.iteration == 1
    assert at.selectbox(key="vl_conv_iter").value == 1 and not at.button(key="vl_convert").disabled
    assert "No checkpoint yet: train first on the Train page." in [i.value for i in at.info]  # not a text run
    assert at.button(key="vl_ask").disabled  # no image yet
    at.file_uploader(key="vl_image").set_value(("shape.png", png(), "image/png"))
    at.run()
    at.button(key="vl_ask").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    answers = at.session_state["vl_answers"]["answers"]  # streamed into the two columns, kept for the reruns
    assert len(answers) == 2 and all(isinstance(a, str) and a for a in answers), answers
    shown = [m.value for m in at.markdown]
    assert all(a in shown for a in answers), (answers, shown)
    assert "**Base** (untrained projector)" in [m.value for m in at.markdown]


def test_a_project_without_vision_outputs_shows_no_image_chat(demo_workspace):
    at = open_page(demo_workspace, "pages/convert_chat.py", timeout=180)
    assert not any(s.key == "vl_output" for s in at.selectbox)
    assert "Ask about an image (vision-language)" not in [h.value for h in at.subheader]


def test_the_image_chat_is_translated(ws):
    at = open_page(ws, "pages/convert_chat.py", lang="zh", timeout=180)
    assert "就图像提问（视觉-语言）" in [h.value for h in at.subheader]
    assert at.button(key="vl_convert").label == "转换以便就图像对话（pth_to_hf + 合并）"
    assert at.button(key="vl_ask").label == "同时询问两个模型"
