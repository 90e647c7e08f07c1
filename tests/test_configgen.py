import ast

import pytest

from core.configgen import ConfigError, TrainSpec, literal_assignments, render_config
from core.project import Hyperparams

HOSTILE = [
    "'); import os; os.system('touch /tmp/pwned'); ('",
    '"""\nimport os\n"""',
    "{__import__('os').system('id')}",
    "line1\nline2\r\n\ttab \\ backslash \x00 nul",
    "中文问题：请你介绍一下你自己？ 😀",
    "${HOME} $(whoami) `id`",
]


def spec(**kw):
    base = dict(method="lora", model_path="/models/m", prompt_template="qwen_chat",
                dataset_path="/data/d.jsonl", device="cpu")
    base.update(kw)
    return TrainSpec(**base)


@pytest.mark.parametrize("method,device", [("lora", "cpu"), ("full", "cpu"), ("lora", "cuda"),
                                           ("qlora", "cuda"), ("full", "cuda")])
def test_every_method_renders_valid_python(method, device):
    text = render_config(spec(method=method, device=device))
    ast.parse(text)
    values = literal_assignments(text)
    assert values["pretrained_model_name_or_path"] == "/models/m"
    assert ("quantization_config" in text) == (method == "qlora")
    assert ("lora=dict(" in text) == (method != "full")
    assert ("AmpOptimWrapper," in text.split("optim_wrapper = dict(")[1].split(")")[0]) == (device == "cuda")


def test_qlora_on_cpu_is_refused_with_a_reason():
    with pytest.raises(ConfigError, match="QLoRA needs an NVIDIA GPU"):
        render_config(spec(method="qlora", device="cpu"))


def test_hostile_strings_stay_literals_and_round_trip():
    s = spec(evaluation_inputs=HOSTILE, system_prompt=HOSTILE[0], model_path=HOSTILE[1],
             dataset_path=HOSTILE[3], progress_file=HOSTILE[2])
    text = render_config(s)
    values = literal_assignments(text)
    assert values["evaluation_inputs"] == HOSTILE
    assert values["SYSTEM"] == HOSTILE[0]
    assert values["pretrained_model_name_or_path"] == HOSTILE[1]
    assert values["data_path"] == HOSTILE[3]
    assert values["studio_progress_file"] == HOSTILE[2]
    # nothing but the fixed imports and assignments at module level: no call was smuggled in
    for node in ast.parse(text).body:
        assert isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign, ast.Expr)) and not (
            isinstance(node, ast.Expr) and not isinstance(node.value, ast.Constant))


def test_unknown_template_is_refused():
    with pytest.raises(ValueError, match="Unknown prompt template"):
        spec(prompt_template="qwen_chat; import os")


def test_hyperparams_reach_the_config():
    hp = Hyperparams(lr=1.5e-3, max_epochs=7, lora_r=8, lora_alpha=32, seed=123, warmup_ratio=0,
                     lora_target_modules=["q_proj", "v_proj"])
    values = literal_assignments(render_config(spec(hyperparams=hp)))
    assert values["lr"] == 1.5e-3 and values["max_epochs"] == 7 and values["warmup_ratio"] == 0
    text = render_config(spec(hyperparams=hp))
    assert "r=8," in text and "lora_alpha=32," in text and "seed=123" in text
    assert "target_modules=['q_proj', 'v_proj']" in text
    assert "WarmupLinearLR" not in text.split("param_scheduler = [")[1]


def test_mmengine_parses_the_config_lazily(tmp_path):
    from mmengine.config import Config

    path = tmp_path / "cfg.py"
    path.write_text(render_config(spec(evaluation_inputs=HOSTILE)))
    cfg = Config.fromfile(str(path))
    assert list(cfg.evaluation_inputs) == HOSTILE
    assert cfg.train_cfg.max_epochs == 3
