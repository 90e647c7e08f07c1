"""One poll of the Train page's monitor: full re-read vs. the incremental readers.

    .venv/bin/python bench/monitor_poll.py [--records 100000] [--log-gb 1.0] [--polls 7]

Builds, in a temporary directory (deleted at the end), a run whose ``scalars.json`` holds
``--records`` mmengine records and whose ``job.log`` is ``--log-gb`` GB. A page that is already
open has read both once; then, between two polls, training appends one record and a few log lines.
One poll is timed two ways:

- full re-read: read the whole ``scalars.json`` and parse every line into the loss curve, read the
  whole log and keep its last 200 lines (what a naive page does every 2 s);
- incremental: ``ScalarsReader.poll()`` + ``series("loss")`` and ``LogTail.poll()`` (what the Train
  page does), reading only the bytes added since the previous poll.

The median of ``--polls`` polls of each is compared. The last line is ``ratio=<full/incremental>``
(goal: at least 50).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.results.metrics import LogTail, ScalarsReader  # noqa: E402
from synthetic_run import record, timed, write_scalars  # noqa: E402  (bench/ is on sys.path)

LOG_LINE = ("11/23 07:06:24 - mmengine - INFO - Iter(train) [{i:>6}/999999]  lr: 1.9629e-03  eta: 1:02:03  "
            "time: 0.0162  data_time: 0.0016  grad_norm: 0.6089  loss: 6.9415  memory: 10234\n")


def build(run: Path, records: int, log_bytes: int) -> tuple[Path, Path]:
    scalars = write_scalars(run, records)
    log = run / "job.log"
    block = "".join(LOG_LINE.format(i=i) for i in range(1, 5001)).encode()
    with open(log, "wb") as f:
        written = 0
        while written < log_bytes:
            f.write(block)
            written += len(block)
    return scalars, log


def full_poll(scalars: Path, log: Path) -> int:
    xs, ys = [], []
    with open(scalars, "rb") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            xs.append(rec["iter"])
            ys.append(rec["loss"])
    tail: deque[bytes] = deque(maxlen=200)
    with open(log, "rb") as f:
        for chunk in iter(lambda: f.read(8 << 20), b""):
            tail.extend(chunk.split(b"\n"))
    return len(xs) + len(tail)


def incremental_poll(reader: ScalarsReader, tail: LogTail) -> int:
    reader.poll()
    xs, _ = reader.series("loss")
    return len(xs) + len(tail.poll())


def grow(scalars: Path, log: Path, i: int) -> None:
    """What training appends between two polls: one logging interval."""
    with open(scalars, "a") as f:
        f.write(record(i))
    with open(log, "a") as f:
        f.write("".join(LOG_LINE.format(i=i) for _ in range(5)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Monitor poll: full re-read vs incremental readers")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--log-gb", type=float, default=1.0)
    parser.add_argument("--polls", type=int, default=7)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        run = Path(tmp)
        t0 = time.perf_counter()
        scalars, log = build(run, args.records, int(args.log_gb * 1024 ** 3))
        print(f"built {args.records} records ({scalars.stat().st_size / 1e6:.1f} MB) and a "
              f"{log.stat().st_size / 1024 ** 3:.2f} GB log in {time.perf_counter() - t0:.1f}s")

        reader, tail = ScalarsReader(run / "work_dir"), LogTail(log)
        first, _ = timed(incremental_poll, reader, tail)
        print(f"incremental, first poll of a page just opened: {first * 1000:.1f} ms "
              "(whole scalars.json once, the log's last 256 KB)")
        full_poll(scalars, log)  # warm the page cache for both sides alike

        full_s, incr_s = [], []
        i = args.records
        for _ in range(args.polls):
            i += 1
            grow(scalars, log, i)
            incr_s.append(timed(incremental_poll, reader, tail)[0])
            i += 1
            grow(scalars, log, i)
            full_s.append(timed(full_poll, scalars, log)[0])
        assert reader.last_iter == i - 1, "the incremental reader saw every record"
        full, incr = statistics.median(full_s), statistics.median(incr_s)
        print(f"full re-read:  median {full * 1000:9.2f} ms over {args.polls} polls")
        print(f"incremental:   median {incr * 1000:9.2f} ms over {args.polls} polls")
    print(f"ratio={full / incr:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
