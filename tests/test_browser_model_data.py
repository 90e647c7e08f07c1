"""Model & Data in a real browser (Debian's Chromium + Playwright): a catalog model downloaded from a
local Hugging Face mirror with a live progress bar, cancelled half-way, resumed, checked and used."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from core.project import ProjectStore
from tests.hubservers import OlahHub
from tests.test_browser import launch_chromium, live, start_server, stop_server, wait_idle

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "screenshots"

pytestmark = [pytest.mark.slow, pytest.mark.browser]
START = "[class*=st-key-start-model-studio-big]"


@pytest.fixture
def setup(tmp_path, demo_workspace):
    ws = tmp_path / "ws"
    shutil.copytree(demo_workspace, ws)
    store = ProjectStore(ws)
    store.save(store.load("demo").model_copy(update={"download_cache": str(ws / "downloads")}))
    src = tmp_path / "big-chat"
    shutil.copytree(ws / "projects" / "demo" / "model", src)
    save_file({"extra.weight": np.random.rand(5 * 1024 * 1024).astype(np.float32)}, str(src / "extra.safetensors"))
    hub = OlahHub(tmp_path / "olah", rate=2e6)  # 20 MB at 2 MB/s: ~10 s to watch and cancel
    hub.add_repo("model", "studio/big-chat", src)
    hub.start()
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"models": [{
        "id": "studio-big", "name": "Studio big (local mirror)", "family": "Qwen 2.5", "params_b": 0.01,
        "size_gb": 0.021, "template": "qwen_chat", "sources": {"huggingface": "studio/big-chat"}}]}))
    proc, url = start_server(tmp_path, extra_env={"XTUNER_STUDIO_CATALOG": str(catalog)})  # workspace: ws
    yield url, ws, hub
    stop_server(proc)
    hub.stop()


def test_download_progress_cancel_resume_and_use_in_the_browser(setup):
    from playwright.sync_api import expect, sync_playwright

    url, ws, hub = setup
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url + "/model_data?project=demo")
        settings = live(page.get_by_text("Download settings: source order and mirrors"))
        expect(settings).to_be_visible(timeout=60_000)
        settings.click()
        page.get_by_label("Hugging Face endpoint (a mirror such as https://hf-mirror.com)").fill(hub.url)
        page.keyboard.press("Enter")
        live(page.get_by_role("button", name="Save the download settings")).click()
        expect(page.get_by_role("button", name="Save the download settings")).to_have_count(0, timeout=30_000)

        page.get_by_role("combobox", name="Model").click()
        page.keyboard.type("Studio big")
        page.keyboard.press("Enter")
        start = page.locator(f"{START}:not([data-stale=true]) button")
        expect(start).to_be_visible(timeout=30_000)
        start.click()

        bar = live(page.get_by_test_id("stProgress"))
        expect(bar).to_contain_text(" of 20.6 MB", timeout=30_000)
        expect(bar).to_contain_text("/s", timeout=10_000)
        expect(bar).to_contain_text("left", timeout=10_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "model-data-download.png"))

        page.locator("[class*=st-key-cancel-model-studio-big]:not([data-stale=true]) button").click()
        expect(live(page.get_by_text("Cancelled. Resume downloads only what is missing."))).to_be_visible(timeout=30_000)
        dest = ws / "downloads" / "models" / "studio-big"
        assert not list(dest.rglob("*.incomplete"))

        wait_idle(page)
        start.click()
        expect(live(page.get_by_text("Downloaded to"))).to_be_visible(timeout=90_000)
        live(page.get_by_role("button", name="Check and use this model")).click()
        expect(live(page.get_by_text("XTuner prompt template: qwen_chat"))).to_be_visible(timeout=30_000)
        live(page.get_by_role("button", name="Use this model", exact=True)).click()
        expect(live(page.get_by_text(f"In use: {dest}"))).to_be_visible(timeout=30_000)
        browser.close()
    project = ProjectStore(ws).load("demo")
    assert project.model_path == str(dest) and project.prompt_template == "qwen_chat"


def test_the_file_uploader_speaks_chinese(tmp_path, demo_workspace):
    """Streamlit draws "Upload" and "200MB per file • JSONL, …" itself, with no parameter to change them:
    in 中文 mode a style sheet hides them and shows ours (only a browser sees the result)."""
    from playwright.sync_api import expect, sync_playwright

    shutil.copytree(demo_workspace, tmp_path / "ws")
    proc, url = start_server(tmp_path)
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url + "/model_data?project=demo&lang=zh")
            page.get_by_role("tab", name="上传").click()
            expect(page.get_by_test_id("stFileUploaderDropzone").first).to_be_visible(timeout=60_000)
            expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)  # the app is idle
            # each check queries the page afresh, so a late rerun cannot leave it looking at a replaced element
            shown = """() => [...document.querySelectorAll('[data-testid="stFileUploaderDropzone"]')].map(z => {
                const hint = z.querySelector('[data-testid="stFileUploaderDropzoneInstructions"]');
                return [z.innerText, getComputedStyle(hint, '::after').content,
                        getComputedStyle(z.querySelector('button'), '::after').content]; })"""
            page.wait_for_function(f"() => ({shown})().length > 0 && ({shown})().every("
                                   "([text, hint, button]) => hint.includes('每个文件最大') && button.includes('上传')"
                                   " && !/per file|Upload/.test(text))", timeout=30_000)
            browser.close()
    finally:
        stop_server(proc)
