"""Vision-language chat in a real browser (Debian's Chromium + Playwright): a held-out picture of the tiny vision
demo uploaded on Convert & Chat, after the session's LLaVA smoke trained both stages and converted stage 2; the
fine-tuned model's streamed answer names its colour and shape, the base model's (untrained projector) does not."""
import re
import shutil
from pathlib import Path

import pytest

from tests.test_browser import keyed, launch_chromium, live, start_server, stop_server, wait_idle

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "screenshots"
CAPTION = re.compile(r"^a (red|green|blue) (circle|square|triangle) on a white background$")

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def setup(tmp_path, vision_smoke_run):
    assert vision_smoke_run.returncode == 0, vision_smoke_run.stdout[-4000:] + vision_smoke_run.stderr[-4000:]
    shutil.copytree(vision_smoke_run.workspace, tmp_path / "ws")  # the runs' own paths still name the original
    proc, url = start_server(tmp_path)
    yield url, tmp_path / "ws" / "projects" / "llava-demo" / "vision" / "heldout", vision_smoke_run.stdout
    stop_server(proc)


def test_an_uploaded_picture_is_described_by_the_fine_tuned_llava_model(setup):
    from playwright.sync_api import expect, sync_playwright

    url, heldout, smoke_out = setup
    from core.vision import demo as vdemo

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url + "/convert_chat?project=llava-demo")
        expect(live(page.get_by_text("Ask about an image (vision-language)"))).to_be_visible(timeout=120_000)
        wait_idle(page)
        answers = {}
        uploader = live(page.get_by_test_id("stFileUploader").filter(has_text="Image (.png, .jpg)"))
        for picture in ("green-circle-0.png", "blue-triangle-0.png"):
            uploader.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(heldout / picture))
            expect(uploader).to_contain_text(picture, timeout=30_000)  # the uploaded file is listed
            wait_idle(page)
            ask = live(page.get_by_role("button", name="Ask both models"))
            expect(ask).to_be_enabled(timeout=30_000)
            ask.click()
            box = keyed(page, "vl_answers_box")
            expect(box).to_contain_text(f"About {picture}: {vdemo.QUESTION}", timeout=300_000)
            expect(box).not_to_contain_text("▌", timeout=300_000)  # both answers complete
            wait_idle(page)
            base, tuned = (keyed(page, f"vl_answer_{side}").inner_text().strip() for side in ("base", "tuned"))
            answers[picture] = (base, tuned)
            # greedy: the very answer the smoke got for this picture, asked in-process from its file
            assert re.search(rf"{re.escape(picture)}:  base .*  fine-tuned (OK |no ){re.escape(repr(tuned[:60]))}",
                             smoke_out), (picture, tuned)
            assert CAPTION.match(tuned), answers
        # the fine-tuned model tells the two pictures apart; the base model names neither
        assert answers["green-circle-0.png"][1] != answers["blue-triangle-0.png"][1], answers
        assert sum(vdemo.names_it(tuned, *p.split("-")[:2]) for p, (_b, tuned) in answers.items()) >= 1, answers
        assert not any(vdemo.names_it(base, *p.split("-")[:2]) for p, (base, _t) in answers.items()), answers
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "vision-chat.png"), full_page=True)
        browser.close()
