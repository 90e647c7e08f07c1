"""A sweep's runs as one table (Results → Compare runs): the values each run tried, its state, final
training loss, best held-out loss and best score when its scalars hold them, and its time. A run
belongs to a sweep through run.json's ``queue.sweep`` (core.train.queue). No streamlit here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from core.results.metrics import ScalarsReader
from core.train import runs
from core.train.runs import Run

# names under which a run's scalars.json may hold a held-out loss (lower is better) or a score (higher)
HELDOUT_KEYS = ("heldout_loss", "held_out_loss", "val_loss", "eval_loss", "validation_loss")
SCORE_KEYS = ("score", "eval_score", "mean_score")


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


def _best(reader: ScalarsReader, keys: tuple[str, ...], pick) -> Optional[float]:
    values = [v for k in keys for v in reader.series(k)[1]]
    return pick(values) if values else None


def table(sweep_runs: list[Run]) -> list[SweepRow]:
    rows = []
    for run in sweep_runs:
        summary = runs.summarize(run)
        reader = ScalarsReader(run.work_dir)
        reader.poll()
        rows.append(SweepRow(run=run.id, values=(run.info.get("queue") or {}).get("values") or {},
                             state=summary.state, final_loss=summary.final_loss,
                             best_heldout=_best(reader, HELDOUT_KEYS, min), best_score=_best(reader, SCORE_KEYS, max),
                             duration_s=summary.duration_s))
    return rows
