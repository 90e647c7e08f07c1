"""Held-out loss after training: the lowest checkpoint, over-fitting in words, what measuring it cost.

The training process writes ``heldout_loss`` (and ``heldout_s``, the seconds it took) into
``scalars.json`` at every checkpoint (``core.train.mmhooks.StudioHeldoutHook``); these read it back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

Series = tuple[list[int], list[float]]

E_OVERFIT = ("Over-fitting: the held-out loss rose for two checkpoints (iter {start} → {end}) while the training "
             "loss fell. The checkpoint at iter {start} generalised best so far.")
MESSAGES = [E_OVERFIT]


@dataclass(frozen=True)
class Overfit:
    """Held-out loss rose from checkpoint ``start`` for two checkpoints, to ``end``, while training loss fell."""

    start: int
    end: int


def lowest(heldout: Series) -> Optional[tuple[int, float]]:
    """(iteration, loss) of the checkpoint with the lowest held-out loss (the earliest of equals)."""
    xs, ys = heldout
    if not xs:
        return None
    i = min(range(len(ys)), key=lambda k: (ys[k], xs[k]))
    return xs[i], ys[i]


def _mean_between(train: Series, lo: int, hi: int) -> Optional[float]:
    values = [y for x, y in zip(*train) if lo < x <= hi]
    return sum(values) / len(values) if values else None


def overfitting(heldout: Series, train: Series) -> Optional[Overfit]:
    """The first place where held-out loss rose at two checkpoints in a row while the training loss
    (its mean over each stretch between checkpoints) fell; None when it did not happen."""
    xs, ys = heldout
    for i in range(2, len(xs)):
        if ys[i - 2] < ys[i - 1] < ys[i]:
            before = _mean_between(train, xs[i - 3] if i >= 3 else -1, xs[i - 2])
            after = _mean_between(train, xs[i - 1], xs[i])
            if before is not None and after is not None and after < before:
                return Overfit(xs[i - 2], xs[i])
    return None


def cost_share(seconds: list[float], training_s: float) -> Optional[float]:
    """Held-out evaluation time as a share of the training time it was part of."""
    return sum(seconds) / training_s if training_s and seconds else None
