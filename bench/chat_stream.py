"""Tokens/s of the app's streaming chat path vs a plain ``transformers`` generate loop.

    .venv/bin/python bench/chat_stream.py [--tokens 256] [--repeats 21] [--hidden 256] [--layers 4] [--device cpu|cuda]

Both sides use the demo model's architecture and tokenizer (built in a temporary directory), the same
prompt and exactly the same number of new tokens (greedy, ``min_new_tokens = max_new_tokens``). "ours" is what the Convert & Chat
page does: ``core.deploy.chat.start_stream`` in a background thread while the caller reads ``.text`` every
50 ms (waking at once when the answer completes); "plain" is ``model.generate`` in the calling thread.
The last line is ``ratio=<ours/plain>``: the median, over back-to-back pairs of one run of
each (their order alternating), of ours ÷ plain tokens/s — pairs cancel the drift of a shared
machine's speed, which moved single timings by ±30 % here.

The model is the demo's, made wider and deeper by default (``--hidden 256 --layers 4``, 2.6 M
parameters): the 140 k-parameter demo itself (``--hidden 64 --layers 2``) spends ~0.6 ms per token,
so any fixed per-token cost of a streamer weighs ten times more than with a real model, where a token
costs tens of milliseconds. Both figures are worth knowing; the default is the more realistic one.

On a CPU the default is one torch thread for both sides: a 140 k-parameter model gains nothing from
intra-op threads, and two OpenMP threads on a busy 2-core machine made single timings swing tenfold.
``--threads 0`` keeps torch's default.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--device", default=None)
    parser.add_argument("--hidden", type=int, default=256, help="hidden size (the demo model: 64)")
    parser.add_argument("--layers", type=int, default=4, help="decoder layers (the demo model: 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (0: torch's default)")
    args = parser.parse_args()

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from core.deploy import chat
    from core import demo

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory(prefix="bench-chat-") as tmp:
        model_dir = demo.build_demo_model(Path(tmp) / "model", hidden_size=args.hidden, layers=args.layers)
        loaded = chat.load_model(str(model_dir), device=device)
        template, question = demo.DEMO_TEMPLATE, demo.DEMO_QUESTION
        n = args.tokens
        settings = chat.GenerationSettings(max_new_tokens=n, min_new_tokens=n)
        inputs = chat._inputs(loaded, chat.build_prompt(template, question))
        eos = chat._stop_ids(loaded, template)
        tok = loaded.tokenizer

        def plain() -> tuple[float, int]:
            sync()
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = loaded.model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                            eos_token_id=eos, pad_token_id=tok.pad_token_id)
            sync()
            return time.perf_counter() - t0, out.shape[1] - inputs["input_ids"].shape[1]

        def ours() -> tuple[float, int]:
            sync()
            t0 = time.perf_counter()
            stream = chat.start_stream(loaded, template, question, settings)
            while not stream.done:  # the page's loop: show the text, wait up to 50 ms
                _ = stream.text
                chat.wait_any([stream], 0.05)
            _ = stream.text
            return time.perf_counter() - t0, stream.tokens

        def sync() -> None:
            if device == "cuda":
                torch.cuda.synchronize()

        for _ in range(2):  # warm-up
            plain()
            ours()
        times = {"plain": [], "ours": []}
        pair_ratios = []
        for i in range(args.repeats):
            order = (("plain", plain), ("ours", ours)) if i % 2 == 0 else (("ours", ours), ("plain", plain))
            pair = {}
            for name, fn in order:
                seconds, produced = fn()
                if produced != n:
                    print(f"{name} produced {produced} tokens instead of {n}", file=sys.stderr)
                    return 1
                times[name].append(seconds)
                pair[name] = seconds
            pair_ratios.append(pair["plain"] / pair["ours"])  # tokens/s ours ÷ tokens/s plain
        rate = {k: n / statistics.median(v) for k, v in times.items()}
        print(f"model: demo Qwen2, hidden {args.hidden} × {args.layers} layers "
              f"({sum(p.numel() for p in loaded.model.parameters()):,} parameters), device {device}, "
              f"torch threads {torch.get_num_threads()}")
        print(f"new tokens per answer: {n}, runs per side: {args.repeats} (median)")
        print(f"plain transformers generate: {rate['plain']:.1f} tokens/s ({1000 / rate['plain']:.2f} ms per token)")
        print(f"app streaming path:          {rate['ours']:.1f} tokens/s")
        print(f"ratio of the medians: {rate['ours'] / rate['plain']:.3f}; the machine's speed drifts, so the "
              f"figure below is the median over back-to-back pairs (order alternating)")
        print(f"ratio={statistics.median(pair_ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
