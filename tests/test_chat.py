"""core.deploy.chat with the real demo model: streaming equals generate, seeded sampling is reproducible even
when two answers are sampled at once, the cache is bounded and unloads."""
import pytest

from core.deploy import chat
from core.demo import DEMO_QUESTION


@pytest.fixture(scope="module")
def model_dir(demo_workspace):
    return str(demo_workspace / "projects" / "demo" / "model")


@pytest.fixture(scope="module")
def loaded(model_dir):
    return chat.load_model(model_dir)


def test_streaming_gives_the_same_greedy_answer_as_generate(loaded):
    settings = chat.GenerationSettings(max_new_tokens=40)
    whole = chat.generate(loaded, "qwen_chat", DEMO_QUESTION, settings)
    stream = chat.start_stream(loaded, "qwen_chat", DEMO_QUESTION, settings)
    seen = []
    while not stream.done:
        seen.append(stream.text)
        chat.wait_any([stream], 0.01)
    assert stream.wait(5) and stream.error is None
    assert stream.text == whole and 0 < stream.tokens <= 40 and stream.tokens_per_s > 0
    assert all(whole.startswith(s.strip()) for s in seen if s.strip())


def test_seeded_sampling_is_reproducible_while_two_answers_sample_at_once(loaded):
    def pair(seed_a, seed_b):
        streams = [chat.start_stream(loaded, "qwen_chat", DEMO_QUESTION,
                                     chat.GenerationSettings(max_new_tokens=30, temperature=1.0, top_p=0.9, top_k=50,
                                                             seed=s)) for s in (seed_a, seed_b)]
        for s in streams:
            s.wait(60)
        return [s.text for s in streams]

    a1, b1 = pair(1, 2)
    a2, b2 = pair(1, 2)
    assert (a1, b1) == (a2, b2)
    assert a1 != b1
    greedy = chat.generate(loaded, "qwen_chat", DEMO_QUESTION, chat.GenerationSettings(max_new_tokens=30))
    assert a1 != greedy


def test_top_k_one_is_greedy(loaded):
    s = chat.GenerationSettings(max_new_tokens=20, temperature=0.7, top_k=1, seed=3)
    assert chat.generate(loaded, "qwen_chat", DEMO_QUESTION, s) == chat.generate(
        loaded, "qwen_chat", DEMO_QUESTION, chat.GenerationSettings(max_new_tokens=20))


def test_exact_length_and_history(loaded):
    s = chat.GenerationSettings(max_new_tokens=12, min_new_tokens=12)
    stream = chat.start_stream(loaded, "qwen_chat", "Hi", s, system="Be brief.", history=[("Who are you?", "Ada.")])
    stream.wait(30)
    assert stream.tokens == 12


def test_cache_is_bounded_and_unloads(model_dir):
    cache = chat.ModelCache(max_models=1)
    a = cache.get(model_dir)
    assert cache.get(model_dir) is a and len(cache.loaded()) == 1
    assert a.params > 0 and a.bytes > 0
    cache.set_limit(2)
    assert cache.unload(a.key) and cache.loaded() == [] and a.model is None
    cache.get(model_dir)
    cache.unload_all()
    assert cache.loaded() == []


def test_missing_model_or_adapter_is_a_clear_error(tmp_path, model_dir):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        chat.load_model(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not a LoRA adapter"):
        chat.load_model(model_dir, adapter=str(tmp_path))


def test_two_threads_loading_at_once_share_one_model(model_dir):
    """Streamlit can run an old and a new script thread together (fast reruns): one load, one model."""
    import threading

    cache = chat.ModelCache(max_models=2)
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(model_dir))) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(got) == 3 and all(g is got[0] for g in got) and len(cache.loaded()) == 1


def test_first_load_from_two_threads_in_a_fresh_interpreter(model_dir):
    """transformers' lazy import breaks when two threads import it first at once; loads are serialised."""
    import subprocess
    import sys

    code = (
        "import sys, threading\n"
        "from core.deploy import chat\n"
        "errors = []\n"
        "def load():\n"
        "    try:\n"
        f"        chat.load_model({model_dir!r})\n"
        "    except Exception as e:\n"
        "        errors.append(repr(e))\n"
        "threads = [threading.Thread(target=load) for _ in range(2)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print('ERRORS', errors)\n")
    from pathlib import Path

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parent.parent)
    assert "ERRORS []" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]


def test_token_type_ids_never_reach_generate():
    """A tokenizer without model_input_names returns token_type_ids, which generate() refuses (tiny Llama 3)."""
    from types import SimpleNamespace

    import torch

    from core.deploy.chat import _inputs

    def tokenizer(text, **kwargs):
        one = torch.tensor([[1]])
        return {"input_ids": one, "attention_mask": one, "token_type_ids": one * 0}

    tokenizer.bos_token_id = tokenizer.eos_token_id = None  # no BOS to add (see the next test)
    assert set(_inputs(SimpleNamespace(tokenizer=tokenizer, device="cpu"), "hi")) == {"input_ids", "attention_mask"}


@pytest.mark.parametrize("arch, bos", [("phi3", "<s>"), ("phi4_mini", "<|endoftext|>"), ("llama3", "<|begin_of_text|>"),
                                       ("qwen3", None)])
def test_chat_starts_with_the_bos_that_training_put_before_every_sample(arch, bos):
    """XTuner puts BOS before each training sample (not for Qwen tokenizers) whether or not the tokenizer adds one;
    chat does the same, once: without it a fully fine-tuned tiny Phi-3 answered noise."""
    from types import SimpleNamespace

    from core.data.template_check import xtuner_ids
    from core.models import tiny
    from core.models.families import BY_KEY

    tok = tiny.build_tokenizer(arch)
    template = BY_KEY[arch].template
    ids = chat._inputs(SimpleNamespace(tokenizer=tok, device="cpu"), chat.build_prompt(template, "Who are you?"))
    ids = ids["input_ids"][0].tolist()
    trained = xtuner_ids(tok, template, [{"role": "user", "content": "Who are you?"},
                                         {"role": "assistant", "content": "I am."}])
    assert ids == trained[:len(ids)]  # the prompt is the start of what training saw, BOS included
    first = tok.convert_ids_to_tokens(ids[:2])
    assert (first[0] == bos and first[1] != bos) if bos else tok.bos_token_id not in ids
