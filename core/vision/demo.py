"""The embedded vision-language demo, built offline: a tiny random CLIP-shaped vision tower, the tiny chat
LLM of ``core.demo`` (its tokenizer also learns the captions' words) and generated pictures — a coloured
shape on a white background, captioned "a red circle on a white background" — as LLaVA JSON for stage 1
(pretrain: captions) and stage 2 (finetune: questions about the picture), plus held-out pictures.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from core.fsutil import atomic_write_text

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220)}
SHAPES = ("circle", "square", "triangle")
BACKGROUND = "white"
IMAGE_SIZE = 32  # pixels; the tower's patches are 4×4: 64 image tokens
PATCH_SIZE = 4
QUESTIONS = ("What is in the picture?", "Describe the image.", "What do you see?")
QUESTION = QUESTIONS[0]


def caption(colour: str, shape: str) -> str:
    return f"a {colour} {shape} on a {BACKGROUND} background"


@dataclass
class VisionDemo:
    root: Path
    llm: Path
    encoder: Path
    images: Path  # the image folder of both datasets
    pretrain: Path  # LLaVA JSON, stage 1
    finetune: Path  # LLaVA JSON, stage 2
    heldout: list[tuple[Path, str, str]]  # (image, colour, shape), never trained on


def draw(path: Path, colour: str, shape: str, rng: random.Random) -> None:
    """One picture: ``shape`` in ``colour``, near the centre at a random size, on a white square (a fixed place
    keeps the tiny random tower's patches comparable across pictures)."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
    d = ImageDraw.Draw(im)
    size = rng.randint(18, 26)
    x, y = [(IMAGE_SIZE - size) // 2 + rng.randint(-2, 2) for _ in range(2)]
    box = (x, y, x + size, y + size)
    fill = COLOURS[colour]
    if shape == "circle":
        d.ellipse(box, fill=fill)
    elif shape == "square":
        d.rectangle(box, fill=fill)
    else:
        d.polygon([(x + size // 2, y), (x, y + size), (x + size, y + size)], fill=fill)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


ENCODERS = {  # CLIP vision tower shapes: the demo's tiny one, and CLIP ViT-L/14-336's (random weights, for GPUs)
    "tiny": dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2,
                 image_size=IMAGE_SIZE, patch_size=PATCH_SIZE),
    "clip-l-336": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                       image_size=336, patch_size=14),
}


def build_encoder(out_dir: str | Path, shape: str = "tiny", seed: int = 0) -> Path:
    """A randomly initialised CLIP vision tower of ``ENCODERS[shape]`` + its image processor, as a Hugging Face
    folder."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    out_dir = Path(out_dir)
    dims = ENCODERS[shape]
    config = CLIPVisionConfig(**dims, projection_dim=dims["hidden_size"])
    torch.manual_seed(seed)
    CLIPVisionModel(config).save_pretrained(out_dir, safe_serialization=True)
    side = dims["image_size"]
    CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side},
                       do_center_crop=True).save_pretrained(out_dir)
    return out_dir


def records(pictures: list[tuple[str, str, str]], stage: int) -> list[dict]:
    """LLaVA records for ``(image, colour, shape)``: stage 1 the bare caption, stage 2 a question."""
    out = []
    for i, (image, colour, shape) in enumerate(pictures):
        question = "" if stage == 1 else QUESTIONS[i % len(QUESTIONS)]
        out.append({"id": str(i), "image": image,
                    "conversations": [{"from": "human", "value": f"<image>\n{question}".strip()},
                                      {"from": "gpt", "value": caption(colour, shape)}]})
    return out


def build(root: str | Path, copies: int = 20, heldout_per_pair: int = 1, seed: int = 0,
          encoder: str = "tiny") -> VisionDemo:
    """Everything the demo needs under ``root``: llm/, encoder/ (``ENCODERS[encoder]``), images/, pretrain.json,
    finetune.json."""
    from core.demo import build_demo_model

    root = Path(root)
    rng = random.Random(seed)
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    llm = build_demo_model(root / "llm", extra_text=tuple(caption(c, s) for c, s in pairs) + QUESTIONS)
    encoder = build_encoder(root / "encoder", encoder)
    images = root / "images"
    train = []
    for n in range(copies):
        for colour, shape in pairs:
            rel = f"train/{colour}-{shape}-{n}.png"
            draw(images / rel, colour, shape, rng)
            train.append((rel, colour, shape))
    rng.shuffle(train)
    heldout = []
    for n in range(heldout_per_pair):
        for colour, shape in pairs:
            path = root / "heldout" / f"{colour}-{shape}-{n}.png"
            draw(path, colour, shape, rng)
            heldout.append((path, colour, shape))
    pretrain, finetune = root / "pretrain.json", root / "finetune.json"
    atomic_write_text(pretrain, json.dumps(records(train, 1), indent=1))
    atomic_write_text(finetune, json.dumps(records(train, 2), indent=1))
    return VisionDemo(root, llm, encoder, images, pretrain, finetune, heldout)


def names_it(answer: str, colour: str, shape: str) -> bool:
    """The answer names the right colour and shape, and no other colour or shape."""
    words = set(answer.lower().replace(".", " ").replace(",", " ").split())
    return (colour in words and shape in words and not (words & (set(COLOURS) - {colour}))
            and not (words & (set(SHAPES) - {shape})))
