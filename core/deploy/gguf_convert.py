"""``python -m core.deploy.gguf_convert MODEL_DIR OUT.gguf QUANT``: one GGUF export, inside a job step.

Runs llama.cpp's own ``convert_hf_to_gguf.py`` (extracted to ``.llama.cpp/`` by scripts/ensure_env.sh)
in this process with one addition: a BPE tokenizer whose pre-tokenizer hash llama.cpp does not know
(the demo's, any vocabulary trained locally) is named from the pre-tokenizer its ``tokenizer.json``
describes, when that is one llama.cpp implements (``pre_tokenizer_name``); otherwise the converter's
own refusal stands. F16 / BF16 / Q8_0 come from the converter; K-quants are quantized from an F16
intermediate by ``llama_cpp.llama_model_quantize``. Everything is written under ``OUT.gguf.partial``
names and renamed at the end, so a failed or stopped export leaves no GGUF behind
(``clean OUT_DIR`` removes the partial files; the supervisor runs it when the step did not succeed).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from core.deploy.gguf import (CONVERTER_DIR, DIRECT_TYPES, K_QUANTS, PARTIAL_SUFFIX, clean,
                              converter_missing)
from core.deploy.gguf_modelfile import write_modelfile

# the split regex of llama.cpp's pre-tokenizers that a tokenizer.json can spell exactly
GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
KNOWN_SPLITS = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen2",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "llama-bpe",
}


def pre_tokenizer_name(tokenizer_json: dict) -> str | None:
    """llama.cpp's name for the pre-tokenizer a tokenizer.json describes, or None when it is not one
    of those it implements: ByteLevel with its own (GPT-2) regex → ``gpt-2``; a Split on Qwen2's or
    Llama 3's regex followed by a ByteLevel without regex → ``qwen2`` / ``llama-bpe``."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    if len(parts) == 1 and parts[0].get("type") == "ByteLevel" and parts[0].get("use_regex", True) \
            and not parts[0].get("add_prefix_space", False):
        return "gpt-2"
    if len(parts) == 2 and parts[0].get("type") == "Split" and parts[1].get("type") == "ByteLevel" \
            and not parts[1].get("use_regex", True):
        return KNOWN_SPLITS.get((parts[0].get("pattern") or {}).get("Regex"))
    return None


def _load_converter():
    """Import the converter as a module (its folder and gguf-py on the path) with the pre-tokenizer fallback."""
    sys.path[:0] = [str(CONVERTER_DIR), str(CONVERTER_DIR / "gguf-py")]
    import convert_hf_to_gguf
    from conversion import base

    own = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer) -> str:
        try:
            return own(self, tokenizer)
        except NotImplementedError:
            path = Path(self.dir_model) / "tokenizer.json"
            name = pre_tokenizer_name(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None
            if name is None:
                raise
            print(f"[XTuner Studio] unknown pre-tokenizer hash; tokenizer.json describes llama.cpp's {name!r}",
                  flush=True)
            return name

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    return convert_hf_to_gguf


def convert(model_dir: Path, out: Path, outtype: str) -> None:
    """The converter on ``model_dir`` → ``out`` (f16 / bf16 / q8_0), exactly its own command line."""
    converter = _load_converter()
    sys.argv = ["convert_hf_to_gguf.py", str(model_dir), "--outfile", str(out), "--outtype", outtype]
    converter.main()


def quantize(src: Path, out: Path, quant: str) -> None:
    """llama.cpp's quantizer: ``src`` (F16 GGUF) → ``out`` as ``quant`` (a K-quant)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, K_QUANTS[quant])
    params.nthread = max(1, os.cpu_count() or 1)
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(out).encode(), params)
    if rc != 0:
        raise SystemExit(f"llama_model_quantize failed ({rc})")


def export(model_dir: Path, out: Path, quant: str, system: str = "", name: str = "model",
           template: str | None = None) -> None:
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    if quant in DIRECT_TYPES:
        convert(model_dir, partial, DIRECT_TYPES[quant])
    else:
        f16 = out.with_name(out.name + ".f16" + PARTIAL_SUFFIX)
        convert(model_dir, f16, "f16")
        print(f"[XTuner Studio] quantizing to {quant}", flush=True)
        quantize(f16, partial, quant)
        f16.unlink()
    write_modelfile(out, model_dir, system, name, template)
    os.replace(partial, out)
    print(f"[XTuner Studio] wrote {out} ({out.stat().st_size} bytes)", flush=True)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "clean":
        for f in clean(Path(argv[1])):
            print(f"[XTuner Studio] removed the partial file {f}", flush=True)
        return 0
    parser = argparse.ArgumentParser(prog="python -m core.deploy.gguf_convert")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("quant", choices=[*DIRECT_TYPES, *K_QUANTS])
    parser.add_argument("--system", default="", help="the Modelfile's SYSTEM")
    parser.add_argument("--name", default="model", help="the Ollama model name in the commands")
    parser.add_argument("--template", help="the XTuner prompt template of the TEMPLATE (default: detected)")
    args = parser.parse_args(argv)
    missing = converter_missing()
    if missing:
        print(f"[XTuner Studio] missing: {missing}")
        return 1
    export(args.model_dir, args.out, args.quant, args.system, args.name, args.template)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
