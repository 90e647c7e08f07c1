import ast

import pytest

from core.train.configgen import ConfigError, TrainSpec, literal_assignments, render_config
from core.project import Hyperparams

HOSTILE = [
    "'); import os; os.system('touch /tmp/pwned'); ('",
    '"""\nimport os\n"""',
    "{__import__('os').system('id')}",
    "line1\nline2\r\n\ttab \\ backslash \x00 nul",
    "中文问题：请你介绍一下你自己？ 😀",
    "${HOME} $(whoami) `id`",
    "{{ fileDirname }} {{$HOME}} {{$HF_TOKEN:none}} {{ _base_.model }} {{ fileBasename}}",  # mmengine's placeholders
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
    # read the old way too, where mmengine first rewrites {{ fileDirname }}, {{$ENV}}, {{ _base_.x }} in the text
    assert list(Config.fromfile(str(path), lazy_import=False).evaluation_inputs) == HOSTILE


# --- every string field a user can type round-trips exactly, or is refused by an allow-list ------
INJECTION = "q'\"\n}{__import__('os').system('id')}\\n\"\"\"'''{lr}{0}"
# field -> how to read it back from the config (via the AST import, which never executes it)
ROUND_TRIP = {
    "model_path": lambda cfg, values: cfg.model_path,
    "dataset_path": lambda cfg, values: cfg.dataset_path,
    "system_prompt": lambda cfg, values: cfg.system_prompt,
    "evaluation_inputs": lambda cfg, values: cfg.evaluation_inputs[0],
    "progress_file": lambda cfg, values: values["studio_progress_file"],
    "stop_file": lambda cfg, values: values["studio_stop_file"],
    "load_from": lambda cfg, values: values["load_from"],
    "lora_target_modules": lambda cfg, values: cfg.hyperparams["lora_target_modules"][0],
}
ALLOW_LISTED = {"prompt_template", "dataset_format", "device", "optimizer", "method", "precision", "objective",
                "dpo_loss_type"}


def _string_fields():
    from core.train.configgen import TrainSpec

    def has_str(annotation) -> bool:
        return "str" in repr(annotation) or "Literal" in repr(annotation)

    fields = {n for n, f in TrainSpec.model_fields.items() if has_str(f.annotation)}
    fields |= {n for n, f in Hyperparams.model_fields.items() if has_str(f.annotation)}
    return fields


def test_every_string_field_is_covered_by_the_injection_tests():
    assert _string_fields() == set(ROUND_TRIP) | ALLOW_LISTED


@pytest.mark.parametrize("name", sorted(ROUND_TRIP))
def test_typed_text_round_trips_into_the_config_as_the_same_string(name):
    from core.train.config_import import parse_config

    value = [INJECTION] if name in ("evaluation_inputs", "lora_target_modules") else INJECTION
    if name == "lora_target_modules":
        s = spec(hyperparams=Hyperparams(lora_target_modules=value))
    else:
        s = spec(**{name: value})
    text = render_config(s)
    for node in ast.parse(text).body:  # still only imports and assignments
        assert isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign))
    assert ROUND_TRIP[name](parse_config(text), literal_assignments(text)) == INJECTION


@pytest.mark.parametrize("name", sorted(ALLOW_LISTED))
def test_allow_listed_fields_refuse_typed_text(name):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        if name in ("optimizer", "precision", "dpo_loss_type"):
            Hyperparams(**{name: INJECTION})
        else:
            spec(**{name: INJECTION})


def test_the_evaluation_hook_sees_the_system_prompt_exactly(tmp_path):
    """XTuner's EvaluateChatHook formats the system text twice; the config doubles the braces."""
    from mmengine.config import Config

    from core.data.templates import PROMPT_TEMPLATES, format_prompt

    path = tmp_path / "cfg.py"
    path.write_text(render_config(spec(system_prompt=INJECTION, evaluation_inputs=[INJECTION])))
    cfg = Config.fromfile(str(path))
    hook = next(h for h in cfg.custom_hooks if "evaluation_inputs" in h)
    template = PROMPT_TEMPLATES["qwen_chat"]
    # what evaluate_chat_hook.py does: SYSTEM.format(system=...), then (system + instruction).format(...)
    system = template["SYSTEM"].format(system=hook["system"])
    seen = (system + template["INSTRUCTION"]).format(input=hook["evaluation_inputs"][0], round=1, lr=0.1)
    assert seen == format_prompt("qwen_chat", INJECTION, system=INJECTION)


def test_trust_remote_code_only_when_opted_in():
    assert "trust_remote_code=True" not in render_config(spec())
    text = render_config(spec(trust_remote_code=True))
    assert text.count("trust_remote_code=True") == 2


def test_a_template_xtuner_lacks_is_written_as_a_literal_and_read_back_by_name():
    from core.data.templates import template_dict
    from core.train.config_import import parse_config

    text = render_config(spec(prompt_template="qwen3_chat"))
    values = literal_assignments(text)
    assert values["prompt_template"] == template_dict("qwen3_chat") and values["studio_prompt_template"] == "qwen3_chat"
    assert "PROMPT_TEMPLATE.qwen3_chat" not in text
    imported = parse_config(text)
    assert imported.prompt_template == "qwen3_chat" and not imported.errors
    assert "prompt_template = PROMPT_TEMPLATE.qwen_chat" in render_config(spec())


def test_a_system_prompt_with_a_template_without_system_turn_is_refused():
    with pytest.raises(ConfigError, match="no system turn"):
        render_config(spec(prompt_template="gemma3", system_prompt="Be brief."))
    render_config(spec(prompt_template="gemma3"))
