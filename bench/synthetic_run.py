"""A long synthetic training run for the poll benchmarks: mmengine scalar records and a timer."""
from __future__ import annotations

import json
import time
from pathlib import Path


def record(i: int, spikes: bool = False) -> str:
    """Iteration ``i``'s line of ``scalars.json``; with ``spikes``, a rare spike a downsampled chart must keep."""
    spike = 25.0 if spikes and i % 9973 == 0 else 0.0
    return json.dumps({"lr": 2e-4 * (1 - i / 1e6), "data_time": 0.0016, "grad_norm": 0.61 + spike,
                       "loss": 7.0 / (1 + i / 1000) + spike, "time": 0.0162, "iter": i, "memory": 10234,
                       "step": i}) + "\n"


def write_scalars(run: Path, records: int, spikes: bool = False) -> Path:
    """``run/work_dir/<timestamp>/vis_data/scalars.json`` with iterations 1..``records``."""
    vis = run / "work_dir" / "20261123_070000" / "vis_data"
    vis.mkdir(parents=True)
    scalars = vis / "scalars.json"
    with open(scalars, "w") as f:
        for start in range(1, records + 1, 10_000):
            f.write("".join(record(i, spikes) for i in range(start, min(start + 10_000, records + 1))))
    return scalars


def timed(fn, *args) -> tuple[float, object]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out
