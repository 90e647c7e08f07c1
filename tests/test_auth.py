"""The optional password gate stops every page before it renders."""
import os
from pathlib import Path

from streamlit.testing.v1 import AppTest

HOME = str(Path(__file__).resolve().parent.parent / "Home.py")


def test_no_password_configured_means_open(workspace, monkeypatch):
    monkeypatch.delenv("XTUNER_STUDIO_PASSWORD", raising=False)
    at = AppTest.from_file(HOME, default_timeout=60).run()
    assert any("Try it in one click" in s.value for s in at.subheader)


def test_password_gate(workspace, monkeypatch):
    monkeypatch.setenv("XTUNER_STUDIO_PASSWORD", "s3cret")
    at = AppTest.from_file(HOME, default_timeout=60).run()
    assert not at.subheader and len(at.text_input) == 1
    for page in ("pages/train.py", "pages/configure.py"):
        at.switch_page(page).run()
        assert not at.title or at.title[0].value == "XTuner Studio"
    at.text_input[0].set_value("wrong")
    at.button[0].click().run()
    assert at.error and "Wrong password" in at.error[0].value
    at.text_input[0].set_value("s3cret")
    at.button[0].click().run()
    at.switch_page("pages/home.py").run()
    assert any("Try it in one click" in s.value for s in at.subheader)
    assert os.environ["XTUNER_STUDIO_PASSWORD"] not in str(at.query_params)


def test_deep_link_on_a_fresh_server_still_asks_for_the_password(tmp_path):
    """A reload of /train right after a server restart must not skip the gate (Streamlit's pages/
    folder mode runs the page file directly; ui.frame.page_frame routes it through the frame)."""
    import pytest

    pytest.importorskip("playwright")
    from playwright.sync_api import expect, sync_playwright

    from tests.test_browser import launch_chromium, start_server, stop_server

    proc, url = start_server(tmp_path, extra_env={"XTUNER_STUDIO_PASSWORD": "s3cret"})
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            page = browser.new_page()
            page.goto(url + "/train")
            expect(page.get_by_label("Password", exact=True)).to_be_visible(timeout=30_000)
            expect(page.get_by_role("heading", name="3 · Train")).to_have_count(0)
            page.get_by_label("Password", exact=True).fill("s3cret")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="3 · Train")).to_be_visible(timeout=30_000)
            browser.close()
    finally:
        stop_server(proc)


def test_server_settings_are_safe_to_leave_running():
    """Loopback only, no usage stats, and no source watcher: a recursive inotify watch over the repo
    (.venv included) overflows while training writes files and stalls the server's page updates."""
    import tomllib

    from tests.test_browser import REPO

    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["headless"] is True
    assert config["server"]["fileWatcherType"] == "none"
    assert config["browser"]["gatherUsageStats"] is False
