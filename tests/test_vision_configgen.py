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


def picture(path, colour="red"):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return path


def test_evaluation_pairs_render_as_an_evaluate_chat_hook_in_both_stages(tmp_path):
    images = tmp_path / "img"
    red, blue = picture(images / "red.png"), picture(tmp_path / "elsewhere" / "blue.png", "blue")
    questions = [HOSTILE, "What {colour} is it? {{x}} {"]
    s1 = checked(spec(tmp_path, image_folder=str(images), evaluation_images=["red.png", str(blue)],
                      evaluation_inputs=questions))
    assert s1.evaluation_images == [str(red.resolve()), str(blue.resolve())]  # relative: in the image folder
    for s in (s1, checked(s1.model_copy(update={"stage": 2, "pretrained_pth": stage1_checkpoint(tmp_path)}))):
        text = render(s)
        values = literal_assignments(text)
        assert values["evaluation_images"] == s1.evaluation_images and values["evaluation_inputs"] == questions
        hooks = [ast.unparse(n) for n in ast.walk(ast.parse(text))
                 if isinstance(n, ast.Call) and any(k.arg == "type" and ast.unparse(k.value) == "EvaluateChatHook"
                                                    for k in n.keywords)]
        assert hooks == ["dict(type=EvaluateChatHook, tokenizer=tokenizer, image_processor=image_processor, "
                         "evaluation_images=evaluation_images, evaluation_inputs=evaluation_inputs, "
                         "prompt_template=prompt_template, every_n_iters=save_steps, max_new_tokens=64, "
                         "generation_kwargs=dict(do_sample=False, temperature=None, top_p=None, top_k=None))"]
        assert "pwned" not in "".join(ast.unparse(n) for n in ast.parse(text).body if not isinstance(n, ast.Assign))


def test_hostile_questions_reach_the_model_as_written(tmp_path):
    """EvaluateChatHook formats the template's INSTRUCTION with the question as an argument (and runner.cfg):
    braces in a question are not format text, so they arrive unchanged; the Results page strips that prompt."""
    from core.data.templates import format_prompt, template_dict
    from core.results import evals

    question = "a {lr} b {{c}} } { \"quoted\" 'single'\nnext line"
    s = checked(spec(tmp_path, evaluation_images=[str(picture(tmp_path / "p.png"))], evaluation_inputs=[question]))
    values = literal_assignments(render(s))
    asked = values["evaluation_inputs"][0]
    instruction = template_dict("qwen_chat")["INSTRUCTION"]
    prompt = instruction.format(input="<image>\n" + asked, round=1, **values)  # as _eval_images does
    assert prompt == format_prompt("qwen_chat", "<image>\n" + question)
    vis = tmp_path / "work_dir" / "20260101_000000" / "vis_data"
    vis.mkdir(parents=True)
    (vis / "eval_outputs_iter_4.txt").write_text(f"Eval output 1:\n{prompt}a red circle<|im_end|>\n\n\n")
    assert evals.timeline(tmp_path / "work_dir", "qwen_chat", [question], images=True) == {5: ["a red circle"]}


def test_evaluation_images_must_be_readable_pictures(tmp_path):
    (tmp_path / "fake.png").write_bytes(b"not a picture")
    (tmp_path / "folder.png").mkdir()
    for path, message in ((tmp_path / "missing.png", f"Evaluation image {tmp_path / 'missing.png'} does not exist"),
                          (tmp_path / "folder.png", "Evaluation image"),
                          (tmp_path / "fake.png", f"{tmp_path / 'fake.png'} is not an image PIL can read")):
        with pytest.raises(ConfigError) as e:
            checked(spec(tmp_path, evaluation_images=[str(path)], evaluation_inputs=["What is it?"]))
        assert str(e.value).startswith(message), str(e.value)


def test_more_than_ten_pairs_or_unmatched_lists_are_refused(tmp_path):
    from core.project import VisionEvalPair, VisionSetup

    image = str(picture(tmp_path / "p.png"))
    with pytest.raises(ValueError, match="At most 10 evaluation questions"):
        spec(tmp_path, evaluation_images=[image] * 11, evaluation_inputs=["q"] * 11)
    with pytest.raises(ValueError, match="2 evaluation images for 1 questions: give one image per question"):
        spec(tmp_path, evaluation_images=[image] * 2, evaluation_inputs=["q"])
    with pytest.raises(ValueError, match="At most 10 evaluation questions"):
        VisionSetup(evaluation=[VisionEvalPair(image=image, question="q")] * 11)
    assert len(VisionSetup(evaluation=[VisionEvalPair(image=image, question="q")] * 10).evaluation) == 10
    assert VisionSetup.model_validate({"encoder_path": "/enc"}).evaluation == []  # a project saved before
    assert "EvaluateChatHook, tokenizer" not in render(checked(spec(tmp_path)))  # no pairs: no evaluation
