"""The open project is one value: after opening or creating another project on Home, the next edit
lands in that project (issue 10: the sidebar's picker reopened the previous one). A real browser."""
import time

import pytest

from core.project import ProjectStore
from tests.test_browser import launch_chromium, nav, start_server, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def method_of(ws, name, expected, timeout=30):
    """Wait until project ``name`` has ``expected`` as its method on disk; return what it has."""
    deadline = time.monotonic() + timeout
    while True:
        got = ProjectStore(ws).load(name).method
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_switching_projects_on_home_sends_the_next_edit_to_the_new_project(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    ws = tmp_path / "ws"
    store = ProjectStore(ws)
    for name in ("alpha", "beta"):
        store.create(name, method="lora")
    proc, url = start_server(tmp_path)
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_role("button", name="alpha", exact=True).click()
            expect(page.get_by_role("button", name="alpha  ·  open")).to_be_visible(timeout=30_000)

            # create a third project: it becomes the open one everywhere
            page.get_by_label("Name", exact=True).fill("gamma")
            page.get_by_role("button", name="Create", exact=True).click()
            expect(page.get_by_text("Project gamma created.")).to_be_visible(timeout=30_000)
            picker = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Project")
            expect(picker).to_have_value("gamma", timeout=30_000)

            # the next rerun and edit: Model & Data's method, saved at once
            nav(page, "1 · Model & Data")
            expect(page.get_by_text("Fine-tuning method")).to_be_visible(timeout=30_000)
            expect(picker).to_have_value("gamma")
            page.get_by_text("Full fine-tune (every weight)").click()
            assert method_of(ws, "gamma", "full") == "full"
            assert ProjectStore(ws).load("alpha").method == "lora"

            # open beta from Home's list: the edit after it lands in beta
            nav(page, "Home")
            page.get_by_role("button", name="beta", exact=True).click()
            expect(page.get_by_role("button", name="beta  ·  open")).to_be_visible(timeout=30_000)
            nav(page, "1 · Model & Data")
            expect(picker).to_have_value("beta", timeout=30_000)
            page.get_by_text("Full fine-tune (every weight)").click()
            assert method_of(ws, "beta", "full") == "full"
            assert ProjectStore(ws).load("alpha").method == "lora"

            # a fresh tab with no ?project= opens the last-used project
            fresh = browser.new_page()
            fresh.goto(url + "/model_data")
            fresh_picker = fresh.get_by_test_id("stSidebar").get_by_role("combobox", name="Project")
            expect(fresh_picker).to_have_value("beta", timeout=60_000)
            browser.close()
    finally:
        stop_server(proc)
