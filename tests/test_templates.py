import json

import pytest

from core.data.templates import (PROMPT_TEMPLATES, STUDIO_TEMPLATES, XTUNER_TEMPLATES, detect_template, format_prompt,
                                 stop_words, template_dict)


def test_templates_match_xtuner_exactly():
    from xtuner.utils import PROMPT_TEMPLATE

    assert {k: dict(v) for k, v in PROMPT_TEMPLATE.items()} == XTUNER_TEMPLATES
    assert not set(STUDIO_TEMPLATES) & set(XTUNER_TEMPLATES)  # the app's own never shadow XTuner's
    assert set(PROMPT_TEMPLATES) == set(XTUNER_TEMPLATES) | set(STUDIO_TEMPLATES)


def test_format_prompt_matches_demo_chat_template(demo_workspace):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_workspace / "projects" / "demo" / "model")
    ours = format_prompt("qwen_chat", "Who are you?", system="Be brief.")
    theirs = tok.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who are you?"}],
        tokenize=False, add_generation_prompt=True)
    assert ours == theirs


def test_detect_template(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "qwen2"}')
    assert detect_template(tmp_path) == "qwen_chat"
    (tmp_path / "config.json").write_text('{"model_type": "internlm2"}')
    assert detect_template(tmp_path) == "internlm2_chat"
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    assert detect_template(tmp_path) is None  # a Llama 2 or base Llama: not llama3_chat without its template
    (tmp_path / "config.json").write_text("not json")
    assert detect_template(tmp_path) is None


@pytest.mark.parametrize("model_type, chat_marker, template", [
    ("qwen3", "", "qwen3_chat"),
    ("qwen3_moe", "", "qwen3_chat"),
    ("gemma3_text", "", "gemma3"),
    ("internlm3", "", "internlm2_chat"),
    ("qwen2", "{{'<｜User｜>' + message['content']}}{{'<｜Assistant｜>'}}", "deepseek_r1"),
    ("phi3", "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}", "phi4_mini_chat"),
    ("phi3", "{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}", "phi3_chat"),
])
def test_detect_template_for_todays_families(tmp_path, model_type, chat_marker, template):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": chat_marker}))
    assert detect_template(tmp_path) == template


TINY = ["qwen2", "qwen3", "qwen3_moe", "llama3", "gemma3", "phi3", "phi4_mini", "r1_distill"]


@pytest.mark.parametrize("arch", TINY)
def test_template_gives_the_same_tokens_as_the_family_chat_template(arch):
    from core.data.template_check import check_template
    from core.models import tiny
    from core.models.families import BY_KEY

    result = check_template(tiny.build_tokenizer(arch), BY_KEY[arch].template)
    assert result.ok, result.message()
    assert result.xtuner_text == result.model_text


def test_qwen3_trains_in_its_non_thinking_format():
    from core.models import tiny

    tok = tiny.build_tokenizer("qwen3")
    generation = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                         add_generation_prompt=True, enable_thinking=False)
    assert generation == format_prompt("qwen3_chat", "Hi") and generation.endswith("<think>\n\n</think>\n\n")


@pytest.mark.parametrize("arch", ["qwen3", "qwen3_moe"])
@pytest.mark.parametrize("thinking", [False, True])
def test_qwen3_thinking_off_and_on_give_the_tokens_of_its_chat_template(arch, thinking):
    """Chat's prompt with thinking off / on is the model's own chat template with enable_thinking False / True."""
    from core.deploy.chat import build_prompt
    from core.models import tiny

    tok = tiny.build_tokenizer(arch)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who are you?"}]
    theirs = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, enable_thinking=thinking)
    ours = tok.encode(build_prompt("qwen3_chat", "Who are you?", system="Be brief.", thinking=thinking),
                      add_special_tokens=False)
    assert ours == list(theirs)
    has_think_block = tok.convert_tokens_to_ids("<think>") in ours
    assert has_think_block is not thinking  # thinking off: the empty think block; on: the answer left open


def test_only_qwen3_templates_can_think():
    from core.data.templates import can_think

    assert can_think("qwen3_chat") and not can_think("qwen_chat") and not can_think("deepseek_r1")
    assert format_prompt("qwen_chat", "Hi", thinking=True) == format_prompt("qwen_chat", "Hi")
    # the history keeps the trained (non-thinking) format; only the open answer changes
    history = [("Hi", "Hello.")]
    on, off = (format_prompt("qwen3_chat", "Who?", history=history, thinking=x) for x in (True, False))
    assert off == on + "<think>\n\n</think>\n\n" and on.count("</think>") == 1


def test_a_thinking_answer_is_split_and_its_reasoning_left_out_of_the_history():
    from core.deploy.chat import build_prompt, split_thinking

    answer = "<think>\nThe user greets me.\n</think>\n\nHello!"
    assert split_thinking(answer) == ("The user greets me.", "Hello!")
    assert split_thinking("Hello!") == ("", "Hello!")
    prompt = build_prompt("qwen3_chat", "Who?", history=[("Hi", answer)], thinking=True)
    assert "The user greets me." not in prompt and "Hello!<|im_end|>" in prompt


def test_a_template_that_does_not_match_is_shown_with_the_differing_text():
    from core.data.template_check import check_template
    from core.models import tiny

    result = check_template(tiny.build_tokenizer("qwen3"), "qwen_chat")  # Qwen2's template on a Qwen3 tokenizer
    assert not result.ok
    assert any("<think>" in b for _, a, b in result.differences)
    assert "qwen_chat" in result.message() and "<think>" in result.message()


def test_a_tokenizer_without_chat_template_is_named_with_what_to_do():
    from core.data.template_check import check_template
    from core.models import tiny

    tok = tiny.build_tokenizer("qwen3")
    tok.chat_template = None
    result = check_template(tok, "qwen3_chat")
    assert not result.ok and "tokenizer_config.json has no chat_template" in result.message()


def test_evaluation_during_training_and_chat_format_with_the_same_template(tmp_path):
    """The generated config's template (a literal for Qwen3) drives XTuner's EvaluateChatHook exactly as
    ``format_prompt`` drives chat."""
    from mmengine.config import Config
    from transformers import AutoTokenizer
    from xtuner.engine.hooks import EvaluateChatHook

    from core.models import tiny
    from core.train.configgen import TrainSpec, render_config

    model = tmp_path / "m"
    tiny.build_tokenizer("qwen3", model)
    for name in ("qwen3_chat", "qwen_chat"):
        spec = TrainSpec(method="lora", model_path=str(model), prompt_template=name, dataset_path="d.jsonl",
                         system_prompt="Be brief.", device="cpu")
        (tmp_path / "c.py").write_text(render_config(spec))
        cfg = Config.fromfile(str(tmp_path / "c.py"))
        assert dict(cfg.prompt_template) == template_dict(name)
        hook = EvaluateChatHook(tokenizer=dict(type=AutoTokenizer.from_pretrained, pretrained_model_name_or_path=str(model)),
                                evaluation_inputs=["Who are you?"], prompt_template=cfg.prompt_template,
                                system="Be brief.", stop_words=[])
        assert (hook.system + hook.instruction).format(input="Who are you?", round=1) == \
            format_prompt(name, "Who are you?", system="Be brief.")
        assert [c.stop_word for c in hook.stop_criteria] == stop_words(name)


def test_training_is_refused_when_the_apps_template_does_not_match_the_model(tmp_path, capsys):
    from core.models import tiny
    from core.train.configgen import TrainSpec, render_config
    from core.train.xtuner_entry import check_prompt_template

    model = tmp_path / "qwen2-tokenizer"
    tiny.build_tokenizer("qwen2", model)  # ChatML without <think>: not what qwen3_chat trains
    config = tmp_path / "c.py"
    for name, refused in (("qwen3_chat", True), ("qwen_chat", False), ("llama3_chat", False)):
        spec = TrainSpec(method="lora", model_path=str(model), prompt_template=name, dataset_path="d.jsonl",
                         device="cpu")
        config.write_text(render_config(spec))
        problem = check_prompt_template(str(config))
        if refused:
            assert problem and "qwen3_chat" in problem and "<think>" in problem and "tokenizer_config.json" in problem
        else:
            assert problem is None
    assert "prompt template check: The prompt template llama3_chat" in capsys.readouterr().out  # logged only


def test_training_is_refused_when_the_tokenizer_has_no_chat_template_to_check_the_apps_template(tmp_path):
    from core.models import tiny
    from core.train.configgen import TrainSpec, render_config
    from core.train.xtuner_entry import check_prompt_template

    model = tmp_path / "base-tokenizer"
    tok = tiny.build_tokenizer("qwen3")
    tok.chat_template = None  # a base model's tokenizer
    tok.save_pretrained(model)
    config = tmp_path / "c.py"
    for name, refused in (("qwen3_chat", True), ("qwen_chat", False)):
        config.write_text(render_config(TrainSpec(method="lora", model_path=str(model), prompt_template=name,
                                                  dataset_path="d.jsonl", device="cpu")))
        problem = check_prompt_template(str(config))
        if refused:
            assert problem and "tokenizer_config.json has no chat_template" in problem and "Add the model's chat" in problem
        else:
            assert problem is None  # XTuner's own template: trains, the missing check is only logged
