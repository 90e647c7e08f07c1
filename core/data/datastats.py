"""Token statistics of a dataset with the model's tokenizer — in a job, never in the page.

``python -m core.data.datastats --data FILE --model DIR --template NAME --out DIR`` tokenizes every record
the way XTuner's ``encode_fn`` does (each piece of the templated turn separately, BOS/EOS as ids) with
the ``tokenizers`` library on ``tokenizer.json`` (transformers only for models without one), and
writes ``stats.json`` plus ``lengths.u32`` (one little-endian uint32 per record), so the page can
draw the length histogram against any ``max_length`` without tokenizing again.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from array import array
from pathlib import Path
from typing import Optional

from core import jobs
from core.data.chatrender import xtuner_segments
from core.data.datasets import iter_turns
from core.fsutil import atomic_write_json, read_state
from core.models.folder import read_tokenizer_info
from core.paths import REPO_ROOT

STATS = "stats.json"
LENGTHS = "lengths.u32"
BATCH = 512


class _Encoder:
    """Text pieces → token counts with the model's tokenizer (``add_special_tokens=False``)."""

    def __init__(self, model_dir: Path, trust_remote_code: bool):
        self.fast = None
        self.slow = None
        if (model_dir / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            self.fast = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            self.fast.no_truncation()
            self.fast.no_padding()
        else:
            from transformers import AutoTokenizer

            self.slow = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)

    def count(self, texts: list[str]) -> list[int]:
        if self.fast is not None:
            return [len(e.ids) for e in self.fast.encode_batch(texts, add_special_tokens=False)]
        return [len(self.slow.encode(t, add_special_tokens=False)) for t in texts]

    def has_token(self, text: str) -> bool:
        if not text:
            return False
        if self.fast is not None:
            return self.fast.token_to_id(text) is not None
        return text in self.slow.get_vocab()


def compute(data: Path, model_dir: Path, template: str, trust_remote_code: bool = False,
            on_progress=None) -> tuple[dict, array]:
    info = read_tokenizer_info(model_dir)
    enc = _Encoder(model_dir, trust_remote_code)
    bos = info.xtuner_bos if enc.has_token(info.xtuner_bos) else ""
    eos = info.eos if enc.has_token(info.eos) else ""
    lengths, trained_lengths = array("I"), array("I")
    records = 0
    started = time.monotonic()
    batch: list[list] = []

    def flush() -> None:
        texts, owners = [], []
        for i, segs in enumerate(batch):
            for s in segs:
                if s.kind not in ("bos", "eos"):
                    texts.append(s.text)
                    owners.append((i, s.trained))
        counts = enc.count(texts)
        totals = [sum(1 for s in segs if s.kind in ("bos", "eos")) for segs in batch]
        trained = [sum(1 for s in segs if s.kind == "eos" and s.trained) for segs in batch]
        for (i, is_trained), n in zip(owners, counts):
            totals[i] += n
            if is_trained:
                trained[i] += n
        lengths.extend(totals)
        trained_lengths.extend(trained)
        batch.clear()

    for _line, turns in iter_turns(data):
        if not turns:
            continue  # XTuner drops records with nothing to train
        batch.append(xtuner_segments(turns, template, bos, eos))
        records += 1
        if len(batch) >= BATCH:
            flush()
            if on_progress:
                on_progress(records)
    if batch:
        flush()
    total = sum(lengths)
    stats = {
        "records": records,
        "tokens": total,
        "trained_tokens": sum(trained_lengths),
        "max": max(lengths, default=0),
        "mean": total / records if records else 0,
        "p50": _percentile(lengths, 50),
        "p95": _percentile(lengths, 95),
        "seconds": time.monotonic() - started,
        "tokenizer": "tokenizers (tokenizer.json)" if enc.fast is not None else "transformers AutoTokenizer",
    }
    return stats, lengths


def _percentile(values: array, q: float) -> int:
    if not values:
        return 0
    s = sorted(values)
    return s[min(len(s) - 1, int(math.ceil(q / 100 * len(s))) - 1)]


def read_lengths(out_dir: str | Path) -> array:
    a = array("I")
    p = Path(out_dir) / LENGTHS
    if p.is_file():
        a.frombytes(p.read_bytes())
        if sys.byteorder != "little":
            a.byteswap()
    return a


def truncation(lengths: array, max_length: int) -> dict:
    """What ``max_length`` does to the data: rows cut, tokens kept."""
    over = sum(1 for n in lengths if n > max_length)
    kept = sum(min(n, max_length) for n in lengths)
    return {"over": over, "share": over / len(lengths) if lengths else 0.0, "tokens_kept": kept}


def steps_per_epoch(lengths: array, max_length: int, pack: bool, batch_size: int, accumulative_counts: int,
                    num_gpus: int) -> dict:
    """Iterations (batches) and optimizer steps per epoch, as XTuner will count them (packing included)."""
    if pack:
        samples = math.ceil(truncation(lengths, max_length)["tokens_kept"] / max_length) if lengths else 0
    else:
        samples = len(lengths)
    per_iter = batch_size * max(1, num_gpus)
    iters = math.ceil(samples / per_iter) if samples else 0
    return {"samples": samples, "iterations": iters, "optimizer_steps": math.ceil(iters / max(1, accumulative_counts))}


# --- the job -------------------------------------------------------------------------------------
def start(out_dir: str | Path, data: str | Path, model_dir: str | Path, template: str,
          trust_remote_code: bool = False) -> jobs.Job:
    out_dir = Path(out_dir)
    argv = jobs.python_module_argv("core.data.datastats", "--data", str(data), "--model", str(model_dir),
                                   "--template", template, "--out", str(out_dir))
    if trust_remote_code:
        argv.append("--trust-remote-code")
    for name in (STATS, LENGTHS):
        (out_dir / name).unlink(missing_ok=True)
    return jobs.start_job(out_dir, [jobs.Step(name="count tokens", argv=argv,
                                              env={"PYTHONPATH": str(REPO_ROOT), "TOKENIZERS_PARALLELISM": "true",
                                                   "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})],
                          kind="datastats", title="Count tokens",
                          meta={"data": str(data), "model": str(model_dir), "template": template})


def result(out_dir: str | Path) -> Optional[dict]:
    """The finished statistics with the inputs they were computed from, or None."""
    data = read_state(Path(out_dir) / STATS)
    return data if isinstance(data, dict) else None


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.data.datastats")
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--template", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--trust-remote-code", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stats, lengths = compute(Path(args.data), Path(args.model), args.template, args.trust_remote_code,
                             on_progress=lambda n: print(f"{n} records", flush=True))
    stats.update(data=str(Path(args.data).resolve()), model=str(Path(args.model).resolve()), template=args.template)
    tmp = out / (LENGTHS + ".tmp")
    if sys.byteorder != "little":
        lengths.byteswap()
    tmp.write_bytes(lengths.tobytes())
    tmp.replace(out / LENGTHS)
    atomic_write_json(out / STATS, stats)
    print(f"{stats['records']} records, {stats['tokens']} tokens ({stats['trained_tokens']} trained) "
          f"in {stats['seconds']:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
