"""Chat with an OpenAI-compatible endpoint (a served model) and with any local Hugging Face model folder.

Endpoint: a base URL (``http://127.0.0.1:8080/v1``; the project's running serve jobs are offered by
themselves) checked as an address — it is only ever requested, never run — its models read from
``GET {base}/models``, answers streamed from ``POST {base}/chat/completions`` with ``stream: true``
(server-sent events, ``data: {json}`` lines until ``data: [DONE]``), with the standard library only.
An ``EndpointStream`` reads like ``chat.Stream`` (``text``, ``done``, ``error``, ``tokens``), so the page
shows both the same way; its ``error`` is a ``UserError``.

Folder: any local model folder, checked by ``core.models.folder.inspect_model`` (no weights loaded);
it is prompted with its tokenizer's own chat template when it has one.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

from core import jobs
from core.deploy.chat import LABELS, AnswerStream, GenerationSettings, ModelChoice, messages_of
from core.errors import UserError, network_error

E_BAD_URL = "{url} is not an http(s) address of an OpenAI-compatible API, like http://127.0.0.1:8080/v1."
E_NOT_OPENAI = ("{url} answered, but not as an OpenAI-compatible API (GET {url}/models gave no model list): "
                "give its base URL, usually the part up to /v1.")
E_NO_MODELS = "{url} serves no model (its /models list is empty)."
E_HTTP = "{url} refused the question (HTTP {code}): {message}"
E_BAD_STREAM = "{url} sent an answer that is not an OpenAI chat stream."
E_AUTH = "{url} asks for an API key (HTTP {code}): only endpoints without a key can be used here."
E_FOLDER = "{path} cannot be chatted with: it is not a complete Hugging Face model folder."
MESSAGES = [E_BAD_URL, E_NOT_OPENAI, E_NO_MODELS, E_HTTP, E_BAD_STREAM, E_AUTH, E_FOLDER]

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 300.0  # between two chunks of an answer (a big model's first token on a CPU)


# --- the address ----------------------------------------------------------------------------------
def base_url(url: str) -> str:
    """The API's base URL from what a person typed (``host:port`` → ``http://host:port/v1``; a pasted
    ``…/chat/completions`` or ``…/models`` cut off); a UserError when it is not an http(s) address."""
    text = (url or "").strip()
    if "://" not in text and text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        raise UserError(E_BAD_URL, url=url) from None
    if (parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or parts.username
            or parts.query or parts.fragment or any(c.isspace() or ord(c) < 32 for c in text) or len(text) > 2000):
        raise UserError(E_BAD_URL, url=url)
    path = parts.path.rstrip("/")
    for tail in ("/chat/completions", "/completions", "/models"):
        path = path.removesuffix(tail)
    return urlunsplit((parts.scheme, parts.netloc, path or "/v1", "", ""))


def _error(exc: BaseException, url: str) -> UserError:
    """A failed request as the UserError a person acts on: network cause, HTTP status, or not OpenAI."""
    if isinstance(exc, urllib.error.HTTPError):
        body = exc.read().decode("utf-8", "replace")[:4000] if exc.fp else ""
        if exc.code in (401, 403):
            return UserError(E_AUTH, details=body, url=url, code=exc.code)
        try:
            message = json.loads(body)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        return UserError(E_HTTP, details=body, url=url, code=exc.code, message=str(message)[:300])
    return network_error(exc, url) or UserError(E_NOT_OPENAI, details=f"{type(exc).__name__}: {exc}", url=url)


def list_models(url: str, timeout: float = CONNECT_TIMEOUT) -> list[str]:
    """The model ids ``GET {base}/models`` lists (OpenAI's ``{"data": [{"id": …}]}``)."""
    base = base_url(url)
    try:
        with urllib.request.urlopen(base + "/models", timeout=timeout) as r:
            body = r.read(1_000_000)
    except (OSError, urllib.error.URLError) as exc:
        if isinstance(exc, urllib.error.HTTPError) and exc.code == 404:
            raise UserError(E_NOT_OPENAI, details=f"HTTP 404 for {base}/models", url=base) from None
        raise _error(exc, base) from None
    try:
        ids = [str(m["id"]) for m in json.loads(body)["data"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(E_NOT_OPENAI, details=f"{exc!r}: {body[:500]!r}", url=base) from None
    if not ids:
        raise UserError(E_NO_MODELS, url=base)
    return ids


# --- choices ---------------------------------------------------------------------------------------
def endpoint_choice(url: str, model: str, text: str = LABELS["endpoint"], **params) -> ModelChoice:
    base = base_url(url)
    return ModelChoice(f"endpoint:{base}#{model}", text, {"url": base, "model": model, **params},
                       kind="endpoint", url=base, served_model=model)


def served_choices(project) -> list[ModelChoice]:
    """The project's running llama.cpp serve jobs (on a GGUF of the base model or of an output)."""
    from core.deploy import convert, gguf, serve

    folders = [Path(project.model_path)] if project.model_path else []
    folders += [o.path for o in convert.outputs(project) if o.is_model]
    choices = []
    for folder in folders:
        for quant in gguf.QUANTS:
            sdir = serve.serve_dir(gguf.gguf_path(gguf.gguf_job_dir(folder, quant), quant))
            job = jobs.read_job(sdir)
            if job is not None and job.state == "running":
                name = f"{Path(folder).name} {quant}"
                choices.append(endpoint_choice(serve.base_url(job), job.meta.get("alias", "model"),
                                               LABELS["served"], name=name))
    return choices


def folder_choice(path: str) -> ModelChoice:
    """A local model folder to chat with, checked without loading it (its first problem as the error)."""
    from core.models.folder import inspect_model

    folder = Path(path.strip()).expanduser()
    report = inspect_model(folder)
    if report.errors:
        first = report.errors[0]
        if first.params:  # names the path or file itself
            raise UserError(first.text, **first.params)
        raise UserError(E_FOLDER, details="\n".join(n.message for n in report.errors), path=str(folder))
    folder = folder.resolve()
    return ModelChoice(f"folder:{folder}", LABELS["folder"], {"name": folder.name}, str(folder), kind="folder")


# --- streaming -------------------------------------------------------------------------------------
def request_body(model: str, messages: list[dict], settings: GenerationSettings) -> dict:
    """The chat completion request: OpenAI's own fields only (top-k and repetition penalty are not among them)."""
    body = {"model": model, "messages": messages, "stream": True, "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature}
    if settings.sampling:
        body["top_p"] = settings.top_p
        if settings.seed is not None:
            body["seed"] = int(settings.seed)
    return body


class EndpointStream(AnswerStream):
    """An answer streaming from an endpoint in a background thread; reads like ``chat.Stream``."""

    def __init__(self, url: str):
        super().__init__()
        self.url = url
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self.chunks = 0
        self.streamed = False  # the answer came as server-sent events (not all at once)
        self.error: Optional[UserError] = None

    @property
    def text(self) -> str:
        content, reasoning = "".join(self._content), "".join(self._reasoning)
        text = f"<think>{reasoning}</think>{content}" if reasoning else content
        return text.strip() if self.done else text

    @property
    def tokens(self) -> int:
        """Chunks with text (one token each from llama.cpp, vLLM, LMDeploy)."""
        return self.chunks

    def _take(self, event: dict) -> None:
        if "error" in event:
            err = event["error"]
            message = err.get("message", err) if isinstance(err, dict) else err
            raise UserError(E_HTTP, details=json.dumps(event)[:4000], url=self.url, code="200",
                            message=str(message)[:300])
        choices = event.get("choices") or []
        if choices and not isinstance(choices[0], dict):
            raise ValueError("choices[0] is not an object")
        for choice in choices[:1]:
            delta = choice.get("delta") or choice.get("message") or {}
            piece, thought = delta.get("content"), delta.get("reasoning_content")
            if thought:
                self._reasoning.append(str(thought))
            if piece:
                self._content.append(str(piece))
            if piece or thought:
                self.chunks += 1

    def _read(self, response) -> None:
        if "text/event-stream" not in (response.headers.get("Content-Type") or ""):
            self._take(json.loads(response.read(10_000_000)))  # a server that answered at once
            return
        self.streamed = True
        data: list[str] = []
        for raw in response:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif not line and data:  # an event ends with an empty line
                payload, data = "\n".join(data), []
                if payload.strip() == "[DONE]":
                    return
                self._take(json.loads(payload))
        if data and "\n".join(data).strip() != "[DONE]":
            self._take(json.loads("\n".join(data)))

    def _run(self, request) -> None:
        try:
            with urllib.request.urlopen(request, timeout=READ_TIMEOUT) as response:
                self._read(response)
        except UserError as exc:
            self.error = exc
        except (OSError, urllib.error.URLError) as exc:
            self.error = _error(exc, self.url)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.error = UserError(E_BAD_STREAM, details=f"{type(exc).__name__}: {exc}", url=self.url)
        finally:
            self.finished = time.monotonic()
            self.done = True
            self._done_event.set()


def start_stream(choice: ModelChoice, question: str, settings: GenerationSettings | None = None,
                 system: str = "", history: list[tuple[str, str]] | None = None) -> EndpointStream:
    """Ask ``choice``'s endpoint; read ``.text`` / ``.done`` while the answer grows."""
    settings = settings or GenerationSettings()
    body = request_body(choice.served_model, messages_of(question, system, history), settings)
    request = urllib.request.Request(choice.url + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
    stream = EndpointStream(choice.url)
    threading.Thread(target=stream._run, args=(request,), daemon=True, name="chat-endpoint").start()
    return stream
