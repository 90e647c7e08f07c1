import random

import pytest

from core.results import charts


def curves_of(data):
    return charts.Curves.of(data)


def test_a_figure_for_every_scalar_in_a_stable_order():
    xs = [1, 2, 3]
    data = {k: (xs, [1.0, 2.0, 3.0]) for k in ("loss", "lr", "grad_norm", "time", "data_time", "memory", "custom")}
    figs = charts.scalar_figures(curves_of(data))
    assert [k for k, _ in figs] == ["loss", "lr", "grad_norm", "time", "memory", "custom"]
    loss = dict(figs)["loss"]
    assert [t.name for t in loss.data] == ["loss", "smoothed"]
    throughput = dict(figs)["time"]
    assert list(throughput.data[0].y) == [1.0, 0.5, 1 / 3]  # iterations per second
    assert throughput.data[-1].name == "% time loading data"
    assert list(throughput.data[-1].y) == [100.0, 100.0, 100.0]
    assert list(dict(figs)["memory"].data[0].y) == [1 / 1024, 2 / 1024, 3 / 1024]  # MB → GiB
    assert dict(figs)["memory"].layout.yaxis.title.text == "GiB"


def test_throughput_in_tokens_per_second_when_tokens_per_iteration_is_known():
    figs = dict(charts.scalar_figures(curves_of({"time": ([1, 2], [0.5, 0.25])}), tokens_per_iter=100.0))
    assert list(figs["time"].data[0].y) == [200.0, 400.0]
    assert figs["time"].layout.yaxis.title.text == "tokens/s"


def test_only_present_scalars_get_a_figure_and_text_is_translated():
    data = {"loss": ([1], [2.0]), "lr": ([], [])}
    figs = charts.scalar_figures(curves_of(data), tr=lambda s: f"<{s}>")
    assert [k for k, _ in figs] == ["loss"]
    fig = figs[0][1]
    assert fig.layout.title.text == "<Training loss>"
    assert fig.layout.xaxis.title.text == "<iteration>" and fig.layout.yaxis.title.text == "<loss>"
    assert [t.name for t in fig.data] == ["<loss>", "<smoothed>"]


def test_resumes_are_marked_on_the_loss_curve_below_the_legend():
    figs = dict(charts.scalar_figures(curves_of({"loss": ([1, 2, 3, 4], [4.0, 3.0, 2.0, 1.0])}), resumes=[3]))
    fig = figs["loss"]
    assert [s.x0 for s in fig.layout.shapes] == [2.5]
    (mark,) = fig.layout.annotations
    assert mark.text == "resumed"
    # the legend sits above the plot area; the mark's label inside it, at the bottom: they cannot overlap
    assert fig.layout.legend.y >= 1 and fig.layout.legend.yanchor == "bottom"
    assert mark.y == 0 and mark.yanchor == "bottom"


def test_ema_starts_at_the_first_value_and_compare_has_a_trace_per_run():
    assert charts.ema([5.0, 5.0])[0] == 5.0
    runs = [("a", curves_of({"loss": ([1, 2], [1.0, 2.0])})), ("b", curves_of({"loss": ([1], [3.0])}))]
    fig = charts.compare_figure(runs, "loss", "Loss", "loss", tr=lambda s: f"<{s}>")
    assert [t.name for t in fig.data] == ["a", "b"]
    assert fig.layout.xaxis.title.text == "<iteration>"
    smoothed = charts.compare_figure(runs, "loss", "Loss", "loss", smoothed=True)
    assert [t.name for t in smoothed.data] == ["a (raw)", "a", "b (raw)", "b"]


def test_the_incremental_smoothing_is_the_ema_of_the_whole_curve():
    ys = [random.Random(1).random() for _ in range(50)]
    curves = charts.Curves(max_buckets=None)
    for i, y in enumerate(ys):
        curves.add(i, {"loss": y})
    assert curves.points("loss", smoothed=True)[1] == pytest.approx(charts.ema(ys))


def test_downsampling_bounds_the_points_and_keeps_every_spike():
    rng = random.Random(0)
    n = 100_000
    ys = [1.0 + rng.random() * 0.01 for _ in range(n)]
    spikes = {1234: 50.0, 77_777: -20.0, n - 1: 9.0}
    for i, v in spikes.items():
        ys[i] = v
    d = charts.Downsampler(max_buckets=500)
    for i, y in enumerate(ys):
        d.add(i, y)
    xs, out = d.points()
    assert len(xs) <= 1000
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    for i, v in spikes.items():
        assert i in xs and out[xs.index(i)] == v
    assert max(out) == max(ys) and min(out) == min(ys)


def test_few_points_are_drawn_as_they_are():
    d = charts.Downsampler(max_buckets=500)
    for i in range(10):
        d.add(i, float(i % 3))
    assert d.points() == (list(range(10)), [float(i % 3) for i in range(10)])


def test_run_curves_read_only_what_was_appended_and_restart_after_a_resume_cut(tmp_path):
    import json
    vis = tmp_path / "20260101_000000" / "vis_data"
    vis.mkdir(parents=True)
    f = vis / "scalars.json"
    f.write_text("".join(json.dumps({"iter": i, "loss": 10.0 - i}) + "\n" for i in range(1, 6)))
    curves = charts.RunCurves(tmp_path)
    assert curves.poll() == 5
    with open(f, "a") as fh:
        fh.write(json.dumps({"iter": 6, "loss": 4.0}) + "\n")
    assert curves.poll() == 1
    assert curves.points("loss") == ([1, 2, 3, 4, 5, 6], [9.0, 8.0, 7.0, 6.0, 5.0, 4.0])
    # a resume from iteration 3: what the first start logged from iteration 4 on is dropped
    vis2 = tmp_path / "20260101_010000" / "vis_data"
    vis2.mkdir(parents=True)
    (vis2 / "scalars.json").write_text(json.dumps({"iter": 4, "loss": 0.5}) + "\n")
    curves.poll()
    assert curves.points("loss") == ([1, 2, 3, 4], [9.0, 8.0, 7.0, 0.5])
    assert curves.resumes() == [4]
