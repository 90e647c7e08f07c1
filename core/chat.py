"""Load models (cached, bounded, unloadable), format prompts with the XTuner template, stream answers.

torch / transformers are imported inside the functions: importing this module is cheap.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from core.templates import format_prompt, stop_words


@dataclass
class GenerationSettings:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: Optional[int] = 0


@dataclass
class LoadedModel:
    key: tuple
    model: object
    tokenizer: object
    device: str


class ModelCache:
    """At most ``max_models`` loaded models; the least recently used is unloaded first."""

    def __init__(self, max_models: int = 2):
        self.max_models = max_models
        self._models: "OrderedDict[tuple, LoadedModel]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model_path: str, adapter: Optional[str] = None, device: str = "cpu") -> LoadedModel:
        key = (str(Path(model_path).resolve()), str(Path(adapter).resolve()) if adapter else None, device)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        loaded = load_model(model_path, adapter, device)
        with self._lock:
            self._models[key] = loaded
            while len(self._models) > self.max_models:
                _, old = self._models.popitem(last=False)
                _free(old)
        return loaded

    def loaded(self) -> list[tuple]:
        return list(self._models)

    def unload_all(self) -> None:
        with self._lock:
            while self._models:
                _, old = self._models.popitem()
                _free(old)


def _free(loaded: LoadedModel) -> None:
    loaded.model = None
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass


def load_model(model_path: str, adapter: Optional[str] = None, device: str = "cpu") -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a Hugging Face model directory (no config.json).")
    dtype = torch.float32 if device == "cpu" else torch.float16
    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(str(path), torch_dtype=dtype, trust_remote_code=False)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.to(device)
    model.eval()
    return LoadedModel((str(path), adapter, device), model, tokenizer, device)


def build_prompt(template: str, question: str, system: str = "", history: list[tuple[str, str]] | None = None) -> str:
    return format_prompt(template, question, system=system, history=history)


def _generate_kwargs(loaded: LoadedModel, template: str, settings: GenerationSettings) -> dict:
    tok = loaded.tokenizer
    stops = [w for w in stop_words(template) if w]
    eos_ids = set()
    for w in stops:
        ids = tok.convert_tokens_to_ids(w)
        if isinstance(ids, int) and ids != tok.unk_token_id:
            eos_ids.add(ids)
    if tok.eos_token_id is not None:
        eos_ids.add(tok.eos_token_id)
    kwargs = dict(
        max_new_tokens=settings.max_new_tokens,
        eos_token_id=sorted(eos_ids) or None,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        repetition_penalty=settings.repetition_penalty,
    )
    if settings.temperature and settings.temperature > 0:
        kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p,
                      top_k=settings.top_k or None)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    return kwargs


def _inputs(loaded: LoadedModel, prompt: str):
    enc = loaded.tokenizer(prompt, return_tensors="pt", add_special_tokens=True)
    return {k: v.to(loaded.device) for k, v in enc.items()}


def _clean(text: str, template: str) -> str:
    for w in stop_words(template):
        if w and w in text:
            text = text.split(w, 1)[0]
    return text


def generate(loaded: LoadedModel, template: str, question: str, settings: GenerationSettings | None = None,
             system: str = "", history: list[tuple[str, str]] | None = None) -> str:
    """The whole answer at once (greedy by default)."""
    import torch

    settings = settings or GenerationSettings()
    if settings.seed is not None:
        torch.manual_seed(settings.seed)
    inputs = _inputs(loaded, build_prompt(template, question, system, history))
    with torch.inference_mode():
        out = loaded.model.generate(**inputs, **_generate_kwargs(loaded, template, settings))
    new = out[0][inputs["input_ids"].shape[1]:]
    return _clean(loaded.tokenizer.decode(new, skip_special_tokens=True), template).strip()


@dataclass
class Stream:
    """An answer being generated in a background thread; ``text`` grows until ``done``."""

    text: str = ""
    done: bool = False
    error: Optional[str] = None
    tokens: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: Optional[float] = None

    @property
    def tokens_per_s(self) -> Optional[float]:
        end = self.finished or time.monotonic()
        return self.tokens / (end - self.started) if self.tokens and end > self.started else None


def start_stream(loaded: LoadedModel, template: str, question: str, settings: GenerationSettings | None = None,
                 system: str = "", history: list[tuple[str, str]] | None = None) -> Stream:
    import torch
    from transformers import TextIteratorStreamer

    settings = settings or GenerationSettings()
    stream = Stream()
    streamer = TextIteratorStreamer(loaded.tokenizer, skip_prompt=True, skip_special_tokens=True)
    inputs = _inputs(loaded, build_prompt(template, question, system, history))
    kwargs = dict(**inputs, **_generate_kwargs(loaded, template, settings), streamer=streamer)

    def run() -> None:
        try:
            if settings.seed is not None:
                torch.manual_seed(settings.seed)
            with torch.inference_mode():
                loaded.model.generate(**kwargs)
        except Exception as exc:  # shown next to the answer
            stream.error = f"{type(exc).__name__}: {exc}"
            streamer.end()

    def pump() -> None:
        for piece in streamer:
            stream.tokens += 1
            stream.text = _clean(stream.text + piece, template)
        stream.text = stream.text.strip()
        stream.finished = time.monotonic()
        stream.done = True

    threading.Thread(target=run, daemon=True).start()
    threading.Thread(target=pump, daemon=True).start()
    return stream
