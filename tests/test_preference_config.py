"""DPO / ORPO configs (core.train.preference_config through configgen), their settings and their charts."""
import ast
import json

import pytest

from core.project import Hyperparams
from core.results import charts
from core.train.config_import import parse_config
from core.train.configgen import ConfigError, TrainSpec, literal_assignments, render_config
from core.train.hyperparams import settings


def spec(**kw):
    base = dict(method="lora", model_path="/models/m", prompt_template="qwen_chat", dataset_path="/data/p.jsonl",
                device="cpu", objective="dpo")
    return TrainSpec(**(base | kw))


@pytest.mark.parametrize("objective, method", [("dpo", "lora"), ("dpo", "full"), ("orpo", "lora"), ("sft", "lora")])
def test_the_model_and_dataset_follow_the_objective(objective, method):
    text = render_config(spec(objective=objective, method=method,
                              hyperparams=Hyperparams(preference_beta=0.25, dpo_loss_type="ipo")))
    model = text.split("model = dict(")[1].split("PART 3")[0]
    data = text.split("PART 3")[1].split("PART 4")[0]
    cls = {"dpo": "DPO", "orpo": "ORPO", "sft": "SupervisedFinetune"}[objective]
    assert f"type={cls}," in model
    assert ("build_preference_dataset" in data and "preference_collate_fn" in data) == (objective != "sft")
    assert ("process_hf_dataset" in data) == (objective == "sft")
    assert ("beta=loss_beta" in model) == (objective != "sft")
    assert ("ref_llm=None" in model and "loss_type=dpo_loss_type" in model) == (objective == "dpo")
    assert ("lora=dict(" in model) == (method == "lora")
    values = literal_assignments(text)
    assert (values["loss_beta"], values["dpo_loss_type"], values["data_path"]) == (0.25, "ipo", "/data/p.jsonl")
    for node in ast.parse(text).body:  # only imports and assignments
        assert isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign))


def test_mmengine_reads_a_dpo_config(tmp_path):
    from mmengine.config import Config

    path = tmp_path / "cfg.py"
    path.write_text(render_config(spec(hyperparams=Hyperparams(preference_beta=0.3, label_smoothing=0.1))))
    cfg = Config.fromfile(str(path))
    assert cfg.model.type.__name__ == "DPO" and cfg.model.beta == 0.3 and cfg.model.label_smoothing == 0.1
    assert cfg.model.ref_llm is None  # XTuner's DPO: the base with the adapter switched off is the reference
    assert cfg.train_dataset.type.__name__ == "build_preference_dataset"
    assert list(cfg.train_dataset.dataset.data_files) == ["/data/p.jsonl"]


def test_an_imported_dpo_config_brings_its_preference_settings_back():
    hp = Hyperparams(preference_beta=0.05, dpo_loss_type="hinge", label_smoothing=0.2)
    imported = parse_config(render_config(spec(hyperparams=hp)))
    assert imported.errors == []
    assert {k: imported.hyperparams[k] for k in ("preference_beta", "dpo_loss_type", "label_smoothing")} == \
        {"preference_beta": 0.05, "dpo_loss_type": "hinge", "label_smoothing": 0.2}


def test_preference_settings_are_used_by_their_objectives_only():
    used = {s.name: s.objectives for s in settings() if s.objectives != ("sft", "dpo", "orpo")}
    assert used == {"pack_to_max_length": ("sft",), "heldout_ratio": ("sft",), "preference_beta": ("dpo", "orpo"),
                    "dpo_loss_type": ("dpo",), "label_smoothing": ("dpo",)}
    with pytest.raises(ValueError):
        Hyperparams(preference_beta=0)


def test_a_model_without_chat_template_is_refused_for_preference_tuning(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    with pytest.raises(ConfigError) as e:
        render_config(spec(model_path=str(tmp_path)))
    assert "chat template" in str(e.value)
    render_config(spec(model_path=str(tmp_path), objective="sft"))  # SFT uses XTuner's template: fine
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    render_config(spec(model_path=str(tmp_path)))


def test_reward_margin_and_accuracy_are_charted():
    curves = charts.Curves.of({"loss": ([1, 2, 3], [0.7, 0.6, 0.5]), "reward_margin": ([1, 2, 3], [0.0, 0.2, 0.5]),
                               "chosen_rewards": ([1, 2, 3], [0.0, 0.1, 0.3]),
                               "rejected_rewards": ([1, 2, 3], [0.0, -0.1, -0.2]),
                               "reward_acc": ([1, 2, 3], [0.0, 1.0, 1.0])})
    figs = dict(charts.scalar_figures(curves))
    assert list(figs) == ["loss", "reward_margin", "reward_acc"]  # chosen/rejected drawn inside the margin chart
    names = [tr.name for tr in figs["reward_margin"].data]
    assert names == ["reward margin", "smoothed", "chosen", "rejected"]
    assert list(figs["reward_margin"].data[2].y) == [0.0, 0.1, 0.3]
    assert figs["reward_acc"].layout.title.text == "Reward accuracy"
