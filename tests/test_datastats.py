"""core.data.datastats: token counts equal XTuner's own encode_fn; truncation and steps per epoch."""
import json
from array import array

from core.data import datastats
from core import jobs

QUESTIONS = [
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who are you?"},
                  {"role": "assistant", "content": "I am Ada's assistant."}, {"role": "user", "content": "Sure?"},
                  {"role": "assistant", "content": "Yes.", "loss": False}]},
    {"messages": [{"role": "user", "content": "Tell me about yourself."},
                  {"role": "assistant", "content": "A tiny model fine-tuned with XTuner Studio."}]},
    {"messages": [{"role": "user", "content": "no answer"}]},
]


def test_token_counts_match_xtuners_encode_fn(demo_workspace, tmp_path):
    from transformers import AutoTokenizer
    from xtuner.dataset.map_fns import openai_map_fn, template_map_fn
    from xtuner.dataset.utils import encode_fn
    from xtuner.utils import PROMPT_TEMPLATE

    model = demo_workspace / "projects" / "demo" / "model"
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in QUESTIONS))
    job = datastats.start(tmp_path / "stats", data, model, "qwen_chat")
    assert jobs.wait_job(tmp_path / "stats", timeout=120).state == "succeeded", job
    stats, lengths = datastats.result(tmp_path / "stats"), datastats.read_lengths(tmp_path / "stats")
    tok = AutoTokenizer.from_pretrained(str(model))
    want, want_trained = [], 0
    for rec in QUESTIONS[:2]:  # the third trains nothing: XTuner drops it
        out = encode_fn(template_map_fn(openai_map_fn(rec), PROMPT_TEMPLATE.qwen_chat), tok, 10_000)
        want.append(len(out["input_ids"]))
        want_trained += sum(1 for x in out["labels"] if x >= 0)
    assert list(lengths) == want
    assert stats["records"] == 2 and stats["tokens"] == sum(want) and stats["trained_tokens"] == want_trained


def test_truncation_and_steps_per_epoch():
    lengths = array("I", [100, 300, 900, 1500])
    t = datastats.truncation(lengths, 512)
    assert t == {"over": 2, "share": 0.5, "tokens_kept": 100 + 300 + 512 + 512}
    packed = datastats.steps_per_epoch(lengths, 512, True, batch_size=1, accumulative_counts=2, num_gpus=1)
    assert packed == {"samples": 3, "iterations": 3, "optimizer_steps": 2}
    plain = datastats.steps_per_epoch(lengths, 512, False, batch_size=2, accumulative_counts=1, num_gpus=1)
    assert plain == {"samples": 4, "iterations": 2, "optimizer_steps": 2}
