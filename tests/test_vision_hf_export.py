"""core.vision.hf_export: XTuner's LLaVA parts (LLM, CLIP tower, projector) as one transformers LLaVA folder that
generates exactly the tokens the parts do, for a tiny random model and drawn pictures."""
import json
import random

import pytest

from core.deploy import chat
from core.project import ProjectStore
from core.vision import chat as vchat
from core.vision import demo as vdemo
from core.vision import hf_export

N = 12  # new tokens, EOS held off so both sides run the full length


@pytest.fixture(scope="module")
def parts(tmp_path_factory, demo_workspace):
    from xtuner.model.modules import ProjectorConfig, ProjectorModel

    root = tmp_path_factory.mktemp("llava_parts")
    llm = ProjectStore(demo_workspace).load("demo").model_path
    encoder = vdemo.build_encoder(root / "encoder")
    hidden = json.loads((root / "encoder" / "config.json").read_text())["hidden_size"]
    llm_hidden = json.loads(open(f"{llm}/config.json").read())["hidden_size"]
    ProjectorModel(ProjectorConfig(visual_hidden_size=hidden, llm_hidden_size=llm_hidden, depth=2)).save_pretrained(
        root / "projector")
    pictures = []
    for colour, shape in (("red", "circle"), ("blue", "triangle")):
        vdemo.draw(root / f"{colour}-{shape}.png", colour, shape, random.Random(0))
        pictures.append(root / f"{colour}-{shape}.png")
    return llm, str(encoder), str(root / "projector"), pictures, root


def test_the_transformers_folder_generates_the_tokens_xtuners_parts_do(parts):
    import torch
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    llm, encoder, projector, pictures, root = parts
    out = hf_export.export(llm, encoder, projector, str(root / "hf_llava"))
    assert (out / "config.json").is_file() and not (root / "hf_llava.partial").exists()
    model = LlavaForConditionalGeneration.from_pretrained(out, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(out)
    assert model.config.image_token_index == processor.tokenizer.convert_tokens_to_ids("<image>")
    parts_model = vchat.load(llm, encoder, projector)
    settings = chat.GenerationSettings(max_new_tokens=N, min_new_tokens=N)
    for picture in pictures:
        stream = vchat.start_stream(parts_model, str(picture), vdemo.QUESTION, "qwen_chat", settings)
        assert stream.wait(120) and not stream.error
        prompt = chat.build_prompt("qwen_chat", f"<image>\n{vdemo.QUESTION}")
        inputs = processor(images=Image.open(picture).convert("RGB"), text=prompt, return_tensors="pt")
        with torch.inference_mode():
            ids = model.generate(**inputs, max_new_tokens=N, min_new_tokens=N, do_sample=False)
        assert ids[0, inputs["input_ids"].shape[1]:].tolist() == stream._streamer.ids, picture.name


def test_a_rerun_replaces_the_folder_whole(parts):
    llm, encoder, projector, _pictures, root = parts
    target = root / "again"
    target.mkdir()
    (target / "stale.bin").write_bytes(b"from an earlier, interrupted export")
    hf_export.export(llm, encoder, projector, str(target))
    assert not (target / "stale.bin").exists() and (target / "model.safetensors").is_file()
