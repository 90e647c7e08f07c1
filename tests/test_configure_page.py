"""Configure page under AppTest: form, evaluation, presets, import, estimate, config, commands."""
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.train.config_import import parse_config
from core.project import ProjectStore
from tests.apptests import open_page

REPO = Path(__file__).resolve().parent.parent
INJECTION = "q'\"\n}{__import__('os').system('id')}\\n\"\"\"{lr}"


@pytest.fixture
def ws(demo_workspace, tmp_path):
    """A private copy of the demo workspace: these tests change the project."""
    dst = tmp_path / "ws"
    shutil.copytree(demo_workspace, dst)
    return dst


def page(ws) -> AppTest:
    return open_page(ws, "pages/configure.py")


def widget(items, label):
    return next(w for w in items if w.label == label)


def load(ws):
    return ProjectStore(ws).load("demo")


def test_hyperparameters_are_saved(ws):
    at = page(ws)
    widget(at.number_input, "Learning rate").set_value(0.002)
    widget(at.text_input, "LoRA target modules").set_value("q_proj, v_proj")
    at.button(key="FormSubmitter:hyperparams-Save").click().run()
    assert not at.error and any("Saved" in s.value for s in at.success)
    project = load(ws)
    assert project.hyperparams.lr == 0.002 and project.hyperparams.lora_target_modules == ["q_proj", "v_proj"]


def test_launch_settings_are_shown_read_only_and_the_commands_follow_them(ws):
    """GPUs, nodes and DeepSpeed are edited on Train only (checked there against this machine)."""
    store = ProjectStore(ws)
    store.save(load(ws).model_copy(update={"num_gpus": 4, "num_nodes": 2, "deepspeed": "deepspeed_zero2"}))
    at = page(ws)
    labels = {w.label for w in [*at.number_input, *at.selectbox]}
    assert not labels & {"GPUs per node", "Nodes", "DeepSpeed"}, "no second editor of the launch settings"
    assert any("**4** GPU(s) per node · **2** node(s) · DeepSpeed: **deepspeed_zero2**" in m.value
               for m in at.markdown)
    # the commands follow: one per node, with DeepSpeed
    assert any("NPROC_PER_NODE=4 NNODES=2 NODE_RANK=1" in c.value and "--deepspeed deepspeed_zero2" in c.value
               for c in at.code)
    assert any("#SBATCH --nodes=2" in c.value for c in at.code)


def test_every_setting_of_the_schema_has_its_widget_with_the_schema_bounds(ws):
    from core.train.hyperparams import settings
    from ui.hyperparams_form import label_of

    at = page(ws)
    widgets = {w.label: w for w in [*at.number_input, *at.text_input, *at.selectbox, *at.checkbox]}
    for s in settings():
        labels = s.widget.get("parts") or [label_of(s)]
        for label in labels:
            assert label in widgets, f"no widget for {s.name}"
            w = widgets[label]
            if "ge" in s.bounds:
                assert w.min == s.bounds["ge"], s.name
            if "le" in s.bounds:
                assert w.max == s.bounds["le"], s.name
    max_length = widgets["Max length (tokens)"]
    assert (max_length.min, max_length.max, max_length.step) == (16, 1_048_576, 256)


def test_a_value_outside_the_schema_bounds_is_refused_with_the_setting_named(ws):
    at = page(ws)
    widget(at.number_input, "Gradient clip (max norm)").set_value(0.0)  # the schema says > 0
    at.button(key="FormSubmitter:hyperparams-Save").click().run()
    assert at.error and "max_norm" in at.error[0].value
    assert load(ws).hyperparams.max_norm == 1.0


def test_an_eleventh_evaluation_question_is_refused_clearly(ws):
    at = page(ws)
    widget(at.number_input, "Number of evaluation questions").set_value(11).run()
    assert at.error and "At most 10 evaluation questions" in at.error[0].value
    assert len([a for a in at.text_area if a.label.startswith("Question ")]) == 10, "ten to fill, not eleven"
    widget(at.text_area, "Question 10").set_value("the tenth")
    at.button(key="FormSubmitter:evaluation-Save evaluation").click().run()
    assert load(ws).evaluation_inputs[-1] == "the tenth"


def test_a_bad_seed_is_refused_and_nothing_is_lost(ws):
    at = page(ws)
    widget(at.text_input, "Seed").set_value("abc")
    widget(at.number_input, "Epochs").set_value(9)
    at.button(key="FormSubmitter:hyperparams-Save").click().run()
    assert at.error and "whole number" in at.error[0].value
    assert load(ws).hyperparams.max_epochs == 3
    assert widget(at.number_input, "Epochs").value == 9  # what was typed is still there


def test_typed_questions_and_system_prompt_reach_the_config_as_the_same_strings(ws):
    at = page(ws)
    widget(at.number_input, "Number of evaluation questions").set_value(3).run()
    widget(at.text_area, "Question 1").set_value(INJECTION)
    widget(at.text_area, "Question 2").set_value("")  # empty ones are dropped
    widget(at.text_area, "Question 3").set_value("你是谁？")
    widget(at.text_area, "System prompt (optional)").set_value(INJECTION)
    at.button(key="FormSubmitter:evaluation-Save evaluation").click().run()
    assert not at.error
    project = load(ws)
    assert project.evaluation_inputs == [INJECTION, "你是谁？"] and project.system_prompt == INJECTION
    config = next(c.value for c in at.code if c.value.startswith("# Generated by XTuner Studio"))
    imported = parse_config(config)
    assert imported.evaluation_inputs == [INJECTION, "你是谁？"] and imported.system_prompt == INJECTION
    # the form shows the saved questions again
    assert widget(at.text_area, "Question 1").value == INJECTION


def test_presets_reset_other_xtuner_config_and_my_presets(ws):
    at = page(ws)
    at.button(key="preset_reset").click().run()
    assert load(ws).hyperparams.max_length == 2048  # XTuner's LoRA preset, not the demo's 256
    at.selectbox(key="preset_xtuner").set_value("minicpm_1b_lora_alpaca_zh_e3").run()
    at.button(key="preset_xtuner_apply").click().run()
    assert any("minicpm_1b_lora_alpaca_zh_e3" in s.value for s in at.success)
    at.text_input(key="preset_name").set_value("mine").run()
    at.button(key="preset_save").click().run()
    assert (ws / "presets" / "mine.json").is_file()
    widget(at.number_input, "Learning rate").set_value(0.05)
    at.button(key="FormSubmitter:hyperparams-Save").click().run()
    assert load(ws).hyperparams.lr == 0.05
    at.selectbox(key="preset_mine").set_value("mine").run()
    at.button(key="preset_load").click().run()
    assert load(ws).hyperparams.lr == 2e-4


def test_importing_an_xtuner_config_maps_fields_and_shows_the_rest(ws):
    from core.train.presets import PRESET_FILES, xtuner_configs_dir

    text = (xtuner_configs_dir() / PRESET_FILES["full"]).read_bytes()
    at = page(ws)
    at.file_uploader(key="import_file").set_value(("full.py", text, "text/x-python")).run()
    assert not at.exception
    assert any("optim_wrapper" in c.value for c in at.code), "unmapped settings are shown"
    at.button(key="import_apply").click().run()
    project = load(ws)
    assert project.method == "full" and project.hyperparams.lr == 2e-5
    assert project.model_path.endswith("model"), "paths kept unless asked"


def test_an_unreadable_import_gets_a_clear_error(ws):
    at = page(ws)
    at.file_uploader(key="import_file").set_value(("bad.py", b"lr = (", "text/x-python")).run()
    assert at.error and "Not valid Python (line 1" in at.error[0].value


def test_memory_estimate_is_shown_without_loading_torch(ws):
    at = page(ws)
    labels = [m.label for m in at.metric]
    assert "Peak per GPU (estimate)" in labels and "Trainable parameters" in labels
    assert any("no weights were loaded" in c.value for c in at.caption)
