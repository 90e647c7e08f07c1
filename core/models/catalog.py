"""The curated catalog: base chat models, classic datasets and vision encoders, with their hub ids per source.

Kept as data in ``catalog.json`` beside this module. A JSON file of the same shape named by
``XTUNER_STUDIO_CATALOG`` (e.g. an organisation's internal mirrors) is merged in: its entries are
added, or replace the built-in entry with the same id.
"""
from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, Field, field_validator

from core.data.templates import PROMPT_TEMPLATES

SOURCES = ("huggingface", "modelscope", "openxlab")
SOURCE_LABELS = {"huggingface": "Hugging Face", "modelscope": "ModelScope", "openxlab": "OpenXLab"}
DATASET_FORMATS = ("openai", "xtuner", "alpaca", "sharegpt", "oasst1")
_BUILTIN = Path(__file__).parent / "catalog.json"
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")


def _check_id(v: str) -> str:
    if not _ID_RE.match(v):
        raise ValueError(f"id {v!r}: use lower-case letters, digits, '-', '_', '.'")
    return v


def _check_sources(v: dict[str, str]) -> dict[str, str]:
    for source, repo in v.items():
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r} (known: {', '.join(SOURCES)})")
        if not _REPO_RE.match(repo) or ".." in repo:
            raise ValueError(f"{source} repo id {repo!r} is not of the form owner/name")
    if not v:
        raise ValueError("an entry needs at least one source")
    return v


class _Entry(BaseModel):
    """What every catalog entry has: an id and its repo per source, both checked."""

    id: str
    sources: dict[str, str]

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v)

    @field_validator("sources")
    @classmethod
    def _sources(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_sources(v)


class ModelEntry(_Entry):
    name: str
    family: str
    params_b: float = Field(gt=0, description="parameters, billions")
    size_gb: float = Field(gt=0, description="download size, GB (approximate)")
    template: str
    gated: bool = False
    remote_code: bool = False
    context: Optional[int] = None
    license: str = ""
    source: str = ""  # where the hub ids were taken from
    note: str = ""
    config: dict = Field(default_factory=dict)  # config.json's sizes (hidden_size, …): the memory estimate

    @field_validator("template")
    @classmethod
    def _template(cls, v: str) -> str:
        if v not in PROMPT_TEMPLATES:
            raise ValueError(f"unknown XTuner prompt template {v!r}")
        return v


class DatasetEntry(_Entry):
    name: str
    format: Literal["openai", "xtuner", "alpaca", "sharegpt", "oasst1"]
    records: int = Field(gt=0)
    size_mb: float = Field(gt=0)
    language: str
    note: str = ""
    source: str = ""  # where the hub ids were taken from


class EncoderEntry(_Entry):
    """A vision encoder for vision-language (LLaVA) training."""

    name: str
    params_m: float = Field(gt=0, description="parameters, millions")
    size_gb: float = Field(gt=0, description="download size, GB (approximate)")
    trains: bool = True  # False: XTuner 0.2.0's LLaVA (CLIPVisionModel) cannot load it; listed for its sizes
    license: str = ""
    source: str = ""  # where the hub ids were taken from
    note: str = ""
    config: dict = Field(default_factory=dict)  # config.json's sizes: the memory estimate


class Catalog(BaseModel):
    models: list[ModelEntry]
    datasets: list[DatasetEntry]
    encoders: list[EncoderEntry] = Field(default_factory=list)


def _merge(base: list, extra: list) -> list:
    by_id = {e.id: e for e in base}
    by_id.update({e.id: e for e in extra})
    return list(by_id.values())


@functools.cache
def _load(extra_path: Optional[str]) -> Catalog:
    cat = Catalog.model_validate_json(_BUILTIN.read_text(encoding="utf-8"))
    if extra_path:
        data = json.loads(Path(extra_path).read_text(encoding="utf-8"))
        extra = Catalog(models=data.get("models", []), datasets=data.get("datasets", []),
                        encoders=data.get("encoders", []))
        cat = Catalog(models=_merge(cat.models, extra.models), datasets=_merge(cat.datasets, extra.datasets),
                      encoders=_merge(cat.encoders, extra.encoders))
    return cat


def catalog() -> Catalog:
    return _load(os.environ.get("XTUNER_STUDIO_CATALOG") or None)


def models() -> list[ModelEntry]:
    return catalog().models


def datasets() -> list[DatasetEntry]:
    return catalog().datasets


def encoders() -> list[EncoderEntry]:
    return catalog().encoders


def get_model(entry_id: str) -> ModelEntry:
    for e in models():
        if e.id == entry_id:
            return e
    raise KeyError(f"No model {entry_id!r} in the catalog.")


def get_dataset(entry_id: str) -> DatasetEntry:
    for e in datasets():
        if e.id == entry_id:
            return e
    raise KeyError(f"No dataset {entry_id!r} in the catalog.")
