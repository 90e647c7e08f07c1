"""Importing an XTuner config: parsed as syntax (never executed), known fields mapped, the rest shown."""
import pytest

from core.train.config_import import SYSTEM_TEMPLATES, ConfigImportError, parse_config, parse_config_file
from core.train.configgen import TrainSpec, render_config
from core.train.presets import PRESET_FILES, xtuner_configs_dir
from core.project import Hyperparams, Project


def test_system_templates_match_xtuner_exactly():
    from xtuner.utils import SYSTEM_TEMPLATE

    assert dict(SYSTEM_TEMPLATE) == SYSTEM_TEMPLATES


def test_xtuners_own_qlora_config_maps_to_the_form():
    cfg = parse_config_file(xtuner_configs_dir() / PRESET_FILES["qlora"])
    assert cfg.method == "qlora"
    assert cfg.hyperparams["lr"] == 2e-4 and cfg.hyperparams["lora_r"] == 64 and cfg.hyperparams["betas"] == (0.9, 0.999)
    assert cfg.hyperparams["logging_interval"] == 10 and cfg.hyperparams["seed"] is None
    assert cfg.evaluation_inputs == ["请给我介绍五个上海的景点", "Please tell me five scenic spots in Shanghai"]
    assert cfg.system_prompt == SYSTEM_TEMPLATES["alpaca"]
    assert cfg.prompt_template == "internlm2_chat"
    assert cfg.model_path == "internlm/internlm2-chat-1_8b" and cfg.dataset_path == "tatsu-lab/alpaca"
    assert not cfg.errors
    # what is not mapped is shown, as source text
    assert "optim_wrapper" in cfg.unmapped and "train_dataloader" in cfg.unmapped
    assert any("accumulative_counts *= sequence_parallel_size" in v for v in cfg.unmapped.values())


def test_every_xtuner_config_parses_without_an_exception():
    paths = [p for p in xtuner_configs_dir().rglob("*.py") if p.name != "__init__.py"]
    assert len(paths) > 500
    methods = {parse_config_file(p).method for p in paths}
    assert {"qlora", "lora", "full"} <= methods


def test_our_own_config_round_trips_through_the_import():
    hp = Hyperparams(lr=1.5e-3, max_epochs=7, lora_r=8, lora_alpha=32, lora_dropout=0.05, seed=123,
                     lora_target_modules=["q_proj", "v_proj"], optimizer="SGD", weight_decay=0.01,
                     betas=(0.8, 0.99), logging_interval=3, pack_to_max_length=False)
    spec = TrainSpec(method="lora", model_path="/m", prompt_template="qwen_chat", dataset_path="/d.jsonl",
                     hyperparams=hp, evaluation_inputs=["a", "b"], system_prompt="sys", device="cpu")
    cfg = parse_config(render_config(spec))
    assert Hyperparams.model_validate(cfg.hyperparams) == hp
    assert (cfg.method, cfg.model_path, cfg.dataset_path, cfg.prompt_template) == ("lora", "/m", "/d.jsonl", "qwen_chat")
    assert cfg.evaluation_inputs == ["a", "b"] and cfg.system_prompt == "sys"


def test_apply_keeps_paths_unless_asked(tmp_path):
    project = Project(name="p", workspace=str(tmp_path), download_cache=str(tmp_path), method="lora",
                      model_path="/mine", dataset_path="/my.jsonl", prompt_template="qwen_chat")
    cfg = parse_config_file(xtuner_configs_dir() / PRESET_FILES["full"])
    applied = cfg.apply(project)
    assert applied.method == "full" and applied.hyperparams.lr == 2e-5 and applied.model_path == "/mine"
    assert cfg.apply(project, paths=True).model_path == "internlm/internlm2-chat-1_8b"


def test_nothing_in_the_file_runs(tmp_path):
    marker = tmp_path / "ran"
    text = (f"import os\nos.system('touch {marker}')\nlr = __import__('os').system('touch {marker}')\n"
            f"max_epochs = open({str(marker)!r}, 'w')\nbatch_size = 4\n")
    cfg = parse_config(text)
    assert not marker.exists()
    assert cfg.hyperparams == {"batch_size": 4}
    assert any(e.startswith("lr = __import__") for e in cfg.errors)
    assert "line 2" in cfg.unmapped


@pytest.mark.parametrize("text,message", [
    ("lr = (", "Not valid Python (line 1"),
    ("x = 1\n" * 200_000, "larger than 1 MB"),
])
def test_unreadable_files_get_a_clear_error(text, message):
    with pytest.raises(ConfigImportError, match=message.replace("(", r"\(")):
        parse_config(text)


def test_bad_values_are_reported_not_taken():
    cfg = parse_config("lr = 5\nmax_epochs = 'three'\nsave_steps = -1\nbatch_size = 2\noptim_type = Lion\n"
                       "max_length = int(2048 - (336 / 14) ** 2)\nwarmup_ratio = 10 ** 10 ** 10\n")
    assert cfg.hyperparams == {"batch_size": 2, "max_length": 1472}
    assert len(cfg.errors) == 5
    assert any("lr = 5 was not taken" in e for e in cfg.errors)
    assert any("only AdamW and SGD" in e for e in cfg.errors)


def test_non_sft_models_are_not_given_a_method():
    cfg = parse_config("model = dict(type=RewardModel, llm=dict(type=AutoModelForCausalLM.from_pretrained))\n")
    assert cfg.method is None and "not supervised fine-tuning" in cfg.errors[0]
    # XTuner's preference models (DPO, ORPO) are objectives the app trains
    dpo = parse_config("model = dict(type=DPO, llm=dict(type=AutoModelForCausalLM.from_pretrained))\n")
    assert (dpo.objective, dpo.method, dpo.errors) == ("dpo", "full", [])
