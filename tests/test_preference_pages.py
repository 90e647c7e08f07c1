"""Preference tuning on the pages (AppTest): the objective, the preference pairs checked and converted, β on Configure."""
import json
import shutil
from pathlib import Path

import pytest

from core.project import ProjectStore
from tests.apptests import open_page
from ui.preference_picker import OBJECTIVE_LABELS

U = {"role": "user", "content": "Who are you?"}


@pytest.fixture
def ws(demo_workspace, tmp_path):
    """A private copy of the demo workspace: these tests change the project."""
    dst = tmp_path / "ws"
    shutil.copytree(demo_workspace, dst)
    return dst


def load(ws):
    return ProjectStore(ws).load("demo")


def jsonl(records) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def upload(at, name, data: bytes):
    at.file_uploader(key="md_pref_upload").set_value((name, data, "application/json"))
    at.run()
    at.button(key="md_pref_use_upload").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_dpo_takes_preference_pairs_checked_with_line_and_field_then_converted(ws):
    at = open_page(ws, "pages/model_data.py")
    assert "md_pref_upload" not in [u.key for u in at.get("file_uploader")]  # SFT: the SFT dataset section
    at.radio(key="md_objective").set_value(OBJECTIVE_LABELS["dpo"]).run()
    assert load(ws).objective == "dpo"
    bad = jsonl([{"prompt": "Who are you?", "chosen": "Ada's.", "rejected": "Bob's."},
                 {"prompt": "Who are you?", "chosen": "Ada's.", "rejected": "Ada's."},
                 {"prompt": "Who are you?", "chosen": "Ada's."}])
    upload(at, "bad.jsonl", bad)
    assert "bad.jsonl: 2 problem(s) found" in " ".join(e.value for e in at.error)
    rows = at.dataframe[0].value
    assert list(rows["line"]) == [2, 3] and list(rows["field"]) == ["chosen, rejected", "rejected"]
    assert not list((ws / "projects" / "demo" / "data").glob("bad*"))  # a bad upload leaves nothing
    good = jsonl([{"prompt": "Who are you?", "chosen": "Ada's.", "rejected": "Bob's."}])
    upload(at, "pairs.jsonl", good)
    assert "pairs.jsonl: 1 preference pairs (prompt / chosen / rejected · JSONL)" in " ".join(s.value for s in at.success)
    at.button(key="md_pref_use").click().run()
    p = load(ws)
    assert Path(p.preference_path).name == "pairs.preference.jsonl"
    assert json.loads(Path(p.preference_path).read_text()) == {
        "prompt": [U], "chosen": [{"role": "assistant", "content": "Ada's."}],
        "rejected": [{"role": "assistant", "content": "Bob's."}]}
    assert p.dataset_path.endswith("self_intro.jsonl")  # the SFT data stays for SFT


def test_configure_offers_the_preference_settings_of_the_objective(ws):
    at = open_page(ws, "pages/configure.py")
    beta = next(w for w in at.number_input if w.label == "Preference β")
    assert beta.disabled  # SFT does not use it
    store = ProjectStore(ws)
    store.save(load(ws).model_copy(update={"objective": "dpo"}))
    at = open_page(ws, "pages/configure.py")
    assert any("Objective: **DPO**" in c.value for c in at.caption)
    beta = next(w for w in at.number_input if w.label == "Preference β")
    loss = next(w for w in at.selectbox if w.label == "DPO loss")
    assert not beta.disabled and not loss.disabled
    beta.set_value(0.25)
    loss.set_value("ipo")
    at.button(key="FormSubmitter:hyperparams-Save").click().run()
    hp = load(ws).hyperparams
    assert (hp.preference_beta, hp.dpo_loss_type) == (0.25, "ipo")
    assert any("type=DPO," in c.value and "loss_beta = 0.25" in c.value for c in at.code)


def test_the_preference_section_is_translated_to_chinese(ws):
    from ui import i18n

    store = ProjectStore(ws)
    store.save(load(ws).model_copy(update={"objective": "orpo"}))
    i18n.reset_missing()
    at = open_page(ws, "pages/model_data.py", lang="zh")
    upload(at, "bad.jsonl", jsonl([{"prompt": [U], "chosen": "a", "rejected": "a"}]))
    upload(at, "good.json", json.dumps([{"question": "q", "chosen": "a", "rejected": "b"}]).encode())
    assert "偏好数据对" in " ".join(s.value for s in at.subheader)
    assert i18n.missing_keys() == set()
