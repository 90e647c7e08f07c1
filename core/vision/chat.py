"""Ask a LLaVA model (LLM + CLIP vision encoder + projector) about an image, as ``xtuner chat --llava
--image`` does: the picture squared and preprocessed, the encoder's second-last layer without its CLS token
projected into the LLM's embeddings where ``<image>`` stands in the prompt. Greedy, for the smoke and the page.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from core.deploy import chat
from core.vision.dataset import IMAGE_TOKEN

VISUAL_SELECT_LAYER = -2  # LLaVAModel's default
ANSWER_TOKENS = 40  # new tokens of an answer about an image: the demo's captions fit several times


@dataclass
class VisionModel:
    llm: chat.LoadedModel
    encoder: object
    processor: object
    projector: object


def load(llm_dir: str, encoder_dir: str, projector_dir: Optional[str] = None, device: str = "cpu",
         seed: int = 0, encoder_adapter: Optional[str] = None) -> VisionModel:
    """The three parts; without ``projector_dir`` an untrained projector (what stage 1 starts from);
    ``encoder_adapter``: stage 2's LoRA on the encoder (``visual_encoder_adapter/``), merged in."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionModel
    from xtuner.model.modules import ProjectorConfig, ProjectorModel

    llm = chat.load_model(llm_dir, device=device)
    encoder = CLIPVisionModel.from_pretrained(encoder_dir, torch_dtype=torch.float32)
    if encoder_adapter:
        from peft import PeftModel

        encoder = PeftModel.from_pretrained(encoder, encoder_adapter).merge_and_unload()
    encoder = encoder.to(device).eval()
    processor = CLIPImageProcessor.from_pretrained(encoder_dir)
    if projector_dir:
        projector = ProjectorModel.from_pretrained(projector_dir, torch_dtype=torch.float32)
    else:
        torch.manual_seed(seed)
        projector = ProjectorModel(ProjectorConfig(visual_hidden_size=encoder.config.hidden_size,
                                                   llm_hidden_size=llm.model.config.hidden_size, depth=2))
    return VisionModel(llm, encoder, processor, projector.to(device).eval())


def start_stream(vm: VisionModel, image, question: str, template: str,
                 settings: Optional[chat.GenerationSettings] = None) -> chat.Stream:
    """Start answering ``question`` about ``image`` (a path or a binary file object) in a background thread,
    greedy unless ``settings`` say otherwise; the answer grows in the returned stream."""
    import torch
    from PIL import Image
    from xtuner.dataset.utils import expand2square
    from xtuner.model.utils import prepare_inputs_labels_for_multimodal
    from xtuner.utils import IMAGE_TOKEN_INDEX

    device = vm.llm.device
    with Image.open(image) as im:
        image = expand2square(im.convert("RGB"), tuple(int(x * 255) for x in vm.processor.image_mean))
    pixels = vm.processor.preprocess(image, return_tensors="pt")["pixel_values"].to(device)
    tok = vm.llm.tokenizer
    before, after = chat.build_prompt(template, f"{IMAGE_TOKEN}\n{question}").split(IMAGE_TOKEN, 1)
    ids = tok.encode(before) + [IMAGE_TOKEN_INDEX] + tok.encode(after, add_special_tokens=False)
    with torch.inference_mode():
        hidden = vm.encoder(pixels, output_hidden_states=True).hidden_states[VISUAL_SELECT_LAYER][:, 1:]
        inputs = prepare_inputs_labels_for_multimodal(llm=vm.llm.model, input_ids=torch.tensor([ids], device=device),
                                                      pixel_values=vm.projector(hidden))
    inputs = {k: v for k, v in inputs.items() if v is not None}
    return chat.stream_generate(vm.llm, template, inputs,
                                settings or chat.GenerationSettings(max_new_tokens=ANSWER_TOKENS))


def answer(vm: VisionModel, image, question: str, template: str, max_new_tokens: int = ANSWER_TOKENS) -> str:
    """The whole greedy answer to ``question`` about ``image``."""
    return start_stream(vm, image, question, template, chat.GenerationSettings(max_new_tokens=max_new_tokens)).result()
