"""Downloads from model hubs, as jobs: ``python -m core.models.hub download …`` run by the supervisor.

One download = one folder ``<cache>/<models|datasets>/<name>/`` and one job folder
``<cache>/.jobs/<kind>-<name>/`` (job.json, job.log, progress.json). The download process tries
the sources in the user's order with the real clients (``huggingface_hub``, ``modelscope``;
OpenXLab through its own client in a separate environment, see ``openxlab_python``), and writes
``progress.json`` twice a second: bytes done of the listed total (partial files included), rate,
ETA. Cancel (a stop request → SIGTERM) removes this download's partial files — ``*.incomplete``
under its own folder, nothing else — and keeps finished files, so starting again resumes.
A finished download holds ``.studio-download.json``.

Tokens are never passed on the command line or written anywhere: the clients read ``HF_TOKEN`` /
``MODELSCOPE_API_TOKEN`` from the app's environment, which jobs inherit.
"""
from __future__ import annotations

import argparse
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from core import jobs
from core.errors import UserError, chain, network_error
from core.machine import system
from core.fsutil import atomic_write_json, human_bytes, read_state
from core.paths import REPO_ROOT

KINDS = ("model", "dataset")
SOURCES = ("huggingface", "modelscope", "openxlab")
DEFAULT_ENDPOINTS = {"huggingface": "https://huggingface.co", "modelscope": "https://www.modelscope.cn"}
ENDPOINT_ENV = {"huggingface": "HF_ENDPOINT", "modelscope": "MODELSCOPE_ENDPOINT"}
DEFAULT_REVISION = {"huggingface": "main", "modelscope": "master"}
MARKER = ".studio-download.json"
PROGRESS = "progress.json"
PARTIAL_SUFFIXES = (".incomplete", ".parallel_tmp")
RESERVE_BYTES = 512 * 1024 * 1024  # left free on the disk after a download


def reserve_bytes() -> int:
    """Space kept free after a download (``XTUNER_STUDIO_DISK_RESERVE`` in bytes overrides it)."""
    return int(os.environ.get("XTUNER_STUDIO_DISK_RESERVE") or RESERVE_BYTES)
_NAME_RE = re.compile(r"^[A-Za-z0-9][\w.\-]{0,127}$")

# English texts (i18n keys) of the errors a user sees
E_GATED = ("{repo} on {source} is gated: accept its licence on the model's page with your account, then start the "
           "app with your token in the environment ({token_env}).")
E_AUTH = ("{source} refused {repo} (HTTP {status}): it is private or needs a token. Start the app with your token "
          "in the environment ({token_env}).")
E_NOT_FOUND = "{repo} was not found on {source} (or it is private): check the id and the source."
E_DISK_FULL = "The disk filled up while downloading {repo}: free some space, then start the download again to resume."
E_DISK = "Not enough disk space for {repo} in {folder}: {need} needed, {free} free. Free some space or choose another download folder."
E_NO_CLIENT = "The OpenXLab client is not installed (it is kept out of the app's environment): run scripts/ensure_env.sh --openxlab."
E_INCOMPLETE = "The download from {source} is incomplete (see the details)."
E_OTHER = "Downloading {repo} from {source} failed (see the details)."
E_NO_SOURCE = "None of the chosen sources has this {kind}: choose another source."
MESSAGES = [E_GATED, E_AUTH, E_NOT_FOUND, E_DISK, E_DISK_FULL, E_NO_CLIENT, E_INCOMPLETE, E_OTHER, E_NO_SOURCE]
TOKEN_ENV = {"huggingface": "HF_TOKEN", "modelscope": "MODELSCOPE_API_TOKEN", "openxlab": "OPENXLAB_AK / OPENXLAB_SK"}


class DownloadError(UserError):
    """A failure a user can act on: ``code`` (network, gated, auth, not_found, disk_full, …), an English
    message template, its parameters and the raw text behind it (``details``)."""

    def __init__(self, code: str, text: str, *, details: str = "", **params):
        super().__init__(text, details=details, **params)
        self.code = code

    def as_dict(self) -> dict:
        return {**super().as_dict(), "code": self.code}


# --- where things are --------------------------------------------------------------------------
def check_name(name: str) -> str:
    if not _NAME_RE.match(name or "") or ".." in name:
        raise ValueError(f"Download name {name!r} is not allowed: use letters, digits, '-', '_', '.'.")
    return name


def download_dir(cache: str | os.PathLike, kind: str, name: str) -> Path:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    return Path(cache).expanduser().resolve() / f"{kind}s" / check_name(name)


def job_dir(cache: str | os.PathLike, kind: str, name: str) -> Path:
    return Path(cache).expanduser().resolve() / ".jobs" / f"{kind}-{check_name(name)}"


def is_complete(dest: str | os.PathLike) -> bool:
    return (Path(dest) / MARKER).is_file()


def read_progress(jdir: str | os.PathLike) -> dict:
    data = read_state(Path(jdir) / PROGRESS)
    return data if isinstance(data, dict) else {}


# --- starting, cancelling, deleting (called by the page) -------------------------------------------
@dataclass
class Attempt:
    source: str
    repo: str

    def arg(self) -> str:
        return f"{self.source}={self.repo}"


def start_download(cache: str | os.PathLike, kind: str, name: str, attempts: list[Attempt], *,
                   title: str = "", size_hint: int = 0, endpoints: dict[str, str] | None = None,
                   revision: str | None = None, max_workers: int = 4) -> jobs.Job:
    """Start (or resume) a download job. Refuses before starting when the disk cannot hold
    ``size_hint`` bytes; the download itself checks again against the exact listing."""
    dest = download_dir(cache, kind, name)
    if not attempts:
        raise DownloadError("no_source", E_NO_SOURCE, kind=kind)
    for a in attempts:
        if a.source not in SOURCES:
            raise ValueError(f"Unknown source {a.source!r}.")
    have = _present_bytes(dest)
    free = system.disk_free(dest)
    if size_hint and size_hint - have + reserve_bytes() > free:
        raise DownloadError("disk_full", E_DISK, repo=attempts[0].repo, folder=str(dest.parent),
                            need=human_bytes(size_hint - have + reserve_bytes()), free=human_bytes(free))
    jdir = job_dir(cache, kind, name)
    argv = jobs.python_module_argv("core.models.hub", "download", "--kind", kind, "--dest", str(dest),
                                   "--progress", str(jdir / PROGRESS), "--max-workers", str(max_workers),
                                   "--size-hint", str(size_hint))
    if revision:
        argv += ["--revision", revision]
    for a in attempts:
        argv += ["--try", a.arg()]
    env = {"PYTHONPATH": str(REPO_ROOT), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "DISABLE_TELEMETRY": "1"}
    for source, url in (endpoints or {}).items():
        if source in ENDPOINT_ENV and url:
            env[ENDPOINT_ENV[source]] = url
    jdir.mkdir(parents=True, exist_ok=True)
    (jdir / PROGRESS).unlink(missing_ok=True)
    return jobs.start_job(jdir, [jobs.Step(name=f"download {name}", argv=argv, env=env)], kind="download",
                          title=title or f"Download {name}",
                          meta={"download_kind": kind, "name": name, "dest": str(dest),
                                "attempts": [a.arg() for a in attempts]})


def cancel_download(cache: str | os.PathLike, kind: str, name: str, wait_s: float = 15.0) -> int:
    """Stop the download and remove its partial files; finished files stay (a restart resumes).
    Returns the number of partial files removed."""
    jdir = job_dir(cache, kind, name)
    job = jobs.request_stop(jdir)
    if job is not None and job.active:
        try:
            jobs.wait_job(jdir, timeout=wait_s)
        except TimeoutError:
            pass
    removed_by_process = int(read_progress(jdir).get("partials_removed") or 0)
    return removed_by_process + remove_partials(download_dir(cache, kind, name))


def remove_partials(dest: str | os.PathLike) -> int:
    """Delete the partial files of the download in ``dest`` (and only there)."""
    removed = 0
    dest = Path(dest)
    if not dest.is_dir():
        return 0
    for root, _dirs, files in os.walk(dest):
        for f in files:
            if f.endswith(PARTIAL_SUFFIXES):
                try:
                    os.unlink(os.path.join(root, f))
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed


def delete_download(cache: str | os.PathLike, kind: str, name: str) -> None:
    """Remove a download's folder and its job record (refused while it runs)."""
    jdir = job_dir(cache, kind, name)
    job = jobs.read_job(jdir)
    if job is not None and job.active:
        raise RuntimeError("This download is still running: cancel it first.")
    dest = download_dir(cache, kind, name)
    root = Path(cache).expanduser().resolve()
    if root not in dest.parents:  # download_dir guarantees it; never delete outside the cache
        raise RuntimeError(f"{dest} is outside the download folder {root}.")
    shutil.rmtree(dest, ignore_errors=True)
    shutil.rmtree(jdir, ignore_errors=True)


@dataclass
class DownloadStatus:
    dest: Path
    job: Optional[jobs.Job]
    progress: dict = field(default_factory=dict)
    complete: bool = False

    @property
    def active(self) -> bool:
        return self.job is not None and self.job.active

    @property
    def error(self) -> Optional[dict]:
        return self.progress.get("error")


def status(cache: str | os.PathLike, kind: str, name: str) -> DownloadStatus:
    dest = download_dir(cache, kind, name)
    jdir = job_dir(cache, kind, name)
    return DownloadStatus(dest=dest, job=jobs.read_job(jdir), progress=read_progress(jdir), complete=is_complete(dest))


def finished_downloads(cache: str | os.PathLike, kind: str) -> list[Path]:
    root = Path(cache).expanduser() / f"{kind}s"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if is_complete(p))


# --- errors -----------------------------------------------------------------------------------------
def classify(exc: BaseException, source: str, repo: str, endpoint: str) -> DownloadError:
    """The user-facing error for an exception raised by a hub client."""
    if isinstance(exc, DownloadError):
        return exc
    base = {"source": source, "repo": repo}
    for e in chain(exc):
        name = type(e).__name__
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return DownloadError("disk_full", E_DISK_FULL, repo=repo)
        if name == "GatedRepoError":
            return DownloadError("gated", E_GATED, token_env=TOKEN_ENV[source], **base)
        if name in ("RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError", "NotExistError"):
            return DownloadError("not_found", E_NOT_FOUND, **base)
        if name in ("AuthenticationError", "PermissionDeniedError"):
            return DownloadError("auth", E_AUTH, status=getattr(e, "status_code", None) or 401,
                                 token_env=TOKEN_ENV[source], **base)
        net = network_error(e, endpoint)
        if net is not None:  # "Cannot reach huggingface (https://…): its name cannot be resolved …"
            return DownloadError("network", net.text, details=net.details, host=f"{source} ({endpoint})")
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            return DownloadError("auth", E_AUTH, status=status, token_env=TOKEN_ENV[source], **base)
        if status == 404:
            return DownloadError("not_found", E_NOT_FOUND, **base)
    return DownloadError("other", E_OTHER, details=f"{type(exc).__name__}: {exc}"[:4000], **base)


# --- the download process ---------------------------------------------------------------------------
@dataclass
class RemoteFile:
    path: str
    size: int


def _present_bytes(dest: Path, files: Optional[list[RemoteFile]] = None) -> int:
    """Bytes of this download already on disk: its finished files (the listed ones, or every file when
    there is no listing yet) plus its partial files."""
    if not dest.is_dir():
        return 0
    total = 0
    listed = None if files is None else {f.path: f.size for f in files}
    for root, _dirs, names in os.walk(dest):
        for n in names:
            full = os.path.join(root, n)
            if n.endswith(PARTIAL_SUFFIXES):
                total += _size(full)
            elif listed is None:
                rel = os.path.relpath(full, dest)
                if not rel.startswith(".cache") and n != MARKER:
                    total += _size(full)
    for path, size in (listed or {}).items():
        total += min(size, _size(str(dest / path)))
    return total


def _size(p: str) -> int:
    try:
        return os.stat(p).st_size
    except OSError:
        return 0


def list_files(source: str, repo: str, kind: str, revision: str, endpoint: str) -> list[RemoteFile]:
    if source == "huggingface":
        from huggingface_hub import HfApi

        tree = HfApi(endpoint=endpoint).list_repo_tree(repo, recursive=True, revision=revision, repo_type=kind)
        return [RemoteFile(f.path, int(f.size or 0)) for f in tree if hasattr(f, "size") and f.size is not None
                and type(f).__name__ == "RepoFile"]
    if source == "modelscope":
        from modelscope_hub.api import HubApi

        files = HubApi(endpoint=endpoint).list_repo_files(repo, kind, revision=revision, recursive=True)
        return [RemoteFile(f.path, int(f.size or 0)) for f in files if (f.type or "blob") != "tree"]
    raise ValueError(source)


def fetch(source: str, repo: str, kind: str, revision: str, endpoint: str, dest: Path, cache_root: Path,
          max_workers: int) -> None:
    if source == "huggingface":
        from huggingface_hub import snapshot_download

        snapshot_download(repo, repo_type=kind, revision=revision, local_dir=str(dest), endpoint=endpoint,
                          max_workers=max_workers)
    elif source == "modelscope":
        from modelscope.hub.snapshot_download import dataset_snapshot_download, snapshot_download

        fn = snapshot_download if kind == "model" else dataset_snapshot_download
        fn(repo, revision=revision, local_dir=str(dest), cache_dir=str(cache_root / ".modelscope"),
           max_workers=max_workers, endpoint=endpoint)
    else:
        raise ValueError(source)


class Progress:
    """Writes progress.json: bytes on disk against the listed total, rate and ETA over ~5 s."""

    def __init__(self, path: Path, dest: Path):
        self.path, self.dest = path, dest
        self.data: dict = {"state": "starting", "attempts": [], "dest": str(dest)}
        self.files: Optional[list[RemoteFile]] = None
        self.samples: list[tuple[float, int]] = []
        self.lock = threading.RLock()
        self.frozen = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def set(self, **kw) -> None:
        with self.lock:
            self.data.update(kw)
            self._write()

    def _write(self) -> None:
        if not self.frozen:
            self.data["updated_at"] = time.time()
            atomic_write_json(self.path, self.data)

    def measure(self) -> None:
        done = _present_bytes(self.dest, self.files)
        now = time.monotonic()
        self.samples = [s for s in self.samples if now - s[0] <= 5.0] + [(now, done)]
        t0, b0 = self.samples[0]
        rate = (done - b0) / (now - t0) if now > t0 else 0.0
        total = self.data.get("bytes_total") or 0
        eta = (total - done) / rate if rate > 0 and total > done else None
        with self.lock:
            self.data.update(bytes_done=done, rate_bps=rate, eta_s=eta)
            self._write()

    def watch(self, files: Optional[list[RemoteFile]]) -> None:
        """Measure in the background; ``files`` None: no listing (count every file of the folder)."""
        self.files = files
        self.samples = []
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.measure()
            except OSError:
                pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None


def _verify(dest: Path, files: list[RemoteFile]) -> list[str]:
    bad = []
    for f in files:
        p = dest / f.path
        if not p.is_file():
            bad.append(f"{f.path} is missing")
        elif f.size and p.stat().st_size != f.size:
            bad.append(f"{f.path} has {p.stat().st_size} bytes, expected {f.size}")
    return bad


def openxlab_python() -> Optional[Path]:
    """The interpreter of the separate OpenXLab environment (its client pins old requests/urllib3)."""
    env = os.environ.get("XTUNER_STUDIO_OPENXLAB_PYTHON")
    p = Path(env) if env else REPO_ROOT / ".venv-openxlab" / "bin" / "python"
    return p if p.exists() else None


_OPENXLAB_CODE = (
    "import sys\n"
    "from openxlab.model import download\n"
    "files = download(model_repo=sys.argv[1], output=sys.argv[2], cache=False)\n"
    "sys.exit(0 if files else 3)\n"
)


def _fetch_openxlab(repo: str, kind: str, dest: Path) -> None:
    py = openxlab_python()
    if py is None:
        raise DownloadError("client_missing", E_NO_CLIENT)
    if kind != "model":
        raise DownloadError("not_found", E_NOT_FOUND, source="openxlab", repo=repo)
    dest.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([str(py), "-c", _OPENXLAB_CODE, repo, str(dest)], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True)
    sys.stdout.write(out.stdout[-4000:])
    if out.returncode != 0:
        detail = (out.stdout + out.stderr).strip()[-4000:] or f"exit code {out.returncode}"
        raise DownloadError("other", E_OTHER, source="openxlab", repo=repo, details=detail)


def _attempt(p: Progress, source: str, repo: str, kind: str, dest: Path, cache_root: Path, revision: Optional[str],
             max_workers: int, size_hint: int) -> None:
    endpoint = os.environ.get(ENDPOINT_ENV.get(source, ""), "") or DEFAULT_ENDPOINTS.get(source, "")
    rev = revision or DEFAULT_REVISION.get(source, "main")
    p.set(state="listing", source=source, repo=repo, bytes_done=0, bytes_total=None, files_total=None,
          rate_bps=0.0, eta_s=None)
    print(f"[studio] {source}: listing {repo} ({endpoint or 'default endpoint'}, revision {rev})", flush=True)
    if source == "openxlab":  # no listing: progress against the catalog's size
        p.set(state="downloading", bytes_total=size_hint or None)
        p.watch(None)
        _fetch_openxlab(repo, kind, dest)
        files = sum(1 for f in dest.rglob("*") if f.is_file())
        atomic_write_json(dest / MARKER, {"source": source, "repo": repo, "files": files,
                                          "bytes": _present_bytes(dest), "finished_at": time.time()})
        return
    files = list_files(source, repo, kind, rev, endpoint)
    total = sum(f.size for f in files)
    have = _present_bytes(dest, files)
    free = system.disk_free(dest)
    if total - have + reserve_bytes() > free:
        raise DownloadError("disk_full", E_DISK, repo=repo, folder=str(dest.parent),
                            need=human_bytes(total - have + reserve_bytes()), free=human_bytes(free))
    print(f"[studio] {len(files)} files, {human_bytes(total)} ({human_bytes(have)} already here)", flush=True)
    dest.mkdir(parents=True, exist_ok=True)
    p.set(state="downloading", bytes_total=total, files_total=len(files), bytes_done=have)
    p.watch(files)
    fetch(source, repo, kind, rev, endpoint, dest, cache_root, max_workers)
    p.set(state="verifying")
    bad = _verify(dest, files)
    if bad:
        raise DownloadError("incomplete", E_INCOMPLETE, source=source, details="\n".join(bad[:20]))
    atomic_write_json(dest / MARKER, {"source": source, "repo": repo, "revision": rev, "endpoint": endpoint,
                                      "files": len(files), "bytes": total, "finished_at": time.time()})


def run_download(args) -> int:
    dest = Path(args.dest).resolve()
    cache_root = dest.parent.parent
    p = Progress(Path(args.progress), dest)

    def on_term(_sig, _frame):
        p.frozen = False
        n = remove_partials(dest)
        with p.lock:
            p.data.update(state="cancelled", partials_removed=n)
            p._write()
            p.frozen = True
        print(f"[studio] cancelled: removed {n} partial file(s); finished files kept", flush=True)
        os._exit(143)

    signal.signal(signal.SIGTERM, on_term)
    failures = []
    for spec in args.attempts:
        source, _, repo = spec.partition("=")
        try:
            _attempt(p, source, repo, args.kind, dest, cache_root, args.revision, args.max_workers, args.size_hint)
        except Exception as exc:  # every client error becomes a message a user can act on
            endpoint = os.environ.get(ENDPOINT_ENV.get(source, ""), "") or DEFAULT_ENDPOINTS.get(source, "")
            err = classify(exc, source, repo, endpoint)
            failures.append({"source": source, "repo": repo, **err.as_dict()})
            print(f"[studio] {source}: {err}", flush=True)
            p.set(attempts=failures)
            if err.code == "disk_full":
                break
            continue
        p.stop()
        p.measure()
        p.set(state="done", attempts=failures, eta_s=0)
        print(f"[studio] done: {dest}", flush=True)
        return 0
    p.stop()
    p.set(state="failed", attempts=failures, error=failures[-1] if failures else None)
    return 2


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.models.hub", description="Download a model or dataset from a hub")
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("download")
    d.add_argument("--kind", choices=KINDS, required=True)
    d.add_argument("--dest", required=True)
    d.add_argument("--progress", required=True)
    d.add_argument("--try", dest="attempts", action="append", required=True, metavar="SOURCE=OWNER/NAME")
    d.add_argument("--revision")
    d.add_argument("--max-workers", type=int, default=4)
    d.add_argument("--size-hint", type=int, default=0)
    args = parser.parse_args(argv)
    return run_download(args)


if __name__ == "__main__":
    sys.exit(main())
