"""A sweep's runs as one table (Results → Compare runs): the values each run tried, its state, final
training loss, lowest held-out loss (core.results.heldout), highest mean score of its evaluation answers
against the project's expected answers (core.results.scoring), and its time. A run belongs to a sweep
through run.json's ``queue.sweep`` (core.train.queue). No streamlit here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from core.results import evals, heldout, scoring
from core.results.metrics import ScalarsReader
from core.train import runs
from core.train.runs import Run


@dataclass
class SweepRow:
    run: str
    values: dict
    state: str
    final_loss: Optional[float]
    best_heldout: Optional[float]
    best_score: Optional[float]
    duration_s: Optional[float]


def sweeps(all_runs: list[Run]) -> dict[str, list[Run]]:
    """{sweep id: its runs, oldest first}, newest sweep first."""
    groups: dict[str, list[Run]] = {}
    for run in all_runs:  # newest first
        sweep = (run.info.get("queue") or {}).get("sweep")
        if sweep:
            groups.setdefault(sweep, []).insert(0, run)
    return groups


def _highest_score(run: Run, expected: list, questions_now: list[str]) -> Optional[float]:
    """The best checkpoint's mean score of the run's evaluation answers (None: nothing to score)."""
    spec = run.spec
    questions = spec.get("evaluation_inputs", [])
    wanted = scoring.expected_by_question(questions_now, expected)
    if not wanted:
        return None
    answers = evals.timeline(run.work_dir, spec.get("prompt_template"), questions, spec.get("system_prompt", ""))
    means = scoring.mean_scores(scoring.score_table(answers, questions, wanted))
    return max(means.values()) if means else None


def table(sweep_runs: list[Run], expected: list = (), questions_now: list[str] = ()) -> list[SweepRow]:
    """One row per run; ``expected``/``questions_now``: the project's expected answers and questions."""
    rows = []
    for run in sweep_runs:
        summary = runs.summarize(run)
        reader = ScalarsReader(run.work_dir)
        reader.poll()
        low = heldout.lowest(reader.series("heldout_loss"))
        rows.append(SweepRow(run=run.id, values=(run.info.get("queue") or {}).get("values") or {},
                             state=summary.state, final_loss=summary.final_loss,
                             best_heldout=low[1] if low else None,
                             best_score=_highest_score(run, list(expected), list(questions_now)),
                             duration_s=summary.duration_s))
    return rows
