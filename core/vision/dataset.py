"""A LLaVA dataset (JSON array or JSONL + an image folder) checked the way XTuner's ``LLaVADataset`` and
``llava_map_fn`` will read it, streaming, with the line and field of every problem.

A record: ``{"id", "image"?: "relative/path.jpg", "conversations": [{"from": "human"|"gpt", "value"}, …]}``;
a record with an image has exactly one ``<image>`` in its conversation. Images are opened only inside the
image folder (symlinks resolved first), their header read before anything is decoded (file size and pixel
limits), then verified and decoded with PIL. Writes nothing.
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from core.data.datareader import ReadError, iter_records, sniff
from core.data.datasets import T_CANNOT_READ, IssueLog, as_object, type_name

IMAGE_TOKEN = "<image>"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
MAX_IMAGE_BYTES = 64 * 1024 * 1024  # a larger file is refused before it is opened
MAX_PIXELS = 8192 * 8192  # from the header, before decoding
ROLES = ("human", "gpt")

T_NO_FOLDER = "The image folder {folder} does not exist."
T_NO_RECORDS = "The file holds no records."
T_SUFFIX = ("XTuner's LLaVADataset reads a JSON array from a .json file and JSON Lines from a .jsonl file; this "
            "{container} file ends in {suffix}: rename it.")
T_MISSING = "Missing: every LLaVA record needs this field."
T_TYPE = "Must be {expected}, got {got}."
T_ROLE = "{role!r} is not a role XTuner's llava_map_fn knows: use 'human' or 'gpt'."
T_NO_TOKEN = "The record has an image but no <image> in its conversation: put <image> in the first question."
T_MANY_TOKENS = "{n} <image> tokens in one record: the recipe expects exactly one."
T_TOKEN_NO_IMAGE = "<image> appears but the record has no \"image\" field."
T_ESCAPES = "{path} is outside the image folder (an absolute path, '..' or a symlink out): not read."
T_IMAGE_MISSING = "Image {path} does not exist in the image folder."
T_NOT_IMAGE = "{path} is not an image PIL can read (a file with an image name but other content?)."
T_TOO_BIG = "{path} is {mb} MB, over the {limit} MB limit: shrink it."
T_TOO_MANY_PIXELS = "{path} is {width}×{height} pixels, over the {limit} megapixel limit: shrink it."
T_PIXEL_BOMB = "{path} claims more pixels than PIL opens safely (a decompression bomb?): not decoded."
T_BROKEN_IMAGE = "{path} is damaged (truncated or corrupt): {error}."
W_UNREFERENCED = "{path} in the image folder is used by no record."
W_NO_IMAGE = "A text-only record (no image): allowed, trained with a blank image."
MESSAGES = [v for k, v in dict(globals()).items() if k.startswith(("T_", "W_")) and isinstance(v, str)]


@dataclass
class ImageStats:
    count: int = 0
    bytes: int = 0
    min_side: int = 0
    max_side: int = 0
    formats: dict[str, int] = field(default_factory=dict)

    def add(self, nbytes: int, width: int, height: int, fmt: str) -> None:
        self.min_side = min(self.min_side or min(width, height), width, height)
        self.max_side = max(self.max_side, width, height)
        self.count += 1
        self.bytes += nbytes
        self.formats[fmt] = self.formats.get(fmt, 0) + 1


@dataclass
class VisionReport(IssueLog):
    image_folder: Path
    container: Optional[str] = None
    records: int = 0  # readable records
    with_image: int = 0
    images: ImageStats = field(default_factory=ImageStats)
    preview: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.records > 0 and self.error_count == 0

def inside(folder: Path, rel: str) -> Optional[Path]:
    """``folder/rel`` with every symlink resolved, or None when that lies outside ``folder``."""
    if not rel or os.path.isabs(rel):
        return None
    root = os.path.realpath(folder)
    real = os.path.realpath(os.path.join(root, rel))
    return Path(real) if real.startswith(root + os.sep) else None


def check_image(path: Path, shown: str, max_bytes: int = MAX_IMAGE_BYTES,
                max_pixels: int = MAX_PIXELS) -> tuple[Optional[tuple], Optional[tuple[int, int, str]]]:
    """``(error, None)`` or ``(None, (width, height, format))`` for one image file (already known inside)."""
    from PIL import Image, UnidentifiedImageError

    try:
        size = path.stat().st_size
    except OSError:
        return ("image_missing", T_IMAGE_MISSING, {"path": shown}), None
    if size > max_bytes:
        return ("image_too_big", T_TOO_BIG, {"path": shown, "mb": size // 2**20, "limit": max_bytes // 2**20}), None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below decides
            im = Image.open(path)  # reads the header only
        with im:
            width, height, fmt = im.width, im.height, im.format or "?"
            if width * height > max_pixels:
                return ("image_too_many_pixels", T_TOO_MANY_PIXELS,
                        {"path": shown, "width": width, "height": height, "limit": max_pixels // 10**6}), None
            im.verify()
        with Image.open(path) as im:  # verify() leaves the image unusable; decoding finds truncated data
            im.load()
    except Image.DecompressionBombError:
        return ("image_too_many_pixels", T_PIXEL_BOMB, {"path": shown}), None
    except UnidentifiedImageError:
        return ("not_image", T_NOT_IMAGE, {"path": shown}), None
    except (OSError, SyntaxError, ValueError) as e:
        return ("broken_image", T_BROKEN_IMAGE, {"path": shown, "error": str(e) or type(e).__name__}), None
    return None, (width, height, fmt)


def _check_record(rec: dict, line: int, r: VisionReport) -> Optional[str]:
    """The record's image path (or "" for a text-only record); None when the record has an error."""
    bad = r.error_count
    if "id" not in rec:
        r.err("missing_field", T_MISSING, line, "id")
    conv = rec.get("conversations")
    tokens = 0
    if conv is None:
        r.err("missing_field", T_MISSING, line, "conversations")
    elif not isinstance(conv, list) or not conv:
        r.err("wrong_type", T_TYPE, line, "conversations", expected="a non-empty list", got=type_name(conv))
    else:
        for i, msg in enumerate(conv):
            where = f"conversations[{i}]"
            if not isinstance(msg, dict):
                r.err("wrong_type", T_TYPE, line, where, expected="an object", got=type_name(msg))
                continue
            if msg.get("from") not in ROLES:
                r.err("bad_role", T_ROLE, line, f"{where}.from", role=str(msg.get("from")))
            if not isinstance(msg.get("value"), str):
                r.err("wrong_type", T_TYPE, line, f"{where}.value", expected="text", got=type_name(msg.get("value")))
            else:
                tokens += msg["value"].count(IMAGE_TOKEN)
    image = rec.get("image")
    if image is None:
        if tokens:
            r.err("token_without_image", T_TOKEN_NO_IMAGE, line, "conversations")
        else:
            r.warn("no_image", W_NO_IMAGE, line, "image")
    elif not isinstance(image, str) or not image:
        r.err("wrong_type", T_TYPE, line, "image", expected="a relative path (text)", got=type_name(image))
    elif tokens == 0:
        r.err("no_image_token", T_NO_TOKEN, line, "conversations")
    elif tokens > 1:
        r.err("many_image_tokens", T_MANY_TOKENS, line, "conversations", n=tokens)
    if r.error_count > bad:
        return None
    return image or ""


def record_turns(rec: dict) -> list[tuple]:
    """A checked record as XTuner turns ``(system, input, output, with_loss)``, the way ``llava_map_fn`` pairs
    them: leading answers skipped, questions joined up to each answer, ``<image>`` moved to the front of its
    question on a line of its own."""
    turns, question = [], ""
    messages = list(rec.get("conversations") or [])
    while messages and messages[0].get("from") == "gpt":
        messages = messages[1:]
    for msg in messages:
        value = msg.get("value", "")
        if msg.get("from") == "human":
            if IMAGE_TOKEN in value:
                value = (IMAGE_TOKEN + "\n" + value.replace(IMAGE_TOKEN, "").strip()).strip()
            question += value
        else:
            turns.append(("", question, value, True))
            question = ""
    return turns


def preview_image(report: "VisionReport", rec: dict) -> Optional[Path]:
    """The readable image file of a previewed record, or None (text-only, outside the folder, missing)."""
    image = rec.get("image")
    real = inside(report.image_folder, image) if isinstance(image, str) else None
    return real if real is not None and real.is_file() else None


def validate(path: str | os.PathLike, image_folder: str | os.PathLike, preview_rows: int = 5,
             max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_PIXELS) -> VisionReport:
    """Read the whole LLaVA file and every image it names; report every problem (file, line, field)."""
    started = time.monotonic()
    path, folder = Path(path), Path(image_folder)
    r = VisionReport(path=path, image_folder=folder)
    if not folder.is_dir():
        r.err("no_folder", T_NO_FOLDER, None, "", folder=str(folder))
        return r
    seen: dict[str, Optional[tuple]] = {}  # real path → its error (None: good), each image checked once
    try:
        r.container = sniff(path)
        wanted = {"json": ".json", "jsonl": ".jsonl"}.get(r.container)
        if wanted != path.suffix.lower():
            r.err("wrong_suffix", T_SUFFIX, None, "", container=r.container, suffix=path.suffix or "none")
            return r
        for line, rec in iter_records(path, r.container):
            if as_object(rec, line, r) is None:
                continue
            image = _check_record(rec, line, r)
            if image is None:
                continue
            r.records += 1
            if len(r.preview) < preview_rows:
                r.preview.append(rec)
            if not image:
                continue
            r.with_image += 1
            real = inside(folder, image)
            if real is None:
                r.err("escapes_folder", T_ESCAPES, line, "image", path=image)
                continue
            key = str(real)
            if key not in seen:
                error, info = check_image(real, image, max_bytes, max_pixels)
                seen[key] = error
                if info is not None:
                    r.images.add(real.stat().st_size, *info)
            if seen[key] is not None:
                code, text, params = seen[key]
                r.err(code, text, line, "image", **{**params, "path": image})
    except ReadError as e:
        r.err(e.code, e.text, e.line, **e.params)
    except OSError as e:
        r.err("cannot_read", T_CANNOT_READ, error=e.strerror or str(e))
    if r.records == 0 and r.error_count == 0:
        r.err("no_records", T_NO_RECORDS)
    _unreferenced(folder, set(seen), r)
    r.seconds = time.monotonic() - started
    return r


def _unreferenced(folder: Path, used: set[str], r: VisionReport) -> None:
    """Image files in the folder that no record names (symlinked folders are not followed)."""
    root = os.path.realpath(folder)
    for dirpath, _dirs, files in os.walk(root):
        for name in sorted(files):
            full = os.path.join(dirpath, name)
            if Path(name).suffix.lower() in IMAGE_SUFFIXES and os.path.realpath(full) not in used:
                r.warn("unreferenced", W_UNREFERENCED, None, "", path=os.path.relpath(full, root))
