"""Push a converted model (merged, full fine-tune, or LoRA adapter) to the Hugging Face Hub or
ModelScope, as a job: ``python -m core.deploy.export --hub H --repo-id R --folder F [--private]``.

The token comes from the environment (``HF_TOKEN`` / ``HUGGING_FACE_HUB_TOKEN``,
``MODELSCOPE_API_TOKEN``) or from Streamlit secrets (the page reads them and passes the value). It
travels only through process environments: ``jobs.start_job(secret_env=...)`` puts it into the
supervisor's environment, from which the push step inherits it. It is never in an argv, in
``job.json`` or in ``job.log``; the push process also masks it in anything it prints.
"""
from __future__ import annotations

import argparse
import io
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from core import jobs
from core.errors import UserError, chain, network_error
from core.jobs import Job, Step
from core.paths import REPO_ROOT, python_executable


@dataclass(frozen=True)
class Hub:
    label: str
    token_vars: tuple[str, ...]  # looked up in this order, in the environment and in secrets
    endpoint_var: str
    web: str


HUBS = {
    "huggingface": Hub("Hugging Face", ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"), "HF_ENDPOINT", "https://huggingface.co"),
    "modelscope": Hub("ModelScope", ("MODELSCOPE_API_TOKEN",), "MODELSCOPE_ENDPOINT", "https://modelscope.cn/models"),
}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}/[A-Za-z0-9][\w.\-]{0,95}$")


E_REPO_ID = "Repository {repo} must look like owner/name (letters, digits, '-', '_', '.')."
E_HUB = "Unknown hub {hub}; known: {known}."
E_EMPTY = "{path} holds no model or adapter (no config.json / adapter_config.json)."
E_NO_TOKEN = "No {hub} token: set {vars} in the environment or in .streamlit/secrets.toml."
E_PUSH_FAILED = "The push to {hub} failed (see the details)."
E_PUSH_REFUSED = "{hub} refused the push to {repo} (HTTP {status}): check that the token may write there."
MESSAGES = [E_REPO_ID, E_HUB, E_EMPTY, E_NO_TOKEN, E_PUSH_FAILED, E_PUSH_REFUSED]


class ExportError(UserError):
    pass


def find_token(hub: str, secrets: Optional[Mapping] = None) -> tuple[Optional[str], Optional[str], Optional[str]]:
    """(token, "environment" or "secrets", variable name) — the environment first; (None, None, None)."""
    for var in HUBS[hub].token_vars:
        if os.environ.get(var):
            return os.environ[var], "environment", var
    for var in HUBS[hub].token_vars:
        try:
            value = secrets.get(var) if secrets is not None else None
        except Exception:  # a secrets file that cannot be parsed
            value = None
        if value:
            return str(value), "secrets", var
    return None, None, None


def check_repo_id(repo_id: str) -> str:
    repo_id = (repo_id or "").strip()
    if not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise ExportError(E_REPO_ID, repo=repr(repo_id))
    return repo_id


def push_job_dir(folder: Path, hub: str) -> Path:
    """runs/<run>/exports/iter_N/push_<hub>_<hf|merged>/"""
    return folder.parent / f"push_{hub}_{folder.name}"


def start_push(folder: str | os.PathLike, hub: str, repo_id: str, token: str, private: bool = True,
               endpoint: Optional[str] = None) -> Job:
    """Start the upload of ``folder`` as a job; ``endpoint`` overrides the hub's address (tests)."""
    if hub not in HUBS:
        raise ExportError(E_HUB, hub=repr(hub), known=", ".join(HUBS))
    folder = Path(folder)
    if not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
        raise ExportError(E_EMPTY, path=str(folder))
    if not token:
        raise ExportError(E_NO_TOKEN, hub=HUBS[hub].label, vars=" / ".join(HUBS[hub].token_vars))
    repo_id = check_repo_id(repo_id)
    env = {"HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(REPO_ROOT)}
    if endpoint:
        env[HUBS[hub].endpoint_var] = endpoint
    job_dir = push_job_dir(folder, hub)
    argv = [python_executable(), "-m", "core.deploy.export", "--hub", hub, "--repo-id", repo_id, "--folder", str(folder),
            "--state-dir", str(job_dir)]
    if private:
        argv.append("--private")
    step = Step(name=f"push to {HUBS[hub].label}", argv=argv, env=env, cwd=str(REPO_ROOT))
    return jobs.start_job(job_dir, [step], kind="push",
                          title=f"Push {folder.parent.name}/{folder.name} to {HUBS[hub].label} {repo_id}",
                          meta={"hub": hub, "repo_id": repo_id, "folder": str(folder), "private": private},
                          secret_env={HUBS[hub].token_vars[0]: token})


def push_error(exc: BaseException, hub: str, repo_id: str) -> UserError:
    """What a person should read about a failed push: the network cause, a refusal, or "see the details"."""
    endpoint = os.environ.get(HUBS[hub].endpoint_var) or HUBS[hub].web
    net = network_error(exc, endpoint)
    if net is not None:
        return net
    for e in chain(exc):
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            return UserError(E_PUSH_REFUSED, details=f"{type(e).__name__}: {e}"[:4000], hub=HUBS[hub].label,
                             repo=repo_id, status=status)
    return UserError(E_PUSH_FAILED, details=f"{type(exc).__name__}: {exc}"[:4000], hub=HUBS[hub].label)


# --- the push process ------------------------------------------------------------------------------
class _Masked(io.TextIOBase):
    """A text stream that replaces the secret with *** before writing."""

    def __init__(self, stream, secret: str):
        self._stream, self._secret = stream, secret

    def write(self, s: str) -> int:
        self._stream.write(s.replace(self._secret, "***") if self._secret else s)
        return len(s)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return False


def _push_huggingface(folder: Path, repo_id: str, token: str, private: bool, state_dir: Path) -> str:
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                             commit_message="Upload from XTuner Studio")
    return str(info.commit_url if hasattr(info, "commit_url") else info)


def _push_modelscope(folder: Path, repo_id: str, token: str, private: bool, state_dir: Path) -> str:
    from modelscope.hub.api import HubApi

    api = HubApi(token=token)
    api.create_repo(repo_id, visibility="private" if private else "public", exist_ok=True)
    # its resumable-upload record goes next to the job, per repository: by default ModelScope
    # writes it into the model folder, and a later push to another repository then skips files
    tracker = state_dir / "modelscope_upload_cache" / repo_id.replace("/", "__")
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="Upload from XTuner Studio",
                      tracker_path=str(tracker))
    return f"{api.endpoint}/models/{repo_id}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Push a model folder to a hub (token from the environment)")
    parser.add_argument("--hub", choices=sorted(HUBS), required=True)
    parser.add_argument("--repo-id", required=True)
    parser.add_argument("--folder", required=True)
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--state-dir", help="where an upload may keep its resume record (default: a temporary dir)")
    args = parser.parse_args(argv)
    token = find_token(args.hub)[0]
    if token:
        sys.stdout = _Masked(sys.stdout, token)
        sys.stderr = _Masked(sys.stderr, token)
    if not token:
        print(f"No token: set {' or '.join(HUBS[args.hub].token_vars)}.", file=sys.stderr)
        return 2
    folder = Path(args.folder)
    files = [p for p in folder.rglob("*") if p.is_file()]
    print(f"Pushing {len(files)} files ({sum(p.stat().st_size for p in files):,} bytes) from {folder} "
          f"to {HUBS[args.hub].label} {args.repo_id} ({'private' if args.private else 'public'})", flush=True)
    try:
        push = _push_huggingface if args.hub == "huggingface" else _push_modelscope
        state_dir = Path(args.state_dir) if args.state_dir else Path(tempfile.mkdtemp(prefix="xtuner-studio-push-"))
        url = push(folder, check_repo_id(args.repo_id), token, args.private, state_dir)
    except Exception as exc:
        print(f"Push failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        if args.state_dir:  # the page says why (no network, refused…), not just "exit code 1"
            err = push_error(exc, args.hub, args.repo_id)
            err.details = err.details.replace(token, "***")
            jobs.update_job(args.state_dir, lambda j: j.meta.update(error=err.as_dict()))
        return 1
    print(f"Done: {url}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
