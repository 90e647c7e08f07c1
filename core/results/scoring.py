"""Scored evaluation answers: each question may carry an expected answer, scored at every checkpoint.

An expected answer is data (``ExpectedAnswer``, saved in the project beside its question): its text is
compared as typed — braces and quotes stay literal, nothing is formatted or run. Metrics, each a
score in [0, 1]:

- ``contains``: the share of its key phrases (one per line) found in the answer, ignoring case;
- ``exact``: 1 when the answer equals the text (ignoring case and runs of white space), else 0;
- ``rouge_l``: ROUGE-L F1 (Google's ``rouge-score``) on words, each CJK character a word.
"""
from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import BaseModel

Metric = Literal["contains", "exact", "rouge_l"]
METRIC_LABELS = {"contains": "Contains the key phrases", "exact": "Exact answer", "rouge_l": "Similar (ROUGE-L)"}

_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W_]+", re.UNICODE)


class ExpectedAnswer(BaseModel):
    """What a good answer to one evaluation question holds (empty text: not scored)."""

    text: str = ""
    metric: Metric = "contains"


def key_phrases(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _normal(text: str) -> str:
    return " ".join(text.casefold().split())


class _Tokenizer:
    """Words for ``rouge-score``: lower-cased letters and digits; each CJK character is a word."""

    def tokenize(self, text: str) -> list[str]:
        return _WORD.findall(text.casefold())


def rouge_l(answer: str, expected: str) -> float:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Tokenizer())
    return scorer.score(expected, answer)["rougeL"].fmeasure


def score(answer: str, expected: ExpectedAnswer) -> Optional[float]:
    """The answer's score in [0, 1]; None when nothing is expected."""
    if not expected.text.strip():
        return None
    if expected.metric == "exact":
        return 1.0 if _normal(answer) == _normal(expected.text) else 0.0
    if expected.metric == "rouge_l":
        return rouge_l(answer, expected.text)
    phrases = key_phrases(expected.text)
    found = sum(1 for p in phrases if p.casefold() in answer.casefold())
    return found / len(phrases)


def expected_by_question(questions: list[str], expected: list[ExpectedAnswer]) -> dict[str, ExpectedAnswer]:
    """{question: its expected answer} for the questions that have one (lists aligned by position)."""
    return {q: e for q, e in zip(questions, expected) if e.text.strip()}


def score_table(answers: dict[int, list[str]], questions: list[str],
                expected: dict[str, ExpectedAnswer]) -> dict[int, dict[int, float]]:
    """{question index: {checkpoint iteration: score}} for the questions with an expected answer."""
    table: dict[int, dict[int, float]] = {}
    for qi, question in enumerate(questions):
        exp = expected.get(question)
        if exp is None:
            continue
        table[qi] = {it: score(texts[qi] if qi < len(texts) else "", exp) for it, texts in answers.items()}
    return table


def mean_scores(table: dict[int, dict[int, float]]) -> dict[int, float]:
    """{checkpoint iteration: mean score over the scored questions}."""
    per_iter: dict[int, list[float]] = {}
    for row in table.values():
        for it, value in row.items():
            per_iter.setdefault(it, []).append(value)
    return {it: sum(v) / len(v) for it, v in sorted(per_iter.items())}
