"""The Train page in a real browser (Chromium via Playwright) against a real `streamlit run` server,
with real training: the server is killed and restarted mid-run and the page picks the run up; a
second tab stops the run and the first resumes it."""
import os
import re
import signal
import subprocess

import pytest

from core import jobs
from core.train import runs
from core.demo import DEMO_TEMPLATE, demo_hyperparams
from core.train.launch import free_port
from core.results.metrics import ScalarsReader
from core.project import ProjectStore
from tests.test_browser import LIVE, launch_chromium, live, shot, spawn_streamlit, wait_healthy
from tests.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.browser]


class Server:
    """`streamlit run Home.py` on a fixed port, startable again after a kill."""

    def __init__(self, workspace, port, log_dir):
        self.workspace, self.port, self.log_dir = workspace, port, log_dir
        self.proc = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        self.proc = spawn_streamlit(self.workspace, self.port, self.log_dir / f"streamlit-{self.starts}.log")
        if not wait_healthy(self.url):
            raise AssertionError("streamlit did not start")

    def kill(self) -> None:
        """SIGKILL to the server's whole process group: nothing of it survives, and it cleans nothing up."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture
def server(tmp_path, demo_workspace):
    demo = ProjectStore(demo_workspace).load("demo")
    ws = tmp_path / "ws"
    ProjectStore(ws).create(
        "demo", method="lora", model_path=demo.model_path, dataset_path=demo.dataset_path,
        prompt_template=DEMO_TEMPLATE, evaluation_inputs=["Who are you?"],
        hyperparams=demo_hyperparams().model_copy(update={"max_epochs": 5}))
    s = Server(ws, free_port(), tmp_path)
    s.start()
    yield s
    s.stop()
    project = ProjectStore(ws).load("demo")
    for run in runs.list_runs(project):  # never leave a training behind
        if run.job() and run.job().active:
            jobs.request_stop(run.dir)
            jobs.wait_job(run.dir, timeout=120)


def the_run(server):
    (run,) = runs.list_runs(ProjectStore(server.workspace).load("demo"))
    return run


ITERATION = re.compile(r"^Iteration (\d+)/\d+")


def iteration_shown(page) -> int:
    from playwright.sync_api import expect

    bar = live(page.get_by_text(ITERATION)).first
    expect(bar).to_be_visible(timeout=60_000)
    return int(ITERATION.match(bar.inner_text()).group(1))


def wait_iteration_above(page, n, timeout_s=180):
    """Wait until the live progress bar shows an iteration above ``n`` (checked in the page, as it redraws)."""
    page.wait_for_function(
        """([live, n]) => [...document.querySelectorAll(live)].some(el => {
               const m = el.innerText.match(/^Iteration (\\d+)\\//m);
               return m && Number(m[1]) > n;
           })""", arg=[LIVE, n], timeout=timeout_s * 1000)


def open_train_page(browser, server):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server.url + "/train?project=demo")
    return page


def start_a_run(browser, server, above: int):
    """A tab on the Train page that pressed Start and shows an iteration above ``above``; and the run."""
    from playwright.sync_api import expect

    page = open_train_page(browser, server)
    live(page.get_by_role("button", name="Start a new run")).click()
    expect(live(page.get_by_text(ITERATION)).first).to_be_visible(timeout=180_000)
    wait_iteration_above(page, above)
    return page, the_run(server)


def assert_one_continuous_curve(run):
    reader = ScalarsReader(run.work_dir)
    reader.poll()
    xs, _ = reader.series("loss")
    assert xs == list(range(1, run.progress()["max_iters"] + 1))


def test_the_page_picks_a_run_up_after_the_server_is_killed_and_restarted(server):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page, run = start_a_run(browser, server, above=5)

        server.kill()
        assert run.job().state == "running", "the run does not depend on the server"
        before = run.progress()["iter"]
        wait_for(lambda: run.progress()["iter"] > before, 60, every=0.1, what="training went on with no server at all")
        server.start()

        # the open tab reconnects by itself and goes on live, without a click or a reload
        wait_iteration_above(page, run.progress()["iter"], timeout_s=90)
        expect(live(page.get_by_text(f"run {run.id}", exact=False)).first).to_be_visible(timeout=30_000)
        page.close()  # (two live tabs drawing charts are a lot for a 2-core test machine)
        # and a tab opened now (a new SSH tunnel, a reload) shows the same run, live
        other = open_train_page(browser, server)
        expect(live(other.get_by_text("Running")).first).to_be_visible(timeout=60_000)
        expect(live(other.get_by_text(f"run {run.id}", exact=False)).first).to_be_visible(timeout=30_000)
        wait_iteration_above(other, iteration_shown(other))
        shot(other, "train-after-restart")
        expect(live(other.get_by_text("Training finished."))).to_be_visible(timeout=900_000)
        expect(live(other.get_by_test_id("stPlotlyChart")).first).to_be_visible(timeout=30_000)
        browser.close()
    assert run.job().state == "succeeded" and run.job().attempt == 1
    assert_one_continuous_curve(run)


def test_stop_from_a_second_tab_then_resume_in_the_first(server):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        first, run = start_a_run(browser, server, above=25)

        second = open_train_page(browser, server)
        live(second.get_by_role("button", name="Stop", exact=True)).click()
        expect(live(first.get_by_text("Stopped")).first).to_be_visible(timeout=120_000)  # the first tab sees it
        job = run.job()
        assert job.state == "stopped" and job.escalation is None
        n = run.progress()["iter"]
        assert run.latest_checkpoint() == run.work_dir / f"iter_{n}.pth", "a checkpoint at the stop iteration"
        shot(first, "train-stopped")

        resume_from = live(first.get_by_role("combobox", name="Resume from"))
        expect(resume_from).to_have_value(f"iter_{n}.pth · latest", timeout=30_000)
        live(first.get_by_role("button", name="Resume", exact=True)).click()
        expect(live(first.get_by_text("Training finished."))).to_be_visible(timeout=900_000)
        shot(first, "train-resumed")
        browser.close()
    job = run.job()
    assert job.state == "succeeded" and job.attempt == 2
    assert_one_continuous_curve(run)
