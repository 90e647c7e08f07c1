"""Convert & Chat offers thinking on/off only for Qwen3-family templates (AppTest, no model loaded)."""
from tests.apptests import open_page


def test_the_thinking_toggle_is_offered_for_qwen3_templates_only(demo_workspace):
    at = open_page(demo_workspace, "pages/convert_chat.py")
    assert at.selectbox(key="chat_template").value == "qwen_chat"
    assert not [w for w in at.toggle if w.key == "chat_thinking"]
    at.selectbox(key="chat_template").set_value("qwen3_chat").run()
    assert not at.exception, [e.value for e in at.exception]
    toggle = at.toggle(key="chat_thinking")
    assert toggle.label == "Thinking" and toggle.value is False
