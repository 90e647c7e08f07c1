"""The checkpoint to keep: held-out loss and evaluation scores together.

Each saved checkpoint gets up to two parts in [0, 1]: its mean evaluation score, and its held-out
loss placed between the run's highest (0) and lowest (1). The suggestion is the checkpoint with the
highest mean of its parts (ties: the lower held-out loss, then the earlier checkpoint).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

Series = tuple[list[int], list[float]]


@dataclass(frozen=True)
class Suggestion:
    iteration: int
    mean_score: Optional[float]  # None: no expected answers
    heldout_loss: Optional[float]  # None: no held-out loss measured there


def suggest(checkpoints: list[int], heldout: Series, scores: dict[int, float]) -> Optional[Suggestion]:
    """The best of ``checkpoints`` (iterations saved on disk); None when nothing measured any of them."""
    losses = dict(zip(*heldout))
    known = [losses[i] for i in checkpoints if i in losses]
    lo, hi = (min(known), max(known)) if known else (0.0, 0.0)
    ranked = []
    for it in checkpoints:
        parts = []
        if it in scores:
            parts.append(scores[it])
        if it in losses:
            parts.append((hi - losses[it]) / (hi - lo) if hi > lo else 1.0)
        if parts:
            ranked.append((-sum(parts) / len(parts), losses.get(it, float("inf")), it))
    if not ranked:
        return None
    _, _, it = min(ranked)
    return Suggestion(it, scores.get(it), losses.get(it))


def suggest_for_run(run, expected: list, questions_now: list[str]) -> Optional[Suggestion]:
    """The suggestion for a ``core.train.runs.Run``: its evaluation answers scored against the project's
    expected answers (matched by question text), its held-out loss, its checkpoints on disk."""
    from core.results import evals, scoring
    from core.results.metrics import ScalarsReader

    spec = run.spec
    questions = spec.get("evaluation_inputs", [])
    answers = evals.timeline(run.work_dir, spec.get("prompt_template"), questions, spec.get("system_prompt", ""))
    table = scoring.score_table(answers, questions, scoring.expected_by_question(questions_now, expected))
    reader = ScalarsReader(run.work_dir)
    reader.poll()
    return suggest([i for i, _ in run.complete_checkpoints()], reader.series("heldout_loss"),
                   scoring.mean_scores(table))
