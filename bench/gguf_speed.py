"""Greedy tokens/s of a Q8_0 GGUF in llama.cpp vs the same model in plain transformers ``generate``.

    .venv/bin/python bench/gguf_speed.py [--model DIR | --hidden 64 --layers 2] [--tokens 64]
                                         [--quants F16,Q8_0,Q6_K,Q5_K_M,Q4_K_M] [--threads 2]

The model is ``--model`` (e.g. a merged demo output) or a random one of the demo's architecture and
tokenizer built in a temporary directory (``--hidden 64 --layers 2`` is the demo itself; ``--hidden
1024 --layers 10`` is a ~94 M-parameter model). Each type in ``--quants`` is exported the way the app
does (a GGUF job) and its export time and size are printed. Then one run each, same prompt, exactly
``--tokens`` new tokens greedy (end-of-text ignored on both sides): transformers ``generate`` with
``min_new_tokens = max_new_tokens`` on the CPU in float32, and llama.cpp's generator on the Q8_0 file,
both with ``--threads`` threads. The last line is ``ratio=<gguf/transformers>`` (``error=…`` if a part
is missing).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT = "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n"


def export_all(model: Path, quants: list[str]) -> dict[str, Path]:
    from core import jobs
    from core.deploy import gguf
    from core.fsutil import human_bytes

    files = {}
    for quant in quants:
        t0 = time.monotonic()
        gguf.start_gguf_export(model, quant)
        job_dir = gguf.gguf_job_dir(model, quant)
        job = jobs.wait_job(job_dir, timeout=1800)
        if job.state != "succeeded":
            print((job_dir / jobs.LOG_FILE).read_text(errors="replace")[-2000:])
            raise SystemExit(f"error=export {quant} {job.state}")
        files[quant] = gguf.finished_gguf(job_dir)
        size = files[quant].stat().st_size
        print(f"export {quant:7s} {time.monotonic() - t0:6.1f} s  {human_bytes(size):>9s} ({size} bytes; "
              f"estimated {human_bytes(gguf.estimate_bytes(model, quant))})", flush=True)
    return files


def transformers_speed(model_dir: Path, tokens: int, threads: int) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = tok(PROMPT, return_tensors="pt").input_ids
    with torch.inference_mode():
        model.generate(ids, max_new_tokens=2, min_new_tokens=2, do_sample=False)  # warm-up
        t0 = time.perf_counter()
        out = model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
        dt = time.perf_counter() - t0
    assert out.shape[1] - ids.shape[1] == tokens
    return tokens / dt


def llama_cpp_speed(path: Path, tokens: int, threads: int) -> float:
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=tokens + 64, n_threads=threads, verbose=False)
    prompt = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
    for _ in zip(range(2), llm.generate(prompt, temp=0.0)):  # warm-up
        pass
    llm.reset()
    t0 = time.perf_counter()
    n = sum(1 for _ in zip(range(tokens), llm.generate(prompt, temp=0.0)))
    dt = time.perf_counter() - t0
    assert n == tokens
    return tokens / dt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a merged / full model folder (default: a random one)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quants", default="F16,Q8_0,Q6_K,Q5_K_M,Q4_K_M")
    args = parser.parse_args()

    from core.deploy import gguf

    missing = gguf.converter_missing()
    if missing:
        print(f"error=llama.cpp missing: {missing}")
        return 1
    quants = [q for q in args.quants.split(",") if q]
    if "Q8_0" not in quants:
        quants.append("Q8_0")
    with tempfile.TemporaryDirectory(prefix="gguf-speed-") as tmp:
        model = args.model
        if model is None:
            from core.demo import build_demo_model
            from core.models.estimate import model_shape

            model = build_demo_model(Path(tmp) / "model", hidden_size=args.hidden, layers=args.layers)
            print(f"random model: hidden {args.hidden}, {args.layers} layers, "
                  f"{model_shape(model).total_params / 1e6:.1f} M parameters", flush=True)
        else:
            # the exports go beside a copy, not into the user's folder
            import shutil

            model = Path(shutil.copytree(model, Path(tmp) / "model"))
        files = export_all(model, quants)
        hf = transformers_speed(model, args.tokens, args.threads)
        print(f"transformers generate (float32): {hf:8.1f} tokens/s", flush=True)
        gg = llama_cpp_speed(files["Q8_0"], args.tokens, args.threads)
        print(f"llama.cpp Q8_0:                  {gg:8.1f} tokens/s", flush=True)
    print(f"ratio={gg / hf:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
