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


# --- evaluation pictures: Configure's editor, Results' answers beside each image ----------------------------
@pytest.fixture
def eval_ws(tmp_path, demo_workspace):
    """The demo workspace in vision-language mode, one picture in its image folder."""
    from core.project import VisionSetup

    target = tmp_path / "ws"
    shutil.copytree(demo_workspace, target)
    store = ProjectStore(target)
    project = store.load("demo")
    images = project.dir / "vision" / "images"
    images.mkdir(parents=True)
    Image.new("RGB", (32, 32), "red").save(images / "red.png")
    store.save(project.model_copy(update={"vision": VisionSetup(image_folder=str(images))}))
    return target


SAVE = "FormSubmitter:vt_form-Save vision-language settings"


def edit_rows(at, rows):
    """Rows typed into the evaluation editor (AppTest seeds a data editor through its edit state)."""
    at.session_state["vt_eval"] = {"edited_rows": {}, "added_rows": rows, "deleted_rows": []}


def test_the_evaluation_editor_saves_pairs_and_refuses_more_than_ten(eval_ws):
    at = open_page(eval_ws, "pages/configure.py")
    assert at.data_editor(key="vt_eval").editing_mode == "dynamic"
    edit_rows(at, [{"image": "red.png", "question": "What colour is it?"}, {},
                   {"image": "gone.png", "question": "And {this}?"}])
    at.button(key=SAVE).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    saved = [(p.image, p.question) for p in ProjectStore(eval_ws).load("demo").vision.evaluation]
    assert saved == [("red.png", "What colour is it?"), ("gone.png", "And {this}?")]  # the blank row dropped
    assert [w.value for w in at.warning] == [f"Evaluation image {ProjectStore(eval_ws).load('demo').vision.image_folder}"
                                             "/gone.png does not exist (a relative path is read in the image folder)."]
    at = open_page(eval_ws, "pages/configure.py")
    assert list(at.data_editor(key="vt_eval").value["question"]) == ["What colour is it?", "And {this}?"]
    edit_rows(at, [{"image": "red.png", "question": f"Q{i}"} for i in range(11)])
    at.button(key=SAVE).click().run()
    assert [e.value for e in at.error] == ["At most 10 evaluation questions."]
    edit_rows(at, [{"image": "red.png"}])
    at.button(key=SAVE).click().run()
    assert [e.value for e in at.error] == ["Evaluation row 3 needs both an image path and a question."]
    assert len(ProjectStore(eval_ws).load("demo").vision.evaluation) == 2  # nothing saved by a refused edit


def eval_run(project, questions, images, answers_by_iter):
    """A finished-looking LLaVA run whose work_dir holds eval_outputs files written as XTuner's
    EvaluateChatHook._save_eval_output writes them (the prompt with <image>, then the generated text)."""
    from core.data.templates import format_prompt

    run = project.runs_dir / "20260101-000000-llava-stage2"
    vis = run / "work_dir" / "20260101_000000" / "vis_data"
    vis.mkdir(parents=True)
    (run / "config.py").write_text("# a LLaVA stage-2 config\n")
    (run / "run.json").write_text(json.dumps({"id": run.name, "kind": "llava", "spec": {
        "stage": 2, "method": "lora", "prompt_template": "qwen_chat", "evaluation_inputs": questions,
        "evaluation_images": images}}))
    for iteration, answers in answers_by_iter.items():
        outputs = [f"{format_prompt('qwen_chat', '<image>' + chr(10) + q)}{a}<|im_end|>\n" for q, a in zip(questions, answers)]
        with open(vis / f"eval_outputs_iter_{iteration - 1}.txt", "w", encoding="utf-8") as f:
            for i, output in enumerate(outputs):
                f.write(f"Eval output {i + 1}:\n{output}\n\n")
    return run.name


def test_results_show_each_questions_answers_beside_its_image(eval_ws):
    project = ProjectStore(eval_ws).load("demo")
    red = project.vision.image_folder + "/red.png"
    gone = project.vision.image_folder + "/gone.png"
    eval_run(project, ["What colour is it?", "Which shape?"], [red, gone],
             {5: ["a blue square", "a circle"], 10: ["a red circle", "a circle"]})
    at = open_page(eval_ws, "pages/results.py")
    first, second = [e for e in at.expander if e.label.startswith("Q")]
    assert (first.label, second.label) == ("Q1: What colour is it?", "Q2: Which shape?")
    left, right = first.columns
    assert left.image[0].captions == ["red.png"] and "/media/" in left.image[0].value[0]
    assert [c.value for c in right.code] == ["a blue square", "a red circle"]  # the prompt and <image> stripped
    left, right = second.columns
    assert [c.value for c in left.caption] == [f"image missing: {gone}"] and not left.image
    assert [m.value for m in right.markdown] == ["**iter 5**", "**iter 10** · unchanged"]
    at.radio(key="eval_mode").set_value("diff").run()
    assert not at.exception, [e.value for e in at.exception]
    assert [i.captions for i in at.image] == [["red.png"]]
    assert f"image missing: {gone}" in [c.value for c in at.caption]


def test_the_evaluation_pictures_are_translated(eval_ws):
    project = ProjectStore(eval_ws).load("demo")
    gone = project.vision.image_folder + "/gone.png"
    eval_run(project, ["What colour is it?"], [gone], {5: ["a red circle"]})
    at = open_page(eval_ws, "pages/configure.py", lang="zh")
    assert "**评估图像**：为每张图像提一个问题，两个阶段的每个检查点都会提问（最多 10 个）" in [m.value for m in at.markdown]
    at = open_page(eval_ws, "pages/results.py", lang="zh")
    assert f"图像缺失：{gone}" in [c.value for c in at.caption]
