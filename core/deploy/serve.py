"""Serve a GGUF through llama.cpp's OpenAI-compatible server (``python -m llama_cpp.server``), as a job.

    <gguf job folder>/serve/    job.json job.log (the server's own log)

The server listens on 127.0.0.1 only, on a free port chosen at start (recorded in the job's meta); it
runs until stopped, outlives the app like a training run, and is stopped like any job (SIGTERM to its
process group). ``wait_ready`` tells a server that answers from one that died at start (its log shown).
"""
from __future__ import annotations

import json
import shlex
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from core import jobs
from core.errors import UserError
from core.jobs import Job, Step
from core.paths import REPO_ROOT, python_executable

HOST = "127.0.0.1"
CONTEXT = 2048
E_PORT_IN_USE = "Port {port} on {host} is already in use; choose another or leave it empty for a free one."
E_DIED = "The server stopped while starting (exit code {code}). Its log ends with:\n{log}"
E_NOT_READY = "The server did not answer within {s} s. Its log ends with:\n{log}"
E_NO_GGUF = "There is no GGUF file at {path}: export one first."
MESSAGES = [E_PORT_IN_USE, E_DIED, E_NOT_READY, E_NO_GGUF]


def serve_dir(gguf: Path) -> Path:
    return Path(gguf).parent / "serve"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def start_serve(gguf: str | Path, alias: str = "model", port: Optional[int] = None) -> Job:
    """Start the server on ``gguf`` (``alias``: the model name clients send); ``port``: None = a free one."""
    from core.deploy.gguf import check_installed

    check_installed()
    gguf = Path(gguf).resolve()
    if not gguf.is_file():
        raise UserError(E_NO_GGUF, path=str(gguf))
    if port is None:
        port = free_port()
    elif not port_free(port):
        raise UserError(E_PORT_IN_USE, port=port, host=HOST)
    step = Step(name="llama.cpp server",
                argv=[python_executable(), "-m", "llama_cpp.server", "--model", str(gguf), "--host", HOST,
                      "--port", str(port), "--model_alias", alias, "--n_ctx", str(CONTEXT)],
                cwd=str(REPO_ROOT))
    return jobs.start_job(serve_dir(gguf), [step], kind="serve", title=f"Serve {gguf.name}",
                          meta={"gguf": str(gguf), "host": HOST, "port": port, "alias": alias})


def base_url(job: Job) -> str:
    return f"http://{job.meta['host']}:{job.meta['port']}/v1"


def _log_end(job_dir: Path, chars: int = 2000) -> str:
    path = Path(job_dir) / jobs.LOG_FILE
    return path.read_text(errors="replace")[-chars:] if path.is_file() else ""


def is_ready(job: Job) -> bool:
    """Whether the server answers ``/v1/models``."""
    try:
        with urllib.request.urlopen(base_url(job) + "/models", timeout=2) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


def wait_ready(job_dir: Path, timeout: float = 120) -> Job:
    """Wait until the server answers; a server that ended, or never answered, is a UserError with its log."""
    deadline = time.monotonic() + timeout
    while True:
        job = jobs.read_job(job_dir)
        if job is not None and not job.active:
            raise UserError(E_DIED, code=job.exit_code, log=_log_end(job_dir))
        if job is not None and job.state == "running" and is_ready(job):
            return job
        if time.monotonic() > deadline:
            raise UserError(E_NOT_READY, s=int(timeout), log=_log_end(job_dir))
        time.sleep(0.3)


def ask(job: Job, question: str, max_tokens: int = 40, system: str = "") -> str:
    """One greedy chat completion through the server's OpenAI HTTP API."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    body = json.dumps({"model": job.meta["alias"], "messages": messages, "max_tokens": max_tokens,
                       "temperature": 0}).encode()
    req = urllib.request.Request(base_url(job) + "/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())["choices"][0]["message"]["content"]


def client_lines(job: Job, question: str = "Who are you?") -> tuple[str, str]:
    """The exact ``curl`` command and Python ``openai`` client code that ask this server."""
    url = base_url(job)
    body = json.dumps({"model": job.meta["alias"], "messages": [{"role": "user", "content": question}]},
                      ensure_ascii=False)
    curl = (f"curl {url}/chat/completions -H 'Content-Type: application/json' \\\n"
            f"  -d {shlex.quote(body)}")
    python = (
        "from openai import OpenAI\n\n"
        f"client = OpenAI(base_url={url!r}, api_key='none')\n"
        f"reply = client.chat.completions.create(model={job.meta['alias']!r},\n"
        f"    messages=[{{'role': 'user', 'content': {question!r}}}])\n"
        "print(reply.choices[0].message.content)"
    )
    return curl, python
