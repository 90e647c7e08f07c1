"""One refresh of the Train page's charts on a long run: full redraw vs. incremental and downsampled.

    .venv/bin/python bench/chart_poll.py [--records 100000] [--polls 3]

Builds, in a temporary directory (deleted at the end), a run whose ``scalars.json`` holds
``--records`` mmengine records (loss, lr, grad_norm, time, data_time, memory). Between two
refreshes training appends one record. One refresh is timed two ways, each up to the figure JSON
Streamlit sends to the browser (``plotly.io.to_json``, as ``st.plotly_chart`` does):

- full redraw: read the whole ``scalars.json`` again and draw every point of every curve (what the
  Results page did every 3 s, and what a chart of every point costs);
- ours: ``RunCurves.poll()`` reads the appended record only, the curves are kept downsampled
  (min/max per bucket, at most ``2 × charts.MAX_BUCKETS`` points per curve) as they grow.

Both draw through the same ``charts.scalar_figures``. The median of ``--polls`` refreshes of each is
compared; the bytes of the figure JSON of one refresh are printed for both. The last line is
``ratio=<full redraw / ours>`` (goal: at least 20).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import plotly.io as pio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.results import charts  # noqa: E402
from synthetic_run import record, timed, write_scalars  # noqa: E402  (bench/ is on sys.path)


def draw(curves: charts.Curves, x_max: int) -> int:
    """The figures of one refresh, as JSON; returns its bytes."""
    figs = charts.scalar_figures(curves, resumes=curves.resumes(), x_max=x_max)
    return sum(len(pio.to_json(fig, validate=False)) for _, fig in figs)


def full_refresh(work_dir: Path, x_max: int) -> int:
    curves = charts.RunCurves(work_dir, max_buckets=None)  # every point, read from the start
    curves.poll()
    return draw(curves, x_max)


def our_refresh(curves: charts.RunCurves, x_max: int) -> int:
    curves.poll()
    return draw(curves, x_max)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train chart refresh: full redraw vs incremental + downsampled")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--polls", type=int, default=3)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-charts-") as tmp:
        run = Path(tmp)
        scalars = write_scalars(run, args.records, spikes=True)
        x_max = 2 * args.records
        print(f"built {args.records} records ({scalars.stat().st_size / 1e6:.1f} MB)")
        ours = charts.RunCurves(run / "work_dir")
        first, _ = timed(our_refresh, ours, x_max)
        print(f"ours, first refresh of a page just opened: {first * 1000:.0f} ms (whole scalars.json once)")

        full_s, our_s, full_bytes, our_bytes = [], [], 0, 0
        i = args.records
        for _ in range(args.polls):
            i += 1
            with open(scalars, "a") as f:
                f.write(record(i, spikes=True))
            s, our_bytes = timed(our_refresh, ours, x_max)
            our_s.append(s)
            s, full_bytes = timed(full_refresh, run / "work_dir", x_max)
            full_s.append(s)
        assert ours.reader.last_iter == i, "the incremental curves saw every record"
        assert max(ours.points("loss")[1]) > 25.0, "the spikes survive downsampling"
        full, our = statistics.median(full_s), statistics.median(our_s)
        print(f"full redraw: median {full * 1000:9.1f} ms, {full_bytes:>11,} bytes of figure JSON per refresh")
        print(f"ours:        median {our * 1000:9.1f} ms, {our_bytes:>11,} bytes of figure JSON per refresh")
    print(f"ratio={full / our:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
