"""Local hub servers for download tests — real protocols on loopback, never a mock of a client.

- ``OlahHub``: olah (a self-hosted Hugging Face mirror, PyPI) in its own venv ``.venv-hub`` (made by
  ``scripts/ensure_env.sh --dev``), serving local git repos offline. The real ``huggingface_hub``
  talks to it.
- ``ThrottleProxy``: a TCP proxy in front of it that slows the server's bytes down (so a download can
  be watched and cancelled half-way) and can answer requests for one repo the way the Hub answers a
  gated model (HTTP 403 with ``X-Error-Code: GatedRepo``).
- ``ModelScopeHub``: a small HTTP server implementing the ModelScope endpoints the real
  ``modelscope`` client uses (file list, file download with Range, repo info); PyPI has no
  ModelScope server.
"""
from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from core.train.launch import free_port

REPO = Path(__file__).resolve().parent.parent
OLAH_CLI = REPO / ".venv-hub" / "bin" / "olah-cli"


def send_json(h: BaseHTTPRequestHandler, code: int, body, head: bool = False) -> None:
    """Answer ``h``'s request with ``body`` as JSON (headers only for a HEAD request)."""
    data = json.dumps(body).encode()
    h.send_response(code)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    if not head:
        h.wfile.write(data)


def git_repo(path: Path) -> Path:
    """Make ``path`` (already holding files) a git repo with one commit on ``main``."""
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(argv, cwd=path, env=env, check=True, capture_output=True)
    return path


class ThrottleProxy:
    """Forwards 127.0.0.1:port → upstream, at most ``rate`` bytes/s from the server (all connections)."""

    def __init__(self, upstream_port: int, rate: float = 4e6, gated_paths: tuple[str, ...] = ()):
        self.upstream_port, self.rate, self.gated = upstream_port, rate, gated_paths
        self.port = free_port()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.lock = threading.Lock()
        self.next_free = time.monotonic()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.closed = True
        self.sock.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _throttle(self, n: int) -> None:
        if not self.rate:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_free)
            self.next_free = start + n / self.rate
        time.sleep(max(0.0, start - now))

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        pending = b""
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            socks = [client, upstream]
            while True:
                ready, _, _ = select.select(socks, [], [], 30)
                if not ready:
                    return
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        return
                    pending += data
                    while b"\r\n\r\n" in pending:  # GET/HEAD requests have no body
                        head, pending = pending.split(b"\r\n\r\n", 1)
                        path = head.split(b" ", 2)[1].decode("latin-1") if b" " in head else ""
                        if any(g in path for g in self.gated):
                            body = b'{"error": "Access to model is restricted. You must be authenticated."}'
                            client.sendall(b"HTTP/1.1 403 Forbidden\r\nX-Error-Code: GatedRepo\r\n"
                                           b"X-Error-Message: Access to this model is restricted\r\n"
                                           b"Content-Type: application/json\r\nConnection: close\r\n"
                                           b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                            return
                        upstream.sendall(head + b"\r\n\r\n")
                if upstream in ready:
                    data = upstream.recv(65536)
                    if not data:
                        return
                    self._throttle(len(data))
                    client.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            if upstream is not None:
                upstream.close()


class OlahHub:
    """olah serving ``<root>/mirrors/{models,datasets}/<org>/<repo>`` git repos, behind a ThrottleProxy."""

    def __init__(self, root: Path, rate: float = 4e6, gated_paths: tuple[str, ...] = ()):
        if not OLAH_CLI.exists():
            raise RuntimeError(f"{OLAH_CLI} is missing: run scripts/ensure_env.sh --dev (it builds .venv-hub).")
        self.root = root
        self.mirrors = root / "mirrors"
        self.olah_port = free_port()
        self.proxy = ThrottleProxy(self.olah_port, rate, gated_paths)
        self.url = f"http://127.0.0.1:{self.proxy.port}"
        self.proc = None

    def add_repo(self, kind: str, repo_id: str, source: Path) -> Path:
        target = self.mirrors / f"{kind}s" / repo_id
        shutil.copytree(source, target)
        return git_repo(target)

    def start(self) -> "OlahHub":
        config = self.root / "olah.toml"
        netloc = f"127.0.0.1:{self.proxy.port}"  # URLs olah hands out go through the proxy too
        config.write_text(
            "[basic]\n"
            f'host = "127.0.0.1"\nport = {self.olah_port}\n'
            f'repos-path = "{self.root / "repos"}"\nmirrors-path = ["{self.mirrors}"]\n'
            f'mirror-scheme = "http"\nmirror-netloc = "{netloc}"\nmirror-lfs-netloc = "{netloc}"\n'
            "[accessibility]\noffline = true\n", encoding="utf-8")
        self.log = open(self.root / "olah.log", "wb")
        self.proc = subprocess.Popen([str(OLAH_CLI), "-c", str(config)], cwd=self.root, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        probe = f"http://127.0.0.1:{self.olah_port}/api/models/none/none/revision/main"
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(probe, timeout=1)
                return self
            except urllib.error.HTTPError:
                return self  # it answers (401 for an unknown repo): ready
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("olah did not start: " + (self.root / "olah.log").read_text()[-2000:])

    def stop(self) -> None:
        self.proxy.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if getattr(self, "log", None):
            self.log.close()


class ModelScopeHub:
    """The ModelScope endpoints the ``modelscope`` client calls, over ``<root>/{models,datasets}/<org>/<repo>``.

    ``gated``: repo ids answered with HTTP 401 (as ModelScope answers a private repo without a token).
    """

    def __init__(self, root: Path, rate: float = 0, gated: tuple[str, ...] = ()):
        self.root, self.rate, self.gated = root, rate, gated
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub.handle(self, head=True)

            def do_GET(self):
                hub.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_repo(self, kind: str, repo_id: str, source: Path) -> Path:
        target = self.root / f"{kind}s" / repo_id
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".git"))
        return target

    def handle(self, h, head: bool = False) -> None:
        u = urlparse(h.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        parts = u.path.strip("/").split("/")
        if parts[:2] != ["api", "v1"] or len(parts) < 5 or parts[2] not in ("models", "datasets"):
            return send_json(h, 404, {"Code": 404, "Message": "Not found", "Success": False}, head)
        kind, repo_id, rest = parts[2], "/".join(parts[3:5]), parts[5:]
        if repo_id in self.gated:
            return send_json(h, 401, {"Code": 10010401, "Message": "Unauthorized: please log in", "Success": False},
                              head)
        repo = self.root / kind / repo_id
        if not repo.is_dir():
            return send_json(h, 404, {"Code": 10010205, "Message": f"{repo_id} not found", "Success": False}, head)
        if not rest:
            return send_json(h, 200, {"Code": 200, "Data": {"Name": parts[4], "Path": parts[3]}, "Success": True},
                              head)
        if rest in (["repo", "files"], ["repo", "tree"]):
            if int(q.get("PageNumber", "1")) > 1:
                return send_json(h, 200, {"Code": 200, "Data": {"Files": []}, "Success": True}, head)
            files = []
            for p in sorted(repo.rglob("*")):
                if p.is_file():
                    rel = p.relative_to(repo).as_posix()
                    files.append({"Path": rel, "Name": p.name, "Type": "blob", "Size": p.stat().st_size,
                                  "Sha256": hashlib.sha256(p.read_bytes()).hexdigest()})
            return send_json(h, 200, {"Code": 200, "Data": {"Files": files}, "Success": True}, head)
        if rest == ["repo"]:
            p = (repo / q.get("FilePath", "")).resolve()
            if repo.resolve() not in p.parents or not p.is_file():
                return send_json(h, 404, {"Code": 404, "Message": "file not found", "Success": False}, head)
            return self._send_file(h, p, head)
        return send_json(h, 404, {"Code": 404, "Message": "Not found", "Success": False}, head)

    def _send_file(self, h, p: Path, head: bool) -> None:
        size = p.stat().st_size
        start, end = 0, size - 1
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a or 0)
            end = min(int(b), size - 1) if b else size - 1
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            h.send_response(200)
        h.send_header("Content-Length", str(end - start + 1))
        h.send_header("Content-Type", "application/octet-stream")
        h.end_headers()
        if head:
            return
        with open(p, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(65536, left))
                if not chunk:
                    break
                try:
                    h.wfile.write(chunk)
                except OSError:
                    return
                left -= len(chunk)
                if self.rate:
                    time.sleep(len(chunk) / self.rate)
