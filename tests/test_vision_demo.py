"""core.vision.demo without its models: the pictures and both stages' LLaVA files pass the LLaVA check."""
import json
import random

from core.data import datasets
from core.vision import dataset as vd
from core.vision import demo


def test_demo_pictures_and_records_are_a_valid_llava_dataset(tmp_path):
    rng = random.Random(0)
    pictures = []
    for colour in demo.COLOURS:
        for shape in demo.SHAPES:
            rel = f"train/{colour}-{shape}.png"
            demo.draw(tmp_path / "images" / rel, colour, shape, rng)
            pictures.append((rel, colour, shape))
    for stage in (1, 2):
        path = tmp_path / f"stage{stage}.json"
        path.write_text(json.dumps(demo.records(pictures, stage)))
        r = vd.validate(path, tmp_path / "images")
        assert r.ok and (r.records, r.with_image, r.images.count) == (9, 9, 9), [str(e) for e in r.errors]
        assert (r.images.min_side, r.images.max_side) == (demo.IMAGE_SIZE, demo.IMAGE_SIZE)
        assert not datasets.validate(path).ok  # and text mode refuses it
    first = demo.records(pictures, 2)[0]["conversations"]
    assert first[0]["value"].startswith("<image>\n") and first[1]["value"] == "a red circle on a white background"


def test_an_answer_names_colour_and_shape_only_when_it_names_no_other():
    assert demo.names_it("a red circle on a white background.", "red", "circle")
    assert not demo.names_it("a red square on a white background", "red", "circle")
    assert not demo.names_it("a red circle, a blue circle", "red", "circle")
    assert not demo.names_it("red", "red", "circle")
