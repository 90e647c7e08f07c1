"""core.models.folder: a model folder checked without loading it; template matched and cross-checked."""
import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from core.data import chatrender
from core.models.folder import GOOD_MATCH, inspect_model, safetensors_header

LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
          "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
          "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
          "{{ content }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
GEMMA = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
         "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
         "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
         "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
         "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
         "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}")
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n'}}{% endfor %}")


def make_model(path, model_type="llama", arch="LlamaForCausalLM", chat_template=None, tok_class="PreTrainedTokenizerFast",
               bos="<s>", eos="</s>", weights=True, **config):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": model_type, "architectures": [arch],
                                                  "torch_dtype": "bfloat16", "hidden_size": 8,
                                                  "num_hidden_layers": 2, **config}))
    tok = {"tokenizer_class": tok_class, "bos_token": bos, "eos_token": {"content": eos}}
    if chat_template:
        tok["chat_template"] = chat_template
    (path / "tokenizer_config.json").write_text(json.dumps(tok))
    (path / "tokenizer.json").write_text("{}")
    if weights:
        save_file({"embed.weight": np.zeros((10, 8), dtype=np.float16), "lm.weight": np.zeros((8, 3), dtype=np.float16)},
                  str(path / "model.safetensors"))
    return path


def test_the_demo_model_is_checked_and_its_template_matches_exactly(demo_workspace):
    r = inspect_model(demo_workspace / "projects" / "demo" / "model")
    assert r.ok and not r.warnings, [str(w) for w in r.warnings]
    assert (r.architecture, r.template, r.template_source) == ("Qwen2ForCausalLM", "qwen_chat", "model type")
    assert r.params_source == "safetensors headers" and 100_000 < r.params < 300_000
    assert r.dtype == "float32" and r.check.similarity == 1.0 and r.check.differences == []
    assert not r.needs_remote_code


def test_params_and_dtype_come_from_safetensors_headers_without_loading(tmp_path):
    r = inspect_model(make_model(tmp_path / "m", chat_template=LLAMA3, bos="<|begin_of_text|>", eos="<|eot_id|>"))
    assert r.ok and r.params == 10 * 8 + 8 * 3 and r.dtype == "float16"
    assert (r.template, r.check.similarity) == ("llama3_chat", 1.0)
    assert r.size_bytes > 0 and r.weight_files == ["model.safetensors"]


def test_a_llama_without_the_llama3_template_is_not_matched_blindly(tmp_path):
    r = inspect_model(make_model(tmp_path / "m"))
    assert r.template is None and any("No XTuner prompt template" in str(w) for w in r.warnings)


def test_differences_between_xtuner_and_the_models_template_are_shown(tmp_path):
    r = inspect_model(make_model(tmp_path / "g", model_type="gemma", arch="GemmaForCausalLM", chat_template=GEMMA,
                                 tok_class="GemmaTokenizer", bos="<bos>", eos="<eos>"))
    assert r.template == "gemma" and r.check.similarity < 1.0
    inserted = "".join(a for op, a, b in r.check.differences)
    assert "<eos>" in inserted and "<bos>" in inserted  # XTuner adds EOS + BOS per turn; Gemma's template does not
    # close enough to count as the model's own (XTuner's extra tokens only): no warning
    assert GOOD_MATCH <= r.check.similarity < 1.0
    assert not any("renders the sample conversation differently" in str(w) for w in r.warnings)


def test_a_template_far_from_the_models_own_is_warned_about(tmp_path):
    odd = GEMMA.replace("<start_of_turn>", "=== a turn of the conversation starts here, spoken by ")
    r = inspect_model(make_model(tmp_path / "g", model_type="gemma", arch="GemmaForCausalLM", chat_template=odd,
                                 tok_class="GemmaTokenizer", bos="<bos>", eos="<eos>"))
    assert r.template == "gemma" and r.check.similarity < GOOD_MATCH
    assert any("renders the sample conversation differently" in str(w) for w in r.warnings)


def test_an_unknown_model_type_is_matched_by_rendering_its_chat_template(tmp_path):
    r = inspect_model(make_model(tmp_path / "x", model_type="mychat", arch="MyChatForCausalLM", chat_template=CHATML,
                                 tok_class="Qwen2Tokenizer"))
    assert r.template in ("qwen_chat", "internlm2_chat", "minicpm3") and r.template_source == "chat template"
    assert r.check.similarity == 1.0


def test_remote_code_is_reported_never_run(tmp_path):
    m = make_model(tmp_path / "rc", model_type="internlm2", arch="InternLM2ForCausalLM",
                   auto_map={"AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM"})
    (m / "modeling_internlm2.py").write_text("raise SystemExit('must never run')\n")
    r = inspect_model(m)
    assert r.ok and r.needs_remote_code and r.remote_code_files == ["modeling_internlm2.py"]
    assert r.template == "internlm2_chat"
    assert any("trust_remote_code" in str(w) for w in r.warnings)


@pytest.mark.parametrize("damage, words", [
    ("no_config", "no config.json"),
    ("bad_config", "not valid JSON"),
    ("no_weights", "No weights"),
    ("truncated", "damaged or truncated"),
    ("missing_shard", "download is incomplete"),
    ("not_a_dir", "is not a folder"),
])
def test_a_broken_model_folder_gets_a_precise_error(tmp_path, damage, words):
    m = make_model(tmp_path / "m", chat_template=LLAMA3)
    if damage == "no_config":
        (m / "config.json").unlink()
    elif damage == "bad_config":
        (m / "config.json").write_text("{")
    elif damage == "no_weights":
        (m / "model.safetensors").unlink()
    elif damage == "truncated":
        data = (m / "model.safetensors").read_bytes()
        (m / "model.safetensors").write_bytes(data[:-20])
    elif damage == "missing_shard":
        (m / "model.safetensors.index.json").write_text(json.dumps(
            {"weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    elif damage == "not_a_dir":
        m = m / "config.json"
    r = inspect_model(m)
    assert not r.ok and any(words in str(e) for e in r.errors), [str(e) for e in r.errors]


def test_warnings_for_quantized_weights_partial_files_and_missing_bos(tmp_path):
    m = make_model(tmp_path / "q", bos=None, quantization_config={"quant_method": "gptq"}, chat_template=LLAMA3)
    (m / "x.incomplete").write_bytes(b"1")
    text = " ".join(str(w) for w in inspect_model(m).warnings)
    assert "already quantized (gptq)" in text and "Partial download" in text and "no bos_token" in text


def test_safetensors_header_is_read_without_the_data(tmp_path):
    make_model(tmp_path / "m")
    h = safetensors_header(tmp_path / "m" / "model.safetensors")
    assert h["embed.weight"]["shape"] == [10, 8] and h["embed.weight"]["dtype"] == "F16"


def test_xtuner_segments_mark_what_is_trained():
    turns = [("Be brief.", "Who?", "Ada.", True), ("", "More?", "No.", False)]
    segs = chatrender.xtuner_segments(turns, "llama3_chat", bos="<|begin_of_text|>", eos="<|eot_id|>")
    trained = "".join(s.text for s in segs if s.trained)
    assert trained == "Ada.<|eot_id|>"  # the second answer has output_with_loss false
    assert segs[0].kind == "bos" and sum(s.kind == "bos" for s in segs) == 1  # SUFFIX_AS_EOS: no BOS before turn 2
    g = chatrender.xtuner_segments(turns[:1], "gemma", bos="<bos>", eos="<eos>")
    assert [s.kind for s in g] == ["bos", "prompt", "output", "eos", "sep"]


@pytest.mark.parametrize("arch, family, template, moe", [
    ("qwen3", "Qwen3 (dense)", "qwen3_chat", False),
    ("qwen3_moe", "Qwen3-MoE (e.g. Qwen3-30B-A3B)", "qwen3_chat", True),
    ("gemma3", "Gemma 3 (text)", "gemma3", False),
    ("phi4_mini", "Phi-4-mini", "phi4_mini_chat", False),
    ("r1_distill", "DeepSeek-R1-Distill-Qwen", "deepseek_r1", False),
    ("llama3", "Llama 3.x", "llama3_chat", False),
])
def test_todays_families_are_recognised_without_loading_weights(tmp_path, monkeypatch, arch, family, template, moe):
    from core.models import tiny

    tiny.build_tiny_model(tmp_path / arch, arch)
    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "load_file", lambda *a, **k: pytest.fail("weights were loaded"))
    r = inspect_model(tmp_path / arch)
    assert r.ok, [str(e) for e in r.errors]
    assert (r.family, r.template, r.moe) == (family, template, moe)
    # the 2-turn sample: Qwen3's own template drops the empty <think></think> from earlier answers only
    assert r.check is not None and r.check.similarity >= 0.9, r.check.differences
    if arch.startswith("qwen3"):
        assert all("<think>" in a for _, a, _ in r.check.differences), r.check.differences


def test_a_model_type_this_transformers_does_not_know_says_which_version_would(tmp_path, monkeypatch):
    from core.models import families

    monkeypatch.setattr(families, "known_model_types", lambda: frozenset({"qwen2", "llama"}))
    r = inspect_model(make_model(tmp_path / "q3", model_type="qwen3", arch="Qwen3ForCausalLM", chat_template=CHATML))
    assert not r.ok
    assert any("needs transformers 4.51.0 or newer" in str(e) and "config.json" in str(e) for e in r.errors)
    r = inspect_model(make_model(tmp_path / "x", model_type="brandnew", arch="BrandNewForCausalLM"))
    assert any("brandnew is unknown to transformers" in str(e) and str(tmp_path / "x" / "config.json") in str(e)
               and "trust_remote_code" in str(e) for e in r.errors)


def test_the_installed_transformers_knows_todays_families():
    from core.models import families

    known = families.known_model_types()
    assert {"qwen2", "qwen3", "qwen3_moe", "llama", "mistral", "gemma2", "gemma3_text", "phi3"} <= known
    assert "internlm3" not in known  # remote code only


def test_a_tokenizer_without_chat_template_names_the_file(tmp_path):
    r = inspect_model(make_model(tmp_path / "q", model_type="qwen3", arch="Qwen3ForCausalLM"))
    assert any("tokenizer_config.json has no chat_template" in str(w) for w in r.warnings)


@pytest.mark.parametrize("field, value", [("hidden_size", "big"), ("num_hidden_layers", 0), ("vocab_size", 3.5),
                                          ("num_attention_heads", True), ("model_type", 5)])
def test_a_config_json_that_transformers_cannot_build_from_names_the_file_and_field(tmp_path, field, value):
    m = make_model(tmp_path / "m", chat_template=LLAMA3, **{field: value})
    r = inspect_model(m)
    assert not r.ok
    message = next(str(e) for e in r.errors)
    assert str(m / "config.json") in message and field in message and json.dumps(value) in message
    assert "download the model again, or fix the file" in message
