"""The Train page's run queue under AppTest: Add to queue, a sweep, reorder, remove, pause, a refused
entry with its reason, in English and Chinese. The queue is paused first, so nothing trains."""
import shutil

import pytest

from core import jobs
from core.project import ProjectStore
from core.train import queue
from tests.apptests import open_page


@pytest.fixture
def ws(demo_workspace, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(demo_workspace, ws)
    queue.set_paused(ws, True)
    return ws


def entries(ws):
    return queue.read_queue(ws).entries


def test_add_sweep_reorder_remove_and_pause_on_the_train_page(ws):
    at = open_page(ws, "pages/train.py")
    assert not any(s.value == "Run queue" for s in at.subheader)  # nothing queued: no panel
    at.button(key="queue_add").click().run()
    assert [e.values for e in entries(ws)] == [{}]
    assert any(s.value == "Run queue" for s in at.subheader)
    assert any("Paused: no queued run starts" in i.value for i in at.info)
    assert any("as configured" in m.value for m in at.markdown) and any(m.value == "Waiting" for m in at.markdown)

    at.text_input(key="sweep_lr").input("1e-4, 2e-4")
    at.text_input(key="sweep_lora_r").input("8")
    at.button(key="FormSubmitter:queue_sweep-Queue the sweep").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.value == "2 runs queued." for s in at.success)
    first, a, b = entries(ws)
    assert (a.values, b.values) == ({"lr": 1e-4, "lora_r": 8}, {"lr": 2e-4, "lora_r": 8}) and a.sweep == b.sweep

    at.button(key=f"queue_up_{b.id}").click().run()
    assert [e.id for e in entries(ws)] == [first.id, b.id, a.id]
    assert at.button(key=f"queue_up_{first.id}").disabled and at.button(key=f"queue_down_{a.id}").disabled
    at.button(key=f"queue_remove_{first.id}").click().run()
    assert [e.id for e in entries(ws)] == [b.id, a.id]

    at.text_input(key="sweep_max_epochs").input("1, two")
    at.button(key="FormSubmitter:queue_sweep-Queue the sweep").click().run()
    assert any("Epochs: 'two' is not a number." in e.value for e in at.error)
    assert len(entries(ws)) == 2

    with open(ProjectStore(ws).load("demo").dataset_path, "a") as f:  # so the runner refuses rather than trains
        f.write("\n")
    at.button(key="queue_pause").click().run()  # resume: a runner starts (a real process)
    assert not queue.read_queue(ws).paused
    assert jobs.wait_job(queue.runner_dir(ws), timeout=60).state == "succeeded"
    assert [(e.state, e.error["text"]) for e in entries(ws)] == [("refused", queue.E_DATA_CHANGED)] * 2


def test_a_refused_entry_shows_its_reason_in_chinese(ws):
    project = ProjectStore(ws).load("demo")
    [e] = queue.add(project, "cpu")
    queue._refuse(ws, e.id, queue.QueueError(queue.E_DATA_CHANGED, path=project.dataset_path))
    from ui import i18n

    i18n.reset_missing()
    at = open_page(ws, "pages/train.py", lang="zh")
    assert any(s.value == "运行队列" for s in at.subheader)
    assert any("已拒绝" in m.value for m in at.markdown)
    assert any("在这次运行加入队列后被修改了" in c.value for c in at.caption)
    assert i18n.missing_keys() == set()
    at = open_page(ws, "pages/train.py")  # (AppTest cannot click on the Chinese page: its radio's format_func)
    at.button(key="queue_clear").click().run()
    assert entries(ws) == []


def test_results_compare_shows_a_sweep_as_one_table(ws):
    from tests.test_queue import fake_run

    project = ProjectStore(ws).load("demo")
    fake_run(project, "20260101-000001-lora", "s1", {"lr": 1e-4}, [{"iter": 1, "loss": 2.0}, {"heldout_loss": 2.5, "step": 1}])
    fake_run(project, "20260101-000002-lora", "s1", {"lr": 2e-4}, [{"iter": 1, "loss": 1.25}])
    at = open_page(ws, "pages/results.py")
    [table] = [d.value for d in at.dataframe if "Lowest held-out loss" in d.value.columns]
    assert list(table["Run"]) == ["20260101-000001-lora", "20260101-000002-lora"]
    assert list(table["Learning rate"]) == [1e-4, 2e-4]
    assert list(table["Final training loss"]) == ["2.0000", "1.2500"]
    assert table["Lowest held-out loss"][0] == "2.5000" and table["Lowest held-out loss"].isna()[1]  # shown as —
