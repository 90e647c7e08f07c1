"""Tokens/s of the app's streaming chat path vs a plain ``transformers`` generate loop.

    .venv/bin/python bench/chat_stream.py [--tokens 256] [--repeats 7] [--device cpu|cuda]

Both sides use the demo model (built in a temporary directory), the same prompt and exactly the same
number of new tokens (greedy, ``min_new_tokens = max_new_tokens``). "ours" is what the Convert & Chat
page does: ``core.chat.start_stream`` in a background thread while the caller reads ``.text`` every
50 ms (waking at once when the answer completes); "plain" is ``model.generate`` in the calling thread. Runs alternate and the median of each
is taken. The last line is ``ratio=<ours/plain>``.

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
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (0: torch's default)")
    args = parser.parse_args()

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from core import chat, demo

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory(prefix="bench-chat-") as tmp:
        model_dir = demo.build_demo_model(Path(tmp) / "model")
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
        for _ in range(args.repeats):
            for name, fn in (("plain", plain), ("ours", ours)):
                seconds, produced = fn()
                if produced != n:
                    print(f"{name} produced {produced} tokens instead of {n}", file=sys.stderr)
                    return 1
                times[name].append(seconds)
        rate = {k: n / statistics.median(v) for k, v in times.items()}
        print(f"model: demo Qwen2 ({sum(p.numel() for p in loaded.model.parameters()):,} parameters), device {device}, "
              f"torch threads {torch.get_num_threads()}")
        print(f"new tokens per answer: {n}, runs per side: {args.repeats} (median)")
        print(f"plain transformers generate: {rate['plain']:.1f} tokens/s")
        print(f"app streaming path:          {rate['ours']:.1f} tokens/s")
        print(f"ratio={rate['ours'] / rate['plain']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
