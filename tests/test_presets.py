import pytest

from core.train.presets import (BUILTIN, PresetError, UserPreset, list_user_presets, load_user_preset, preset,
                          save_user_preset, xtuner_configs)
from core.project import Hyperparams, ProjectStore


@pytest.mark.parametrize("method", ["qlora", "lora", "full"])
def test_presets_are_read_from_xtuners_own_configs_and_match_the_builtin_copy(method):
    assert preset(method) == BUILTIN[method]
    assert preset(method).lr == (2e-5 if method == "full" else 2e-4)


def test_xtuner_configs_are_listed_per_method():
    assert "internlm2_chat_1_8b_qlora_alpaca_e3" in xtuner_configs("qlora")
    assert "minicpm_2b_lora_alpaca_zh_e3" in xtuner_configs("lora")
    assert all("_full_" in name for name in xtuner_configs("full"))


def test_user_presets_save_and_restore_the_configure_choices(tmp_path):
    store = ProjectStore(tmp_path)
    project = store.create("p", method="lora", hyperparams=Hyperparams(lr=1e-3, lora_r=8),
                           evaluation_inputs=['q "1"\n{x}'], system_prompt="s", num_gpus=4, deepspeed="deepspeed_zero2")
    save_user_preset(tmp_path, "my preset", project)
    assert list_user_presets(tmp_path) == ["my preset"]
    other = store.create("q", method="lora")
    restored = load_user_preset(tmp_path, "my preset").apply(other)
    assert restored.hyperparams.lr == 1e-3 and restored.hyperparams.lora_r == 8
    assert restored.evaluation_inputs == ['q "1"\n{x}'] and restored.num_gpus == 4
    assert restored.deepspeed == "deepspeed_zero2" and restored.name == "q"
    assert UserPreset.of(restored).hyperparams == project.hyperparams


@pytest.mark.parametrize("name", ["../escape", "", "a/b", "x\ny"])
def test_bad_preset_names_are_refused(tmp_path, name):
    from core.project import Project

    project = Project(name="p", workspace=str(tmp_path), download_cache=str(tmp_path))
    with pytest.raises(PresetError, match="not allowed"):
        save_user_preset(tmp_path, name, project)


def test_missing_or_broken_presets_say_so(tmp_path):
    with pytest.raises(PresetError, match="No preset"):
        load_user_preset(tmp_path, "nope")
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "bad.json").write_text('{"method": "lora", "hyperparams": {"lr": 7}}')
    with pytest.raises(PresetError, match="not a valid preset"):
        load_user_preset(tmp_path, "bad")
