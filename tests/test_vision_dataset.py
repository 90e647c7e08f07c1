"""core.vision.dataset: a LLaVA file + image folder checked record by record, with generated images."""
import json
import os
import struct
import zlib

import pytest
from PIL import Image

from core.vision import dataset as vd


def rec(i, image="img0.png", question="<image>\nWhat is it?", answer="A red circle."):
    r = {"id": str(i), "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]}
    if image is not None:
        r["image"] = image
    return r


def write(path, records, container="json"):
    if container == "json":
        path.write_text("[\n" + ",\n".join(map(json.dumps, records)) + "\n]\n")
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (32, 24), "red").save(images / "img0.png")
    Image.new("RGB", (16, 16), "blue").save(images / "img1.jpg")
    return images


def codes(r):
    return {(i.code, i.line, i.field) for i in r.errors}


@pytest.mark.parametrize("container", ["json", "jsonl"])
def test_a_good_file_is_clean_with_size_stats(tmp_path, folder, container):
    path = write(tmp_path / f"d.{container}", [rec(0), rec(1, "img1.jpg"), rec(2, "img0.png")], container)
    r = vd.validate(path, folder)
    assert r.ok, [str(e) for e in r.errors]
    assert (r.records, r.with_image, r.images.count) == (3, 3, 2)  # img0 is checked once
    assert (r.images.min_side, r.images.max_side) == (16, 32)
    assert r.images.formats == {"PNG": 1, "JPEG": 1}
    assert not r.warnings


def test_record_shape_errors_name_line_and_field(tmp_path, folder):
    records = [
        rec(0, question="What is it?"),  # image, no <image>
        rec(1, question="<image> <image> twice"),
        rec(2, image=None),  # <image> without an image
        {"conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "x"}], "image": "img0.png"},
        {"id": "4", "image": "img0.png", "conversations": [{"from": "user", "value": "<image>"},
                                                           {"from": "gpt", "value": 3}]},
        {"id": "5", "image": ["img0.png"], "conversations": [{"from": "human", "value": "<image>"}]},
        [1, 2],
    ]
    r = vd.validate(write(tmp_path / "d.json", records), folder)
    assert codes(r) == {
        ("no_image_token", 2, "conversations"),
        ("many_image_tokens", 3, "conversations"),
        ("token_without_image", 4, "conversations"),
        ("missing_field", 5, "id"),
        ("bad_role", 6, "conversations[0].from"),
        ("wrong_type", 6, "conversations[1].value"),
        ("wrong_type", 7, "image"),
        ("not_object", 8, ""),
    }
    assert r.records == 0
    many = next(e for e in r.errors if e.code == "many_image_tokens")
    assert str(many) == "d.json, line 3, conversations: 2 <image> tokens in one record: the recipe expects exactly one."


def test_a_text_only_record_is_a_warning(tmp_path, folder):
    r = vd.validate(write(tmp_path / "d.json", [rec(0), rec(1, image=None, question="Hi")]), folder)
    assert r.ok and r.with_image == 1
    assert r.warning_counts == {"no_image": 1, "unreferenced": 1}


def test_missing_and_escaping_images_are_not_read(tmp_path, folder):
    outside = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(outside)
    os.symlink(outside, folder / "link.png")
    (folder / "sub").mkdir()
    os.symlink(tmp_path, folder / "sub" / "up")
    records = [rec(0, "nope.png"), rec(1, "../secret.png"), rec(2, str(outside)), rec(3, "link.png"),
               rec(4, "sub/up/secret.png"), rec(5, "sub/../img0.png")]
    r = vd.validate(write(tmp_path / "d.json", records), folder)
    assert codes(r) == {("image_missing", 2, "image")} | {("escapes_folder", n, "image") for n in (3, 4, 5, 6)}
    assert r.records == 6 and r.images.count == 1  # only img0.png was opened
    assert "../secret.png is outside the image folder" in str(r.errors[1])


def test_bad_image_files_each_get_a_message(tmp_path, folder):
    (folder / "text.jpg").write_text("not an image at all")
    good = folder / "img0.png"
    data = good.read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    big = folder / "big.png"
    with open(big, "wb") as f:  # sparse: a 1 GB file that takes no disk space
        f.write(data)
        f.truncate(2**30)
    (folder / "wide.png").write_bytes(_png_header(10_000, 10_000))
    (folder / "bomb.png").write_bytes(_png_header(50_000, 50_000))
    records = [rec(0, "text.jpg"), rec(1, "cut.png"), rec(2, "big.png"), rec(3, "wide.png"), rec(4, "text.jpg"),
               rec(5, "bomb.png")]
    r = vd.validate(write(tmp_path / "d.json", records), folder)
    assert codes(r) == {("not_image", 2, "image"), ("broken_image", 3, "image"), ("image_too_big", 4, "image"),
                        ("image_too_many_pixels", 5, "image"), ("not_image", 6, "image"),
                        ("image_too_many_pixels", 7, "image")}
    too_big = next(e for e in r.errors if e.code == "image_too_big")
    assert too_big.message == "big.png is 1024 MB, over the 64 MB limit: shrink it."
    assert "10000×10000 pixels" in next(e for e in r.errors if e.code == "image_too_many_pixels").message


def _png_header(width, height) -> bytes:
    """A PNG whose header claims ``width``×``height`` (its data would be gigabytes): never decoded."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def test_images_never_referenced_are_listed(tmp_path, folder):
    (folder / "notes.txt").write_text("not an image")
    r = vd.validate(write(tmp_path / "d.json", [rec(0)]), folder)
    assert r.ok
    assert [(w.code, w.params["path"]) for w in r.warnings] == [("unreferenced", "img1.jpg")]


def test_unreadable_files_and_folders(tmp_path, folder):
    assert codes(vd.validate(write(tmp_path / "d.json", [rec(0)]), tmp_path / "none")) == {("no_folder", None, "")}
    assert codes(vd.validate(write(tmp_path / "d.json", [rec(0)], "jsonl"), folder)) == {("wrong_suffix", None, "")}
    (tmp_path / "e.json").write_text("")
    assert codes(vd.validate(tmp_path / "e.json", folder)) == {("empty_file", None, "")}
    (tmp_path / "t.json").write_text('[{"id": "0", "image": "img0.png", "conversations": [')
    assert {e.code for e in vd.validate(tmp_path / "t.json", folder).errors} == {"truncated"}


def test_record_turns_pair_questions_and_answers_as_llava_map_fn_does():
    from xtuner.dataset.map_fns import llava_map_fn

    r = {"id": "0", "image": "a.png", "conversations": [
        {"from": "gpt", "value": "skipped: an answer before any question"},
        {"from": "human", "value": "What colour? <image>  "}, {"from": "gpt", "value": "Red."},
        {"from": "human", "value": "And the shape?"}, {"from": "human", "value": " Be brief."},
        {"from": "gpt", "value": "A circle."}]}
    turns = vd.record_turns(json.loads(json.dumps(r)))
    assert turns == [("", "<image>\nWhat colour?", "Red.", True), ("", "And the shape? Be brief.", "A circle.", True)]
    theirs = llava_map_fn(json.loads(json.dumps(r)))["conversation"]  # XTuner's own, the reference
    assert [(t[1], t[2]) for t in turns] == [(c["input"], c["output"]) for c in theirs]


def test_preview_image_is_only_a_file_inside_the_folder(tmp_path, folder):
    path = write(tmp_path / "d.json", [rec(0), rec(1, None, question="Hi?")])
    r = vd.validate(path, folder)
    assert vd.preview_image(r, r.preview[0]) == folder.resolve() / "img0.png"
    assert vd.preview_image(r, r.preview[1]) is None  # text-only
    assert vd.preview_image(r, rec(2, "../d.json")) is None  # outside: never shown
    assert vd.preview_image(r, rec(3, "gone.png")) is None
