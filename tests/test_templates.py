from core.data.templates import PROMPT_TEMPLATES, detect_template, format_prompt


def test_templates_match_xtuner_exactly():
    from xtuner.utils import PROMPT_TEMPLATE

    assert {k: dict(v) for k, v in PROMPT_TEMPLATE.items()} == PROMPT_TEMPLATES


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
