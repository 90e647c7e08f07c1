from core.results import charts


def series_of(data):
    return lambda key: data.get(key, ([], []))


def test_a_figure_for_every_scalar_in_a_stable_order():
    xs = [1, 2, 3]
    data = {k: (xs, [1.0, 2.0, 3.0]) for k in ("loss", "lr", "grad_norm", "time", "data_time", "memory", "custom")}
    figs = charts.scalar_figures(series_of(data), list(data))
    assert [k for k, _ in figs] == ["loss", "lr", "grad_norm", "time", "memory", "custom"]
    loss = dict(figs)["loss"]
    assert [t.name for t in loss.data] == ["loss", "smoothed"]
    throughput = dict(figs)["time"]
    assert list(throughput.data[0].y) == [1.0, 0.5, 1 / 3]  # iterations per second
    assert throughput.data[-1].name == "% time loading data"
    assert list(dict(figs)["memory"].data[0].y) == [1 / 1024, 2 / 1024, 3 / 1024]  # MB → GiB


def test_only_present_scalars_get_a_figure_and_text_is_translated():
    data = {"loss": ([1], [2.0]), "lr": ([], [])}
    figs = charts.scalar_figures(series_of(data), ["loss", "lr"], tr=lambda s: f"<{s}>")
    assert [k for k, _ in figs] == ["loss"]
    assert figs[0][1].layout.title.text == "<Training loss>"


def test_resumes_are_marked_on_the_loss_curve():
    fig = charts.loss_figure([1, 2, 3, 4], [4.0, 3.0, 2.0, 1.0], resumes=[3])
    assert [s.x0 for s in fig.layout.shapes] == [2.5]


def test_ema_starts_at_the_first_value_and_overlay_has_a_trace_per_run():
    assert charts.ema([5.0, 5.0])[0] == 5.0
    fig = charts.overlay_figure({"a": ([1, 2], [1.0, 2.0]), "b": ([1], [3.0])}, "Loss", "loss")
    assert [t.name for t in fig.data] == ["a", "b"]
