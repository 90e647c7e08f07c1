"""Held-out data: the share of a dataset that training never sees, to measure loss on after each checkpoint.

The split is XTuner's dataset loader followed by ``datasets``' ``train_test_split`` with a fixed seed:
the training part and the held-out part of a config read the same file and never overlap
(``split_dataset``, called from inside the training process). ``check_heldout`` refuses, before a
run is made (a ``ConfigError``, shown where Start is), a share that leaves fewer than one batch on either side.
"""
from __future__ import annotations

import math
from pathlib import Path

SPLIT_SEED = 0  # the same records are held out on every start and resume of a run

E_TOO_FEW = ("A held-out share of {share:.0%} of {n} records keeps {heldout} for held-out loss and {train} for "
             "training; each needs at least one batch ({batch}). Choose a larger share, a larger dataset or 0.")
MESSAGES = [E_TOO_FEW]


def count_records(path: str | Path) -> int:
    """Records in a dataset file (JSON Lines: non-empty lines; a JSON array or Parquet: read through)."""
    from core.data import datareader

    container = datareader.sniff(path)
    if container == "jsonl":
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    return sum(1 for _ in datareader.iter_records(path, container))


def split_sizes(n: int, share: float) -> tuple[int, int]:
    """(training, held-out) record counts as ``datasets.train_test_split(test_size=share)`` makes them."""
    heldout = math.ceil(share * n)
    return n - heldout, heldout


def check_heldout(dataset_path: str | Path, share: float, batch_size: int) -> None:
    """Raise ``ConfigError`` when ``share`` leaves fewer than one batch for training or for held-out loss."""
    if not share:
        return
    from core.train.configgen import ConfigError  # here: the training process imports this module too
    n = count_records(dataset_path)
    train, heldout = split_sizes(n, share)
    if heldout < batch_size or train < batch_size:
        raise ConfigError(E_TOO_FEW, share=share, n=n, heldout=heldout, train=train, batch=batch_size)


def split_dataset(path: str, heldout_ratio: float, part: str):
    """One side (``train`` or ``test``) of the held-out split of a JSON / JSON Lines dataset [T]."""
    from datasets import load_dataset

    dataset = load_dataset("json", data_files=dict(train=path))["train"]
    return dataset.train_test_split(test_size=heldout_ratio, seed=SPLIT_SEED, shuffle=True)[part]
