"""A converted LLaVA checkpoint as one ``transformers`` folder: ``LlavaForConditionalGeneration`` + ``LlavaProcessor``.

XTuner 0.2.0's own ``pth_to_hf --save-format huggingface`` takes Llama LLMs only and writes the layout of
transformers before 4.52 (it fails on today's); this builds the same model from the parts the conversion job
already wrote, for any causal LM transformers' LLaVA can hold (Qwen2/3, Llama, …):

- the merged LLM → ``model.language_model`` and ``lm_head``; ``<image>`` added to its tokenizer as a special token
  (the embedding table grows by one row when the token is new: the mean of the others);
- the CLIP tower (with stage 2's encoder LoRA merged) → ``model.vision_tower``;
- XTuner's projector (Linear, GELU, Linear) → ``model.multi_modal_projector.linear_1/2``;
- the encoder's second-last layer without its CLS token, as ``LLaVAModel`` uses it.

``python -m core.vision.hf_export LLM ENCODER PROJECTOR OUT [--encoder-adapter DIR]``; OUT is written under a
temporary name and renamed when complete. XTuner pads each picture to a square before the CLIP processor and
transformers' processor does not: answers are the same for square pictures.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Optional

from core.vision.chat import IMAGE_TOKEN, VISUAL_SELECT_LAYER


def export(llm_dir: str, encoder_dir: str, projector_dir: str, out_dir: str,
           encoder_adapter: Optional[str] = None) -> Path:
    from accelerate import init_empty_weights
    from transformers import (AddedToken, AutoModelForCausalLM, AutoTokenizer, CLIPImageProcessor, CLIPVisionModel,
                              LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor)
    from xtuner.model.modules import ProjectorModel

    out = Path(out_dir)
    llm = AutoModelForCausalLM.from_pretrained(llm_dir, torch_dtype="auto")  # as merged: fp16 on a GPU box
    dtype = llm.dtype
    encoder = CLIPVisionModel.from_pretrained(encoder_dir, torch_dtype=dtype)
    if encoder_adapter:
        from peft import PeftModel

        encoder = PeftModel.from_pretrained(encoder, encoder_adapter).merge_and_unload()
    projector = ProjectorModel.from_pretrained(projector_dir, torch_dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(llm_dir)
    tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)], special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    vision = encoder.config
    config = LlavaConfig(
        text_config=llm.config, vision_config=vision, image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        projector_hidden_act=projector.config.hidden_act, vision_feature_select_strategy="default",
        vision_feature_layer=VISUAL_SELECT_LAYER, image_seq_length=(vision.image_size // vision.patch_size) ** 2,
        multimodal_projector_bias=projector.config.bias, tie_word_embeddings=llm.config.tie_word_embeddings,
        torch_dtype=dtype)
    weights = {f"model.language_model.{k}": v for k, v in llm.get_decoder().state_dict().items()}
    weights["lm_head.weight"] = llm.lm_head.weight
    weights.update({f"model.vision_tower.{k}": v for k, v in encoder.state_dict().items()})
    for i, name in ((0, "linear_1"), (2, "linear_2")):  # XTuner's Sequential(Linear, GELU, Linear)
        weights.update({f"model.multi_modal_projector.{name}.{k}": v
                        for k, v in projector.model[i].state_dict().items()})
    with init_empty_weights():  # no second copy of the weights in memory
        model = LlavaForConditionalGeneration(config)
    model.load_state_dict(weights, strict=True, assign=True)
    model.tie_weights()
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    model.generation_config = llm.generation_config
    processor = LlavaProcessor(image_processor=CLIPImageProcessor.from_pretrained(encoder_dir), tokenizer=tokenizer,
                               patch_size=vision.patch_size, vision_feature_select_strategy="default",
                               num_additional_image_tokens=1, image_token=IMAGE_TOKEN)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    processor.save_pretrained(partial)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return out


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("llm")
    ap.add_argument("encoder")
    ap.add_argument("projector")
    ap.add_argument("out")
    ap.add_argument("--encoder-adapter")
    a = ap.parse_args(argv)
    path = export(a.llm, a.encoder, a.projector, a.out, a.encoder_adapter)
    print(f"transformers LLaVA folder written: {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
