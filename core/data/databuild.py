"""Build data: the tutorials' self-introduction dataset (with general data mixed in) and find/replace.

Both write OpenAI-messages / the input's records as JSONL through a temporary file renamed into
place, so a failure leaves nothing half-written. User text is data only: ``{name}`` in an answer is
replaced literally (no ``str.format`` on user text).
"""
from __future__ import annotations

import json
import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from core.data.datareader import BadRecord, ReadError, iter_records
from core.data.datasets import iter_turns, turns_to_messages
from core.errors import UserError

DEFAULT_QUESTIONS = {
    "en": ["Who are you?", "Please introduce yourself.", "Tell me about yourself.", "What is your name?",
           "Who made you?"],
    "zh": ["请做一下自我介绍", "你是谁？", "介绍一下你自己", "你叫什么名字？", "你是谁开发的？"],
}
DEFAULT_ANSWERS = {
    "en": ["I am {name}'s assistant, here to help you.", "I'm the assistant of {name}. How can I help?"],
    "zh": ["我是{name}的小助手，很高兴为你服务。", "你好，我是{name}的专属助手。"],
}
MAX_COPIES = 100_000

E_NAME = "Give the assistant's owner a name."
E_QUESTIONS = "Give at least one question."
E_ANSWERS = "Give at least one answer."
E_COPIES = "Copies must be between 1 and {max}."
E_SHARE = "The share of general data must be between 0 and 90%."
E_GENERAL = "The general dataset {name} has no usable records."
E_READ = "{file}, line {line} cannot be read (see the details): nothing was written."
E_EMPTY_FIND = "Type the text to find."
MESSAGES = [E_NAME, E_QUESTIONS, E_ANSWERS, E_COPIES, E_SHARE, E_GENERAL, E_READ, E_EMPTY_FIND]


class BuildError(UserError):
    pass


def _write_jsonl(out_path: Path, records: Iterable[dict]) -> int:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n += 1
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def _clean(lines: list[str]) -> list[str]:
    return [s.strip() for s in lines if s and s.strip()]


def sample_general(path: str | os.PathLike, n: int, seed: int = 0) -> list[dict]:
    """``n`` records of a dataset (any supported format) as OpenAI messages, by reservoir sampling."""
    rng = random.Random(seed)
    picked: list[dict] = []
    seen = 0
    for _line, turns in iter_turns(path):
        if not turns:
            continue
        seen += 1
        if len(picked) < n:
            picked.append({"messages": turns_to_messages(turns)})
        else:
            j = rng.randrange(seen)
            if j < n:
                picked[j] = {"messages": turns_to_messages(turns)}
    return picked


@dataclass
class SelfIntroResult:
    path: Path
    identity: int
    general: int


def build_self_intro(out_path: str | os.PathLike, name: str, questions: list[str], answers: list[str],
                     copies: int = 500, general_path: Optional[str | os.PathLike] = None,
                     general_share: float = 0.0, seed: int = 0) -> SelfIntroResult:
    """``copies`` question/answer pairs naming ``name`` (questions cycled, answers varied), plus general
    data making up ``general_share`` of the result — the seeds' remedy for a model that answers every
    question with its self-introduction."""
    name = (name or "").strip()
    questions, answers = _clean(questions), _clean(answers)
    if not name:
        raise BuildError(E_NAME)
    if not questions:
        raise BuildError(E_QUESTIONS)
    if not answers:
        raise BuildError(E_ANSWERS)
    if not 1 <= int(copies) <= MAX_COPIES:
        raise BuildError(E_COPIES, max=MAX_COPIES)
    if not 0 <= general_share <= 0.9:
        raise BuildError(E_SHARE)
    rng = random.Random(seed)
    records = []
    for i in range(int(copies)):
        answer = answers[rng.randrange(len(answers))].replace("{name}", name)
        records.append({"messages": [{"role": "user", "content": questions[i % len(questions)].replace("{name}", name)},
                                     {"role": "assistant", "content": answer}]})
    general: list[dict] = []
    if general_path and general_share > 0:
        want = round(len(records) * general_share / (1 - general_share))
        general = sample_general(general_path, want, seed)
        if not general:
            raise BuildError(E_GENERAL, name=Path(general_path).name)
    mixed = records + general
    rng.shuffle(mixed)
    _write_jsonl(Path(out_path), mixed)
    return SelfIntroResult(Path(out_path), len(records), len(general))


@dataclass
class ReplaceResult:
    path: Optional[Path]
    records: int = 0
    changed_records: int = 0
    replacements: int = 0
    error: Optional[BuildError] = None
    samples: list[tuple[int, str]] = field(default_factory=list)


def _replace(obj, old: str, new: str, count: list[int]):
    """The seeds' change_script.py: every string value (not the keys), recursively."""
    if isinstance(obj, dict):
        return {k: _replace(v, old, new, count) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_replace(v, old, new, count) for v in obj]
    if isinstance(obj, str):
        n = obj.count(old)
        if n:
            count[0] += n
            return obj.replace(old, new)
    return obj


def find_replace(path: str | os.PathLike, out_path: str | os.PathLike, old: str, new: str) -> ReplaceResult:
    """Replace ``old`` by ``new`` in every string of every record; write the records as JSONL.
    An unreadable record stops it and nothing is written."""
    if not old:
        raise BuildError(E_EMPTY_FIND)
    path, out_path = Path(path), Path(out_path)
    result = ReplaceResult(path=None)

    def records():
        for line, rec in iter_records(path):
            if isinstance(rec, BadRecord):
                raise BuildError(E_READ, file=path.name, line=line, message=rec.text.format(**rec.params))
            count = [0]
            out = _replace(rec, old, new, count)
            result.records += 1
            if count[0]:
                result.changed_records += 1
                result.replacements += count[0]
                if len(result.samples) < 3:
                    result.samples.append((line, json.dumps(out, ensure_ascii=False)[:300]))
            yield out

    try:
        _write_jsonl(out_path, records())
    except ReadError as e:
        result.error = BuildError(E_READ, details=str(e), file=path.name, line=e.line or "-")
        return result
    except BuildError as e:
        result.error = e
        return result
    result.path = out_path
    return result
