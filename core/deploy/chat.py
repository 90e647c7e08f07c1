"""Chat with models: what can be chatted with, loading (cached, bounded, unloadable), prompts in the
XTuner template, generation settings, and streaming answers from a background thread.

torch / transformers / peft are imported inside the functions: importing this module is cheap.

Streaming costs next to nothing per token: the streamer only appends token ids to a list, and the
text is decoded when someone reads it (the page, ~20 times a second). Sampling with a seed uses a
per-answer ``torch.Generator`` (a logits processor draws the token), so two answers sampled at the
same time in two threads are each reproducible — the global RNG is never touched.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from core.data.templates import format_prompt, stop_words
from core.errors import NotFound
from core.train import remote_code

E_NOT_MODEL = "{path} is not a Hugging Face model directory (no config.json)."
E_NOT_ADAPTER = "{path} is not a LoRA adapter directory (no adapter_config.json)."
MESSAGES = [E_NOT_MODEL, E_NOT_ADAPTER]

# One model load (and the first, slow ``import transformers``) at a time in this process. Streamlit
# starts a new script thread for a rerun while the old one may still be inside a load
# (runner.fastReruns), and transformers' lazy module fails ("cannot import name
# 'AutoModelForCausalLM'") when two threads import it at once; two loads of one model would also
# double its memory.
_LOAD_LOCK = threading.RLock()


@dataclass
class GenerationSettings:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k filter
    repetition_penalty: float = 1.0
    seed: Optional[int] = 0
    min_new_tokens: int = 0  # benchmarks force an exact length with it

    @property
    def sampling(self) -> bool:
        return bool(self.temperature and self.temperature > 0)


@dataclass
class LoadedModel:
    key: tuple
    model: object
    tokenizer: object
    device: str
    params: int = 0
    bytes: int = 0
    loaded_at: float = field(default_factory=time.time)


# --- what can be chatted with -------------------------------------------------------------------------
# English label templates of the chat's model choices (i18n keys): the page translates them.
LABELS = {"base": "Base · {name}", "base_of": "Base of {run} · {name}",
          "adapter": "{run} · iter {iteration} · adapter on base (not merged)",
          "merged": "{run} · iter {iteration} · merged", "full": "{run} · iter {iteration} · full",
          # core.deploy.endpoint_chat's choices
          "endpoint": "Endpoint · {model} · {url}", "served": "Served · {name} · {url}", "folder": "Folder · {name}"}


@dataclass(frozen=True)
class ModelChoice:
    key: str  # stable id for the page
    text: str  # a LABELS template
    params: dict = field(hash=False)
    model_path: str = ""
    adapter: Optional[str] = None
    kind: str = "base"  # base | merged | adapter | full | folder | endpoint (core.deploy.endpoint_chat)
    url: str = ""  # endpoint: the API's base URL
    served_model: str = ""  # endpoint: the model name it serves

    @property
    def label(self) -> str:
        """The label in English (the page shows ``t(text, **params)``)."""
        return self.text.format(**self.params)


def model_choices(project) -> list[ModelChoice]:
    """The base model(s), then every finished conversion: merged models, adapters on their base
    (not merged), full fine-tunes; newest run first."""
    from core.deploy import convert
    from core.train import runs

    choices: list[ModelChoice] = []
    seen_bases: set[str] = set()

    def add_base(path: Optional[str], text: str, **params) -> None:
        if path and path not in seen_bases and (Path(path) / "config.json").is_file():
            seen_bases.add(path)
            choices.append(ModelChoice(f"base:{path}", text, {"name": Path(path).name, **params}, path))

    add_base(project.model_path, LABELS["base"])
    for run in runs.list_runs(project):
        add_base(run.spec.get("model_path"), LABELS["base_of"], run=run.id)
    for out in convert.outputs(project):
        tag = {"run": out.run.id, "iteration": out.iteration}
        if out.kind == "adapter":
            base = out.run.spec.get("model_path") or project.model_path
            choices.append(ModelChoice(f"adapter:{out.path}", LABELS["adapter"], tag, str(base), str(out.path),
                                       "adapter"))
        else:
            choices.append(ModelChoice(f"{out.kind}:{out.path}", LABELS[out.kind], tag, str(out.path), None, out.kind))
    return choices


# --- loading and the cache -------------------------------------------------------------------------------
class ModelCache:
    """At most ``max_models`` loaded models; the least recently used is unloaded first."""

    def __init__(self, max_models: int = 2):
        self.max_models = max_models
        self._models: "OrderedDict[tuple, LoadedModel]" = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key_of(model_path: str, adapter: Optional[str] = None, device: str = "cpu") -> tuple:
        return (str(Path(model_path).resolve()), str(Path(adapter).resolve()) if adapter else None, device)

    def get(self, model_path: str, adapter: Optional[str] = None, device: str = "cpu",
            trust_remote_code: bool = False) -> LoadedModel:
        key = self.key_of(model_path, adapter, device)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        with _LOAD_LOCK:
            with self._lock:
                if key in self._models:  # loaded by another thread while this one waited
                    return self._models[key]
            loaded = load_model(model_path, adapter, device, trust_remote_code)
            loaded.key = key
            with self._lock:
                self._models[key] = loaded
                self._evict()
        return loaded

    def _evict(self) -> None:
        while len(self._models) > max(1, self.max_models):
            _, old = self._models.popitem(last=False)
            _free(old)

    def set_limit(self, max_models: int) -> None:
        with self._lock:
            self.max_models = max_models
            self._evict()

    def loaded(self) -> list[tuple]:
        return list(self._models)

    def items(self) -> list[LoadedModel]:
        with self._lock:
            return list(self._models.values())

    def unload(self, key: tuple) -> bool:
        with self._lock:
            old = self._models.pop(key, None)
        if old is not None:
            _free(old)
        return old is not None

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


def load_model(model_path: str, adapter: Optional[str] = None, device: str = "cpu",
               trust_remote_code: bool = False) -> LoadedModel:
    """Load a model (+ adapter). ``trust_remote_code`` only when the user opted in for this model."""
    with _LOAD_LOCK:
        return _load_model(model_path, adapter, device, trust_remote_code)


def _load_model(model_path: str, adapter: Optional[str], device: str, trust_remote_code: bool) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_path)
    if not (path / "config.json").is_file():
        raise NotFound(E_NOT_MODEL, path=str(path))
    if adapter and not (Path(adapter) / "adapter_config.json").is_file():
        raise NotFound(E_NOT_ADAPTER, path=str(adapter))
    remote_code.check_allowed(path, trust_remote_code)
    dtype = torch.float32 if device == "cpu" else torch.float16
    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(str(path), torch_dtype=dtype, trust_remote_code=trust_remote_code)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.to(device)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    return LoadedModel((str(path), adapter, device), model, tokenizer, device, params, size)


# --- prompts and generation ----------------------------------------------------------------------
def build_prompt(template: str, question: str, system: str = "", history: list[tuple[str, str]] | None = None,
                 thinking: bool = False) -> str:
    """The prompt; earlier answers without their reasoning (as Qwen3's chat template drops it)."""
    history = [(q, split_thinking(a)[1]) for q, a in history or []]
    return format_prompt(template, question, system=system, history=history, thinking=thinking)


def messages_of(question: str, system: str = "", history: list[tuple[str, str]] | None = None) -> list[dict]:
    """A turn as chat messages (OpenAI's shape, a chat template's input); earlier answers without reasoning."""
    out = [{"role": "system", "content": system}] if system else []
    for q, a in history or []:
        out += [{"role": "user", "content": q}, {"role": "assistant", "content": split_thinking(a)[1]}]
    return out + [{"role": "user", "content": question}]


def has_chat_template(loaded: LoadedModel) -> bool:
    return bool(getattr(loaded.tokenizer, "chat_template", None))


def _chat_template_inputs(loaded: LoadedModel, messages: list[dict], thinking: bool):
    """The prompt rendered by the tokenizer's own chat template (its BOS included by the template)."""
    text = loaded.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                                enable_thinking=thinking)
    enc = loaded.tokenizer(text, return_tensors="pt", add_special_tokens=False)
    return {k: v.to(loaded.device) for k, v in enc.items() if k != "token_type_ids"}


def split_thinking(text: str) -> tuple[str, str]:
    """(reasoning, answer) of an answer that thought first (``<think>…</think>``); ("", text) otherwise."""
    head, sep, answer = text.partition("</think>")
    if not sep:
        return "", text
    return head.replace("<think>", "").strip(), answer.strip()


def _stop_ids(loaded: LoadedModel, template: str) -> list[int]:
    tok = loaded.tokenizer
    ids = set()
    for w in _stop_words(template):
        if not w:
            continue
        i = tok.convert_tokens_to_ids(w)
        if isinstance(i, int) and i != tok.unk_token_id:
            ids.add(i)
    if tok.eos_token_id is not None:
        ids.add(tok.eos_token_id)
    if not template:  # the model's own chat template: its generation config's end tokens too
        eos = getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None)
        ids.update(i for i in (eos if isinstance(eos, list) else [eos]) if isinstance(i, int))
    return sorted(ids)


def _stop_words(template: str) -> list[str]:
    """The XTuner template's stop words; none for "" (a model prompted with its own chat template)."""
    return stop_words(template) if template else []


def _generate_kwargs(loaded: LoadedModel, template: str, settings: GenerationSettings) -> dict:
    tok = loaded.tokenizer
    kwargs = dict(
        max_new_tokens=settings.max_new_tokens,
        min_new_tokens=settings.min_new_tokens or None,
        eos_token_id=_stop_ids(loaded, template) or None,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        repetition_penalty=settings.repetition_penalty,
        do_sample=False, temperature=None, top_p=None, top_k=None,
    )
    if settings.sampling:
        import torch
        from transformers import LogitsProcessorList

        generator = torch.Generator(device=loaded.device if loaded.device != "mps" else "cpu")
        if settings.seed is not None:
            generator.manual_seed(int(settings.seed))
        else:
            generator.seed()
        kwargs["logits_processor"] = LogitsProcessorList([_Sampler(settings, generator)])
    return kwargs


class _Sampler:
    """Temperature / top-k / top-p sampling with its own generator, as a logits processor: the drawn
    token keeps its score and every other token gets -inf, so greedy decoding then picks it."""

    def __init__(self, settings: GenerationSettings, generator):
        self.s = settings
        self.generator = generator

    def __call__(self, input_ids, scores):
        import torch

        logits = scores.float() / max(self.s.temperature, 1e-5)
        if self.s.top_k and self.s.top_k > 0:
            kth = torch.topk(logits, min(self.s.top_k, logits.shape[-1])).values[..., -1, None]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.s.top_p < 1.0:
            sorted_logits, idx = torch.sort(logits, descending=True)
            cum = sorted_logits.softmax(-1).cumsum(-1)
            remove = cum - sorted_logits.softmax(-1) > self.s.top_p  # keep the token that crosses top_p
            logits = logits.masked_fill(remove.scatter(-1, idx, remove), float("-inf"))
        probs = logits.softmax(-1)
        choice = torch.multinomial(probs, 1, generator=self.generator)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter(-1, choice, scores.gather(-1, choice))


def _inputs(loaded: LoadedModel, prompt: str):
    import torch

    from core.data.template_check import bos_eos_ids

    enc = loaded.tokenizer(prompt, return_tensors="pt", add_special_tokens=True)
    # a tokenizer without model_input_names also returns token_type_ids, which generate() refuses
    enc = {k: v for k, v in enc.items() if k != "token_type_ids"}
    # XTuner put BOS before every training sample (unless Qwen's tokenizer): so does chat, when the tokenizer does not
    bos, _ = bos_eos_ids(loaded.tokenizer)
    ids = enc["input_ids"]
    if bos and bos[0] is not None and (ids.shape[1] == 0 or int(ids[0, 0]) != bos[0]):
        enc["input_ids"] = torch.cat([torch.tensor([bos], dtype=ids.dtype), ids], dim=1)
        if "attention_mask" in enc:
            enc["attention_mask"] = torch.cat([torch.ones((1, 1), dtype=enc["attention_mask"].dtype),
                                               enc["attention_mask"]], dim=1)
    return {k: v.to(loaded.device) for k, v in enc.items()}


def _clean(text: str, template: str) -> str:
    for w in _stop_words(template):
        if w and w in text:
            text = text.split(w, 1)[0]
    return text


def generate(loaded: LoadedModel, template: str, question: str, settings: GenerationSettings | None = None,
             system: str = "", history: list[tuple[str, str]] | None = None, thinking: bool = False) -> str:
    """The whole answer at once (greedy by default)."""
    import torch

    settings = settings or GenerationSettings()
    inputs = _inputs(loaded, build_prompt(template, question, system, history, thinking))
    with torch.inference_mode():
        out = loaded.model.generate(**inputs, **_generate_kwargs(loaded, template, settings))
    new = out[0][inputs["input_ids"].shape[1]:]
    return _clean(loaded.tokenizer.decode(new, skip_special_tokens=True), template).strip()


class _IdStreamer:
    """A transformers streamer that only collects the new token ids (the prompt's first put is skipped)."""

    def __init__(self, on_end):
        self.ids: list[int] = []
        self._prompt_seen = False
        self._on_end = on_end

    def put(self, value) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.ids.extend(value.reshape(-1).tolist())

    def end(self) -> None:
        self._on_end()


class AnswerStream:
    """An answer arriving in a background thread: ``text`` grows until ``done``; ``tokens`` counted so far.
    Subclasses fill ``text``, ``tokens`` and ``error``, set ``finished`` and ``done``, then ``_done_event``."""

    def __init__(self):
        self.done = False
        self._done_event = threading.Event()
        self.started = time.monotonic()
        self.finished: Optional[float] = None

    @property
    def tokens_per_s(self) -> Optional[float]:
        end = self.finished or time.monotonic()
        return self.tokens / (end - self.started) if self.tokens and end > self.started else None

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the answer is complete or ``timeout`` passes; True when complete."""
        return self._done_event.wait(timeout)


class Stream(AnswerStream):
    """An answer being generated by a local model in a background thread."""

    def __init__(self, tokenizer, template: str):
        super().__init__()
        self._tokenizer = tokenizer
        self._template = template
        self._streamer = _IdStreamer(self._finish)
        self._decoded_len = -1
        self._text = ""
        self.error: Optional[str] = None

    def _finish(self) -> None:
        if self.finished is None:
            self.finished = time.monotonic()

    @property
    def tokens(self) -> int:
        return len(self._streamer.ids)

    @property
    def text(self) -> str:
        ids = self._streamer.ids
        n = len(ids)
        if n != self._decoded_len:
            text = _clean(self._tokenizer.decode(ids[:n], skip_special_tokens=True), self._template)
            self._text, self._decoded_len = text.strip() if self.done else text, n
        return self._text

    def result(self) -> str:
        """The whole answer, once generated; RuntimeError with the generation's error."""
        self.wait()
        if self.error:
            raise RuntimeError(self.error)
        return self.text


def wait_any(streams: list[AnswerStream], timeout: float) -> None:
    """Sleep up to ``timeout``, waking as soon as an unfinished stream completes (a UI refresh loop)."""
    pending = [s for s in streams if not s.done]
    if pending:
        pending[0].wait(timeout)


def start_stream(loaded: LoadedModel, template: str, question: str, settings: GenerationSettings | None = None,
                 system: str = "", history: list[tuple[str, str]] | None = None, thinking: bool = False,
                 own_template: bool = False) -> Stream:
    """Start generating in a background thread; read ``.text`` / ``.done`` while it grows. ``own_template``:
    prompt with the tokenizer's chat template when it has one (a folder from anywhere), else ``template``."""
    if own_template and has_chat_template(loaded):
        template = ""
        inputs = _chat_template_inputs(loaded, messages_of(question, system, history), thinking)
    else:
        inputs = _inputs(loaded, build_prompt(template, question, system, history, thinking))
    return stream_generate(loaded, template, inputs, settings)


def stream_generate(loaded: LoadedModel, template: str, inputs: dict,
                    settings: GenerationSettings | None = None) -> Stream:
    """``loaded.model.generate(**inputs)`` in a background thread, its new tokens arriving in the returned
    stream (``inputs``: token ids, or the embeddings of a prompt with an image in it)."""
    import torch

    stream = Stream(loaded.tokenizer, template)
    kwargs = dict(**inputs, **_generate_kwargs(loaded, template, settings or GenerationSettings()),
                  streamer=stream._streamer)

    def run() -> None:
        try:
            with torch.inference_mode():
                loaded.model.generate(**kwargs)
        except Exception as exc:  # shown next to the answer
            stream.error = f"{type(exc).__name__}: {exc}"
        finally:
            stream._finish()
            stream.done = True
            stream._decoded_len = -1  # final text: stripped
            stream._done_event.set()

    threading.Thread(target=run, daemon=True, name="chat-generate").start()
    return stream
