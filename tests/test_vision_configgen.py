"""core.vision.configgen: LLaVA stage 1/2 configs with user values as literals, and the checks between stages."""
import ast
import json

import pytest

from core.train.configgen import ConfigError, literal_assignments
from core.vision.configgen import VisionSpec, checked, render

HOSTILE = "x'; import os; os.system('touch /tmp/pwned') #\"\n''' {lr} \\"


def folders(tmp_path, vision_hidden=32, llm_hidden=64, vision_type="clip_vision_model"):
    enc, llm = tmp_path / "enc", tmp_path / "llm"
    enc.mkdir(exist_ok=True)
    llm.mkdir(exist_ok=True)
    (enc / "config.json").write_text(json.dumps({"model_type": vision_type, "hidden_size": vision_hidden}))
    (llm / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": llm_hidden}))
    return str(enc), str(llm)


def stage1_checkpoint(tmp_path, vision_hidden=32, llm_hidden=64):
    run = tmp_path / "runs" / "s1"
    (run / "work_dir").mkdir(parents=True, exist_ok=True)
    (run / "run.json").write_text(json.dumps({"spec": {"stage": 1, "visual_hidden_size": vision_hidden,
                                                       "llm_hidden_size": llm_hidden}}))
    pth = run / "work_dir" / "iter_10.pth"
    pth.write_bytes(b"checkpoint")
    return str(pth)


def spec(tmp_path, **kw):
    enc, llm = folders(tmp_path)
    base = dict(stage=1, llm_path=llm, encoder_path=enc, data_path=HOSTILE, image_folder=HOSTILE + "/img",
                prompt_template="qwen_chat", device="cpu")
    return VisionSpec(**{**base, **kw})


def test_hostile_strings_stay_literals_in_both_stages(tmp_path):
    s1 = checked(spec(tmp_path))
    text = render(s1)
    values = literal_assignments(text)
    assert values["data_path"] == HOSTILE and values["image_folder"] == HOSTILE + "/img"
    assert values["studio_llava_stage"] == 1 and values["pretrained_pth"] is None
    assert "pwned" not in "".join(ast.unparse(n) for n in ast.parse(text).body if not isinstance(n, ast.Assign))
    assert "llm_lora" not in text and "freeze_llm=True" in text and "freeze_visual_encoder=True" in text
    s2 = checked(spec(tmp_path, stage=2, pretrained_pth=stage1_checkpoint(tmp_path), lora_r=8, encoder_lora=True))
    text2 = render(s2)
    assert literal_assignments(text2)["pretrained_pth"].endswith("iter_10.pth")
    assert "llm_lora=dict(type=LoraConfig, r=8," in text2 and "visual_encoder_lora=dict(" in text2
    assert "OptimWrapper,  # CPU" in text2 and "backend='gloo'" in text2


def test_stage_two_needs_a_stage_one_checkpoint(tmp_path):
    for pth in (None, str(tmp_path / "missing.pth")):
        with pytest.raises(ConfigError, match="Stage 2 needs the projector trained in stage 1"):
            checked(spec(tmp_path, stage=2, pretrained_pth=pth))
    other = tmp_path / "other.pth"  # a file, but not a stage-1 run's checkpoint
    other.write_bytes(b"x")
    with pytest.raises(ConfigError, match="Stage 2 needs the projector"):
        checked(spec(tmp_path, stage=2, pretrained_pth=str(other)))


def test_a_changed_pair_and_a_non_encoder_are_named(tmp_path):
    pth = stage1_checkpoint(tmp_path, vision_hidden=1024, llm_hidden=2048)
    with pytest.raises(ConfigError) as e:
        checked(spec(tmp_path, stage=2, pretrained_pth=pth))
    assert str(e.value) == ("The stage-1 projector maps a 1024-wide encoder to a 2048-wide LLM, but this pair is "
                            "32 → 64 (hidden sizes): use the encoder and LLM of stage 1.")
    s1 = spec(tmp_path)
    folders(tmp_path, vision_type="qwen2")  # an LLM given as the encoder
    with pytest.raises(ConfigError, match="is not a vision encoder"):
        checked(s1)
    with pytest.raises(ConfigError, match="has no readable config.json"):
        checked(spec(tmp_path).model_copy(update={"llm_path": str(tmp_path / "nowhere")}))


def test_qlora_needs_a_gpu_and_templates_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="QLoRA needs an NVIDIA GPU"):
        checked(spec(tmp_path, stage=2, method="qlora", pretrained_pth=stage1_checkpoint(tmp_path)))
    with pytest.raises(ValueError, match="Unknown prompt template"):  # pydantic wraps the ConfigError
        spec(tmp_path, prompt_template="qwen_chat; import os")
    gpu = render(checked(spec(tmp_path, stage=2, method="qlora", device="cuda",
                              pretrained_pth=stage1_checkpoint(tmp_path))))
    assert "BitsAndBytesConfig, load_in_4bit=True" in gpu and "AmpOptimWrapper" in gpu


def test_a_stage_run_is_the_apps_run_and_a_refused_one_leaves_nothing(tmp_path):
    from core.project import ProjectStore
    from core.train.runs import list_runs, train_argv
    from core.vision.runs import new_stage_run

    project = ProjectStore(tmp_path / "ws").create("vl", method="lora", prompt_template="qwen_chat")
    run = new_stage_run(project, spec(tmp_path))
    assert run.id.endswith("-llava-stage1") and list_runs(project) == [run]
    assert run.spec["stage"] == 1 and (run.spec["visual_hidden_size"], run.spec["llm_hidden_size"]) == (32, 64)
    values = literal_assignments(run.config_path.read_text())
    assert values["studio_progress_file"] == str(run.progress_path) and values["data_path"] == HOSTILE
    assert train_argv(run)[1:4] == ["-m", "core.train.xtuner_entry", "train"]  # started like any run
    with pytest.raises(ConfigError, match="Stage 2 needs the projector"):
        new_stage_run(project, spec(tmp_path, stage=2, pretrained_pth=str(run.config_path)))
    assert list_runs(project) == [run]
