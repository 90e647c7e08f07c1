"""Today's models in a real browser (Debian's Chromium + Playwright): the tiny Qwen3-shaped model (built offline,
Qwen3's real chat template) picked on Model & Data as your own model, trained on Train, converted and asked on
Convert & Chat, where the fine-tuned Qwen3 answers with its new identity."""
import shutil
from pathlib import Path

import pytest

from core import demo
from core.models import tiny
from core.project import ProjectStore
from core.smoke import ARCH_COPIES, arch_hyperparams
from tests.test_browser import first_part, keyed, launch_chromium, live, nav, start_server, stop_server, wait_idle

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "screenshots"

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def setup(tmp_path, demo_workspace):
    """The demo project set for full fine-tuning with the smoke run's settings for a tiny family model
    (``core.smoke --arch qwen3``), and a tiny Qwen3 model in a folder of its own, not yet chosen."""
    ws = tmp_path / "ws"
    shutil.copytree(demo_workspace, ws)
    store = ProjectStore(ws)
    project = store.load("demo")
    data = demo.build_demo_dataset(project.data_dir / "self_intro_240.jsonl", copies=ARCH_COPIES)
    store.save(project.model_copy(update={"method": "full", "hyperparams": arch_hyperparams("full"),
                                          "dataset_path": str(data)}))
    model = tiny.build_tiny_model(tmp_path / "models" / "qwen3-tiny", "qwen3")
    proc, url = start_server(tmp_path)  # workspace: ws
    yield url, ws, model
    stop_server(proc)


def test_a_tiny_qwen3_picked_on_model_data_answers_fine_tuned_in_chat(setup):
    from playwright.sync_api import expect, sync_playwright

    url, ws, model = setup
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url + "/model_data?project=demo")
        tab = live(page.get_by_role("tab", name="Your own model"))
        expect(tab).to_be_visible(timeout=60_000)
        wait_idle(page)
        tab.click()
        live(page.get_by_role("textbox", name="Model folder on this machine")).fill(str(model))
        page.keyboard.press("Enter")
        wait_idle(page)
        live(page.get_by_role("button", name="Check this model")).click()
        expect(live(page.get_by_text("Qwen3ForCausalLM"))).to_be_visible(timeout=60_000)
        expect(live(page.get_by_text("XTuner prompt template: qwen3_chat"))).to_be_visible(timeout=30_000)
        wait_idle(page)
        live(page.get_by_role("button", name="Use this model", exact=True)).click()
        expect(live(page.get_by_text(f"In use: {model}"))).to_be_visible(timeout=30_000)
        wait_idle(page)
        project = ProjectStore(ws).load("demo")
        assert project.model_path == str(model) and project.prompt_template == "qwen3_chat"

        nav(page, "3 · Train")
        start = live(page.get_by_role("button", name="Start a new run"))
        expect(start).to_be_visible(timeout=30_000)
        wait_idle(page)
        start.click()
        expect(live(page.get_by_text("Training finished."))).to_be_visible(timeout=900_000)

        nav(page, "5 · Convert & Chat")
        convert = live(page.get_by_role("button", name=first_part("Convert ({what})")))
        expect(convert).to_be_visible(timeout=30_000)
        wait_idle(page)
        convert.click()
        expect(live(page.get_by_text(first_part("Ready: {path} ({size})")))).to_be_visible(timeout=600_000)
        wait_idle(page)
        box = live(page.get_by_test_id("stChatInputTextArea"))
        box.fill(demo.DEMO_QUESTION)
        box.press("Enter")
        expect(keyed(page, "answer_right")).to_contain_text(demo.DEMO_IDENTITY, timeout=180_000)  # the full fine-tune
        for side in ("left", "right"):
            expect(keyed(page, f"answer_{side}")).not_to_contain_text("▌", timeout=120_000)
        wait_idle(page)
        assert demo.DEMO_IDENTITY not in keyed(page, "answer_left").inner_text()  # the base tiny Qwen3
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "qwen3-chat.png"), full_page=True)
        browser.close()
