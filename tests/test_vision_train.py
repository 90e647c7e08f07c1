"""Vision-language Configure and Train: the project's LLaVA setup, each stage's spec and memory estimate, the
two linked runs on the pages (AppTest, English and Chinese)."""
import json
import shutil
import zipfile

import pytest

from core.errors import UserError
from core.models.estimate import encoder_shape_from_config, estimate, shape_from_config, vision_estimate
from core.project import Hyperparams, ProjectStore, VisionSetup
from core.vision import runs as vruns
from tests.apptests import open_page

CLIP_L_336 = {"model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096,
              "num_hidden_layers": 24, "num_attention_heads": 16, "image_size": 336, "patch_size": 14}
SIGLIP_SO400M = {"model_type": "siglip", "vision_config": {"hidden_size": 1152, "intermediate_size": 4304,
                                                           "num_hidden_layers": 27, "image_size": 384,
                                                           "patch_size": 14}}
QWEN3_0_6B = {"hidden_size": 1024, "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
              "intermediate_size": 3072, "vocab_size": 151936, "tie_word_embeddings": True, "head_dim": 128}


def test_encoder_sizes_from_config_match_the_real_towers():
    """Counted by transformers' CLIPVisionModel / SiglipVisionModel on the meta device: 303,507,456 and
    428,225,600 parameters; 576 and 729 patches per image."""
    clip, siglip = encoder_shape_from_config(CLIP_L_336), encoder_shape_from_config(SIGLIP_SO400M)
    assert (clip.params, clip.image_tokens) == (303_507_456, 576)
    assert (siglip.params, siglip.image_tokens) == (428_225_600, 729)
    assert clip.linear_in_out == 442_368  # in + out over every nn.Linear of the tower


def test_the_estimate_counts_the_encoder_and_the_image_tokens():
    llm, enc, hp = shape_from_config(QWEN3_0_6B), encoder_shape_from_config(CLIP_L_336), Hyperparams(max_length=512)
    text = estimate(llm, "lora", hp)
    stage1 = vision_estimate(llm, enc, 1, "lora", hp)
    stage2 = vision_estimate(llm, enc, 2, "lora", hp)
    stage2_enc = vision_estimate(llm, enc, 2, "lora", hp, encoder_lora=True)
    assert stage2.parts["vision encoder"] >= enc.params * 2  # fp16 tower on the GPU
    # the sequence is max_length + 575 more tokens: the LLM's activations and logits grow with it
    assert stage2.parts["logits and loss"] == text.parts["logits and loss"] * (512 + 575) // 512
    assert stage2.parts["activations"] > text.parts["activations"]
    # stage 1: the LLM frozen in fp16, only the projector (1024×1024 + 1024×1024 + biases) trains
    proj = 2 * 1024 * 1024 + 2 * 1024
    assert stage1.trainable_params == proj and stage1.parts["optimizer state"] == 0
    assert stage1.parts["weights"] == llm.total_params * 2
    assert stage2.trainable_params == text.trainable_params + proj
    assert stage2_enc.trainable_params == stage2.trainable_params + hp.lora_r * enc.linear_in_out
    assert stage2_enc.parts["vision encoder"] > stage2.parts["vision encoder"]
    assert stage2.total_params == llm.total_params + enc.params + proj


@pytest.fixture
def vision_ws(tmp_path, demo_workspace):
    """The demo workspace, its project in vision-language mode on a tiny CLIP tower (random weights)."""
    from core.vision.demo import build_encoder

    ws = tmp_path / "ws"
    shutil.copytree(demo_workspace, ws)
    store = ProjectStore(ws)
    project = store.load("demo")
    encoder = build_encoder(project.dir / "vision" / "encoder")
    images = project.dir / "vision" / "images"
    images.mkdir()
    store.save(project.model_copy(update={"vision": VisionSetup(
        encoder_path=str(encoder), pretrain_data=str(project.dir / "vision" / "pretrain.json"),
        finetune_data=str(project.dir / "vision" / "finetune.json"), image_folder=str(images))}))
    return ws


def test_stage_specs_come_from_the_project(vision_ws):
    project = ProjectStore(vision_ws).load("demo")
    one = vruns.stage_spec(project, 1, "cpu")
    two = vruns.stage_spec(project, 2, "cpu", "/runs/x/work_dir/iter_5.pth")
    assert (one.stage, one.data_path, one.lr, one.pretrained_pth) == (
        1, project.vision.pretrain_data, 1e-3, None)
    assert (two.stage, two.data_path, two.lr, two.pretrained_pth) == (
        2, project.vision.finetune_data, project.hyperparams.lr, "/runs/x/work_dir/iter_5.pth")
    assert one.llm_path == two.llm_path == project.model_path
    with pytest.raises(UserError) as e:
        vruns.stage_spec(project.model_copy(update={"vision": None}), 1, "cpu")
    assert e.value.text == vruns.E_NOT_VISION
    with pytest.raises(UserError) as e:
        vruns.stage_spec(project.model_copy(update={"vision": VisionSetup(image_folder="/x")}), 2, "cpu")
    assert e.value.params["missing"] == "encoder_path, finetune_data"


def test_stage_specs_carry_the_projects_evaluation_pairs(vision_ws):
    from core.project import VisionEvalPair

    project = ProjectStore(vision_ws).load("demo")
    pairs = [VisionEvalPair(image="a.png", question="What is it?"), VisionEvalPair(image="/b.png", question="Colour?")]
    project = project.model_copy(update={"vision": project.vision.model_copy(update={"evaluation": pairs})})
    for stage in (1, 2):
        s = vruns.stage_spec(project, stage, "cpu", "/runs/x/work_dir/iter_5.pth")
        assert (s.evaluation_images, s.evaluation_inputs) == (["a.png", "/b.png"], ["What is it?", "Colour?"])


def fake_stage1_run(project) -> str:
    """A stage-1 run with one complete checkpoint (a zip, as torch.save writes)."""
    run = project.runs_dir / "20260101-000000-llava-stage1"
    (run / "work_dir").mkdir(parents=True)
    with zipfile.ZipFile(run / "work_dir" / "iter_4.pth", "w") as z:
        z.writestr("data.pkl", b"x")
    (run / "config.py").write_text("# stage 1\n")
    (run / "run.json").write_text(json.dumps({"id": run.name, "kind": "llava", "spec": {
        "stage": 1, "llm_path": project.model_path, "encoder_path": project.vision.encoder_path}}))
    return run.name


def memory_table(at, column: str):
    """The stages' memory table (AppTest finds a dataframe by position, not by key)."""
    tables = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(tables) == 1, [list(d.value.columns) for d in at.dataframe]
    return tables[0]


def test_configure_switches_to_vision_language_and_shows_both_stages_memory(demo_workspace, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(demo_workspace, ws)
    at = open_page(ws, "pages/configure.py")
    assert not at.toggle(key="vt_mode").value and not any(t.key == "vt_encoder" for t in at.text_input)
    at.toggle(key="vt_mode").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert ProjectStore(ws).load("demo").vision == VisionSetup()
    from core.vision.demo import build_encoder

    encoder = build_encoder(tmp_path / "encoder")
    at.text_input(key="vt_encoder").set_value(str(encoder))
    at.checkbox(key="vt_enc_lora").check()
    at.button(key="FormSubmitter:vt_form-Save vision-language settings").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    saved = ProjectStore(ws).load("demo").vision
    assert saved.encoder_path == str(encoder) and saved.encoder_lora
    table = memory_table(at, "stage")
    assert list(table["stage"]) == ["Stage 1", "Stage 2"]
    tokens = [c.value for c in at.caption if "each image adds 64 tokens" in c.value]
    assert tokens, [c.value for c in at.caption]
    at.toggle(key="vt_mode").set_value(False).run()
    assert ProjectStore(ws).load("demo").vision is None


def test_train_offers_stage_2_from_a_stage_1_checkpoint(vision_ws):
    at = open_page(vision_ws, "pages/train.py")
    assert not at.button(key="vt_start1").disabled
    assert "Stage 2 starts from a stage-1 checkpoint: train stage 1 first." in [c.value for c in at.caption]
    name = fake_stage1_run(ProjectStore(vision_ws).load("demo"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.button(key="vt_start2").label == f"Start stage 2 from {name}/iter_4.pth"
    at.button(key="vt_start2").click().run()
    # the fake checkpoint has no run.json spec hidden sizes matching: refused with the reason, nothing started
    assert any("(hidden sizes): use the encoder and LLM of stage 1." in e.value for e in at.error), [e.value for e in at.error]


def test_the_vision_language_widgets_are_translated(vision_ws):
    fake_stage1_run(ProjectStore(vision_ws).load("demo"))
    at = open_page(vision_ws, "pages/train.py", lang="zh")
    assert at.button(key="vt_start1").label == "开始第 1 阶段"
    assert at.button(key="vt_start2").label.startswith("从 20260101-000000-llava-stage1/iter_4.pth 开始第 2 阶段")
    at = open_page(vision_ws, "pages/configure.py", lang="zh")
    assert at.toggle(key="vt_mode").label == "训练视觉-语言模型（两个阶段）"
    assert list(memory_table(at, "阶段")["阶段"]) == ["第 1 阶段", "第 2 阶段"]


@pytest.mark.slow
def test_stage_1_trains_on_the_tiny_demo_and_stage_2_starts_from_its_checkpoint(tmp_path, demo_workspace):
    """The real thing once: Start stage 1 on the tiny vision-language demo trains the projector to a checkpoint;
    Start stage 2 from it writes that checkpoint as pretrained_pth (then it is stopped: the smoke trains it)."""
    from core import jobs
    from core.train.runs import Run
    from core.vision import demo as vdemo

    ws = tmp_path / "ws"
    shutil.copytree(demo_workspace, ws)
    store = ProjectStore(ws)
    project = store.load("demo")
    demo = vdemo.build(project.dir / "vision", copies=4)
    store.save(project.model_copy(update={
        "model_path": str(demo.llm), "prompt_template": "qwen_chat",
        "hyperparams": project.hyperparams.model_copy(update={
            "max_epochs": 1, "batch_size": 4, "max_length": 128, "save_steps": 1000, "logging_interval": 2}),
        "vision": VisionSetup(encoder_path=str(demo.encoder), pretrain_data=str(demo.pretrain),
                              finetune_data=str(demo.finetune), image_folder=str(demo.images))}))
    at = open_page(ws, "pages/train.py")
    at.button(key="vt_start1").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    stage1 = Run(store.load("demo").runs_dir / at.session_state["train_run_select"])
    assert stage1.spec["stage"] == 1 and stage1.spec["pretrained_pth"] is None
    job = jobs.wait_job(stage1.dir, timeout=600)
    assert job.state == "succeeded", stage1.log_path.read_text(errors="replace")[-3000:]
    (it, ckpt), = stage1.complete_checkpoints()

    at.run()
    assert at.button(key="vt_start2").label == f"Start stage 2 from {stage1.id}/iter_{it}.pth"
    at.button(key="vt_start2").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    stage2 = Run(stage1.dir.parent / at.session_state["train_run_select"])
    try:
        assert stage2.spec["stage"] == 2 and stage2.spec["pretrained_pth"] == str(ckpt)
        assert f"pretrained_pth = {str(ckpt)!r}" in stage2.config_path.read_text()
    finally:
        jobs.request_stop(stage2.dir)
        jobs.wait_job(stage2.dir, timeout=300)  # nothing left running


def test_the_catalog_lists_clip_and_siglip_with_their_hub_ids_and_sizes():
    from core.models import catalog
    from core.models.estimate import encoder_shape_from_config

    entries = {e.id: e for e in catalog.encoders()}
    assert entries["clip-vit-large-patch14-336"].sources == {"huggingface": "openai/clip-vit-large-patch14-336"}
    assert entries["siglip-so400m-patch14-384"].sources == {"huggingface": "google/siglip-so400m-patch14-384"}
    assert entries["clip-vit-large-patch14-336"].trains and not entries["siglip-so400m-patch14-384"].trains
    for e in entries.values():
        assert e.source.strip(), e.id
        assert abs(encoder_shape_from_config(e.config).params / (e.params_m * 1e6) - 1) < 0.01, e.id


def finished_download(project, entry_id: str) -> str:
    """What a finished catalog download leaves: the folder with hub.py's marker."""
    from core.models import hub

    dest = hub.download_dir(project.download_cache, "model", entry_id)
    dest.mkdir(parents=True)
    (dest / hub.MARKER).write_text("{}")
    return str(dest)


def test_model_data_picks_a_catalog_encoder_for_the_project(demo_workspace, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(demo_workspace, ws)
    project = ProjectStore(ws).load("demo")
    at = open_page(ws, "pages/model_data.py")
    at.selectbox(key="vl_encoder_entry").select_index(1).run()  # SigLIP: listed, not trainable here
    assert any("cannot be trained here" in w.value for w in at.warning), [w.value for w in at.warning]
    assert not any(b.key == "start-model-siglip-so400m-patch14-384" for b in at.button)
    at.selectbox(key="vl_encoder_entry").select_index(0).run()
    assert "303,507,456 parameters · 576 image tokens per picture · licence MIT" in [c.value for c in at.caption]
    assert any("`openai/clip-vit-large-patch14-336`" in m.value for m in at.markdown)
    assert at.button(key="start-model-clip-vit-large-patch14-336").label == "Download"
    dest = finished_download(project, "clip-vit-large-patch14-336")
    at.run()
    at.button(key="vl_use_encoder").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert ProjectStore(ws).load("demo").vision.encoder_path == dest
    assert "The project's vision encoder." in [s.value for s in at.success]


def test_the_encoder_catalog_is_translated(demo_workspace):
    at = open_page(demo_workspace, "pages/model_data.py", lang="zh")
    assert at.selectbox(key="vl_encoder_entry").label == "目录中的编码器"
    assert "303,507,456 个参数 · 每张图像 576 个图像 token · 许可证 MIT" in [c.value for c in at.caption]
