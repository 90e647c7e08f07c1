from core.results.evals import answer_only, diff_html, similarity, word_diff
from core.data.templates import format_prompt


def test_answer_only_strips_the_prompt_and_the_stop_word():
    q = "Who are you?"
    text = format_prompt("qwen_chat", q) + "I am Ada's assistant.<|im_end|>"
    assert answer_only(text, "qwen_chat", q) == "I am Ada's assistant."
    with_system = format_prompt("qwen_chat", q, system="S {x}") + "Hi<|im_end|>\n"
    assert answer_only(with_system, "qwen_chat", q, system="S {x}") == "Hi"
    # the prompt decoded slightly differently: found by the question and the instruction's tail
    assert answer_only("<s>" + text, "qwen_chat", q) == "I am Ada's assistant."
    assert answer_only("free text", None, q) == "free text"


def test_word_diff_and_escaped_html():
    ops = word_diff("I am a cat.", "I am Ada's cat!")
    assert ops == [("=", "I am "), ("-", "a"), ("+", "Ada's"), ("=", " cat"), ("-", "."), ("+", "!")]
    html = diff_html("<b>x</b>", "<script>alert(1)</script>")
    assert "<script" not in html and "<b>" not in html and "&lt;" in html and "alert(1)" in html
    assert similarity("a b c", "a b c") == 1.0 and similarity("a", "z") == 0.0
