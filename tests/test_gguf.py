"""GGUF export (llama.cpp's converter as a job) and the Ollama Modelfile beside it: the file llama.cpp
reads tokenizes like the Hugging Face tokenizer, carries the chat template and stop token, and the
Modelfile's TEMPLATE renders a conversation exactly as the chat template does."""
import json
import re
import shutil
import time

import pytest

from core import jobs
from core.deploy import gguf, gguf_modelfile
from core.deploy.gguf_convert import GPT2_REGEX, KNOWN_SPLITS, pre_tokenizer_name
from core.errors import UserError
from core.fsutil import DiskFull
from tests.apptests import open_page

needs_llama_cpp = pytest.mark.skipif(gguf.converter_missing() is not None,
                                     reason=f"llama.cpp pieces missing: {gguf.converter_missing()}")

SAMPLES = [
    "Who are you?",
    "I am Ada's assistant, a tiny model fine-tuned with XTuner Studio.",
    "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n",
    "  leading spaces, tabs\tand\nnew lines\n\n 3.14159 and 1234567 ",
    "我想在apple工作1314151天～ нещо на Български 🦙🚀 I've been 'told he's there",
]


def test_pre_tokenizer_named_from_tokenizer_json():
    assert pre_tokenizer_name({"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                                                 "use_regex": True}}) == "gpt-2"
    for regex, name in KNOWN_SPLITS.items():
        seq = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated"},
            {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]}
        assert pre_tokenizer_name({"pre_tokenizer": seq}) == name
    seq["pretokenizers"][0]["pattern"]["Regex"] = GPT2_REGEX + "x"  # a regex llama.cpp has no name for
    assert pre_tokenizer_name({"pre_tokenizer": seq}) is None
    assert pre_tokenizer_name({"pre_tokenizer": {"type": "Metaspace"}}) is None
    assert pre_tokenizer_name({"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True}}) is None


@needs_llama_cpp
def test_unknown_architecture_lists_the_known_ones(demo_workspace, tmp_path):
    model = tmp_path / "odd"
    shutil.copytree(demo_workspace / "projects" / "demo" / "model", model)
    cfg = json.loads((model / "config.json").read_text())
    cfg["architectures"] = ["FancyNewForCausalLM"]
    (model / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError) as e:
        gguf.start_gguf_export(model, "Q8_0")
    assert "FancyNewForCausalLM" in str(e.value)
    assert "Qwen2ForCausalLM" in str(e.value) and "LlamaForCausalLM" in str(e.value)
    assert not (model.parent / "gguf").exists()


@needs_llama_cpp
def test_not_enough_disk_starts_nothing(demo_workspace, tmp_path, monkeypatch):
    model = tmp_path / "m"
    shutil.copytree(demo_workspace / "projects" / "demo" / "model", model)
    monkeypatch.setattr(gguf.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 ** 9, 10 ** 9, 1000))
    with pytest.raises(DiskFull):
        gguf.start_gguf_export(model, "F16")
    assert jobs.read_job(gguf.gguf_job_dir(model, "F16")) is None


def test_size_estimate_from_parameters(demo_workspace):
    model = demo_workspace / "projects" / "demo" / "model"
    f16, q8, q4 = (gguf.estimate_bytes(model, q) for q in ("F16", "Q8_0", "Q4_K_M"))
    assert f16 > q8 > q4 > 0
    assert f16 < 2 * (model / "model.safetensors").stat().st_size  # the demo's weights are f32


@pytest.fixture(scope="module")
def demo_f16(demo_workspace, tmp_path_factory):
    """The demo model exported to F16 through the job (as the page starts it), with a system prompt."""
    model = tmp_path_factory.mktemp("gguf") / "model"
    shutil.copytree(demo_workspace / "projects" / "demo" / "model", model)
    gguf.start_gguf_export(model, "F16", system="You are Ada's assistant.", name="ada")
    job_dir = gguf.gguf_job_dir(model, "F16")
    job = jobs.wait_job(job_dir, timeout=600)
    assert job.state == "succeeded", (job_dir / jobs.LOG_FILE).read_text()[-3000:]
    return model, job_dir


@needs_llama_cpp
def test_gguf_carries_template_and_stop_token_and_tokenizes_like_hf(demo_f16):
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    model, job_dir = demo_f16
    path = gguf.finished_gguf(job_dir)
    assert path is not None and not list(job_dir.glob("*.partial"))
    tok = AutoTokenizer.from_pretrained(model)
    meta = gguf.metadata(path)
    assert meta["tokenizer.chat_template"] == tok.chat_template
    assert meta["tokenizer.ggml.eos_token_id"] == tok.convert_tokens_to_ids("<|im_end|>")
    assert meta["tokenizer.ggml.pre"] == "gpt-2"
    vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    for text in SAMPLES:
        ours = vocab.tokenize(text.encode(), add_bos=False, special=True)
        assert ours == tok(text, add_special_tokens=False).input_ids, text


# --- a small evaluator of the Go-template subset a Modelfile TEMPLATE uses -----------------------------
ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)


def render_go(template: str, system: str, messages: list[dict]) -> str:
    """Render ``template`` for Ollama's values (.System, .Messages of .Role / .Content): literal text,
    {{ .X }}, {{ "literal" }}, if / else if / else / end, range, and eq; anything else fails."""
    tokens, pos = [], 0
    for m in ACTION.finditer(template):
        tokens.append(("text", template[pos:m.start()]))
        tokens.append(("action", m.group(1)))
        pos = m.end()
    tokens.append(("text", template[pos:]))

    def value(expr: str, dot):
        expr = expr.strip()
        if expr.startswith('"'):
            return json.loads(expr)
        if expr.startswith("eq "):
            a, b = re.fullmatch(r'eq (\S+) (".*?"|\S+)', expr).groups()
            return value(a, dot) == value(b, dot)
        if expr.startswith("."):
            return dot[expr[1:]]
        raise AssertionError(f"unsupported expression {expr!r}")

    def block(i: int, dot, out: list, live: bool) -> tuple[int, str]:
        """Run tokens from i until an end/else at this level; returns (index, the stopping action)."""
        while i < len(tokens):
            kind, text = tokens[i]
            i += 1
            if kind == "text":
                if live:
                    out.append(text)
            elif text == "end" or text.startswith("else"):
                return i - 1, text
            elif text.startswith("if "):
                taken = False
                cond = live and bool(value(text[3:], dot))
                while True:
                    i, stop = block(i, dot, out, cond and not taken)
                    taken = taken or cond
                    i += 1
                    if stop == "end":
                        break
                    cond = live and (stop == "else" or bool(value(stop[8:], dot)))
            elif text.startswith("range "):
                items = value(text[6:], dot) if live else []
                start = i
                for item in items:
                    i, _ = block(start, item, out, True)
                i, _ = block(start, dot, [], False)
                i += 1
            else:
                if live:
                    out.append(str(value(text, dot)))
        return i, ""

    out: list = []
    ollama_messages = [{"Role": m["role"], "Content": m["content"]} for m in messages]
    block(0, {"System": system, "Messages": ollama_messages}, out, True)
    return "".join(out)


PROBE = [{"role": "user", "content": "Who are you?"},
         {"role": "assistant", "content": "I am Ada's assistant."},
         {"role": "user", "content": "What can you do {{ here }}?"}]


@pytest.mark.parametrize("template", ["qwen_chat", "llama3_chat", "phi3_chat", "internlm2_chat", "mistral"])
def test_modelfile_template_renders_like_xtuner(template):
    from core.data.templates import format_prompt, template_dict

    text = gguf_modelfile.modelfile_text("model-Q8_0.gguf", template_dict(template), system="Be brief.")
    parsed = gguf_modelfile.parse_modelfile(text)
    assert parsed["FROM"] == "./model-Q8_0.gguf" and parsed["SYSTEM"] == "Be brief."
    assert parsed["stop"] == template_dict(template).get("STOP_WORDS", [])
    history = [(PROBE[0]["content"], PROBE[1]["content"])]
    want = format_prompt(template, PROBE[2]["content"], system="Be brief.", history=history)
    assert render_go(parsed["TEMPLATE"], "Be brief.", PROBE) == want


@needs_llama_cpp
def test_modelfile_beside_the_gguf_renders_like_the_chat_template(demo_f16):
    from transformers import AutoTokenizer

    model, job_dir = demo_f16
    parsed = gguf_modelfile.parse_modelfile((job_dir / "Modelfile").read_text())
    assert parsed["FROM"] == "./model-F16.gguf" and (job_dir / parsed["FROM"]).is_file()
    assert parsed["SYSTEM"] == "You are Ada's assistant."
    assert "<|im_end|>" in parsed["stop"]
    tok = AutoTokenizer.from_pretrained(model)
    conversation = [{"role": "system", "content": parsed["SYSTEM"]}] + PROBE
    want = tok.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    assert render_go(parsed["TEMPLATE"], parsed["SYSTEM"], PROBE) == want
    assert gguf_modelfile.ollama_commands(job_dir, "ada")[1:] == ["ollama create ada -f Modelfile", "ollama run ada"]


@needs_llama_cpp
def test_a_failed_export_leaves_no_file(demo_workspace, tmp_path):
    model = tmp_path / "broken"
    shutil.copytree(demo_workspace / "projects" / "demo" / "model", model)
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:8 + int.from_bytes(data[:8], "little") + 100])  # the header promises more
    gguf.start_gguf_export(model, "Q8_0")
    job_dir = gguf.gguf_job_dir(model, "Q8_0")
    job = jobs.wait_job(job_dir, timeout=600)
    assert job.state == "failed"
    assert gguf.finished_gguf(job_dir) is None
    # the supervisor records the end first, then runs the step's cleanup
    deadline = time.monotonic() + 120
    while list(job_dir.glob("*.gguf*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list(job_dir.glob("*.gguf*")), list(job_dir.iterdir())
    assert "removed" in (job_dir / jobs.LOG_FILE).read_text()


def test_lmdeploy_commands_serve_a_merged_model_or_an_adapter_unmerged():
    from core.deploy.serve_lmdeploy import command_line, lmdeploy_argv

    merged = lmdeploy_argv("/m/merged dir", 23333, name="ada")
    assert merged[1:4] == ["serve", "api_server", "/m/merged dir"] and merged[-2:] == ["--backend", "turbomind"]
    assert merged[merged.index("--server-name") + 1] == "127.0.0.1"
    adapter = lmdeploy_argv("/m/base", 23333, name="ada", adapter="/m/hf")
    assert adapter[-4:] == ["--backend", "pytorch", "--adapters", "ada=/m/hf"]
    assert "'/m/merged dir'" in command_line(merged)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_page_without_llama_cpp_says_how_to_install_it_and_keeps_the_rest(demo_workspace, monkeypatch, lang):
    monkeypatch.setattr(gguf, "converter_missing", lambda: "the llama_cpp package")
    at = open_page(demo_workspace, "pages/convert_chat.py", lang=lang)
    assert any(gguf.INSTALL_LINE in w.value and "llama_cpp" in w.value for w in at.warning)
    assert any((s.key or "").startswith("chat_left_") for s in at.selectbox)  # the chat is still there
