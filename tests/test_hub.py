"""Downloads as jobs against real local hub servers (olah for Hugging Face, a ModelScope-protocol server).

The clients are the real ``huggingface_hub`` and ``modelscope`` in the download process; only the
servers are local. See tests/hubservers.py.
"""
import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest

from core.models import hub
from core import jobs
from core.machine import system
from core.models.hub import Attempt, DownloadError
from core.train.launch import free_port
from tests.hubservers import ModelScopeHub, OlahHub

def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".git" not in p.parts and ".cache" not in p.parts
            and p.name != hub.MARKER and ".modelscope" not in p.parts}


@pytest.fixture(scope="session")
def repos(demo_workspace, tmp_path_factory):
    """Source folders: the demo model, a bigger model (a 24 MB weight file) and the demo dataset."""
    root = tmp_path_factory.mktemp("repos")
    tiny = root / "tiny-chat"
    shutil.copytree(demo_workspace / "projects" / "demo" / "model", tiny)
    big = root / "big-chat"
    shutil.copytree(tiny, big)
    (big / "extra.safetensors").write_bytes(os.urandom(24 * 1024 * 1024))
    data = root / "self-intro"
    data.mkdir()
    shutil.copy(demo_workspace / "projects" / "demo" / "data" / "self_intro.jsonl", data / "train.jsonl")
    return {"tiny": tiny, "big": big, "data": data}


@pytest.fixture(scope="session")
def olah(repos, tmp_path_factory):
    server = OlahHub(tmp_path_factory.mktemp("olah"), rate=6e6, gated_paths=("studio/gated-chat",))
    server.add_repo("model", "studio/tiny-chat", repos["tiny"])
    server.add_repo("model", "studio/big-chat", repos["big"])
    server.add_repo("model", "studio/gated-chat", repos["tiny"])
    server.add_repo("dataset", "studio/self-intro", repos["data"])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def modelscope(repos, tmp_path_factory):
    server = ModelScopeHub(tmp_path_factory.mktemp("ms"), gated=("studio/private-chat",))
    server.add_repo("model", "studio/tiny-chat", repos["tiny"])
    server.add_repo("dataset", "studio/self-intro", repos["data"])
    yield server
    server.stop()


def wait(cache, kind, name, timeout=120):
    return jobs.wait_job(hub.job_dir(cache, kind, name), timeout=timeout)


@pytest.mark.slow
def test_a_model_downloads_byte_identical_from_a_local_hf_mirror(tmp_path, olah, repos):
    hub.start_download(tmp_path, "model", "tiny", [Attempt("huggingface", "studio/tiny-chat")],
                       endpoints={"huggingface": olah.url})
    job = wait(tmp_path, "model", "tiny")
    st = hub.status(tmp_path, "model", "tiny")
    assert job.state == "succeeded", (hub.job_dir(tmp_path, "model", "tiny") / "job.log").read_text()[-3000:]
    assert st.complete and digest(st.dest) == digest(repos["tiny"])
    p = st.progress
    assert p["state"] == "done" and p["bytes_done"] == p["bytes_total"] == sum(
        f.stat().st_size for f in repos["tiny"].iterdir() if f.is_file())
    assert hub.finished_downloads(tmp_path, "model") == [st.dest]


@pytest.mark.slow
def test_a_dataset_downloads_from_each_hub(tmp_path, olah, modelscope, repos):
    hub.start_download(tmp_path, "dataset", "hf-data", [Attempt("huggingface", "studio/self-intro")],
                       endpoints={"huggingface": olah.url})
    hub.start_download(tmp_path, "dataset", "ms-data", [Attempt("modelscope", "studio/self-intro")],
                       endpoints={"modelscope": modelscope.url})
    for name in ("hf-data", "ms-data"):
        assert wait(tmp_path, "dataset", name).state == "succeeded", name
        assert digest(hub.download_dir(tmp_path, "dataset", name)) == digest(repos["data"])


@pytest.mark.slow
def test_progress_cancel_removes_only_this_downloads_partial_files_and_resume_finishes(tmp_path, olah, repos):
    hub.start_download(tmp_path, "model", "tiny", [Attempt("huggingface", "studio/tiny-chat")],
                       endpoints={"huggingface": olah.url})
    assert wait(tmp_path, "model", "tiny").state == "succeeded"
    tiny_before = digest(hub.download_dir(tmp_path, "model", "tiny"))

    hub.start_download(tmp_path, "model", "big", [Attempt("huggingface", "studio/big-chat")],
                       endpoints={"huggingface": olah.url})
    seen = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        p = hub.status(tmp_path, "model", "big").progress
        if p.get("state") == "downloading" and p.get("bytes_done", 0) > 2e6 and p.get("eta_s"):
            seen = p
            break
        time.sleep(0.2)
    assert seen is not None, hub.status(tmp_path, "model", "big").progress
    assert seen["bytes_total"] > 24e6 and seen["rate_bps"] > 0 and seen["bytes_done"] < seen["bytes_total"]
    dest = hub.download_dir(tmp_path, "model", "big")
    assert list(dest.rglob("*.incomplete")), "a partial file is being written"

    assert hub.cancel_download(tmp_path, "model", "big") >= 1, "the partial file was removed"
    st = hub.status(tmp_path, "model", "big")
    assert st.job.state == "stopped" and not st.complete
    assert not list(dest.rglob("*.incomplete")) and not (dest / "extra.safetensors").exists()
    assert (dest / "config.json").exists(), "finished files are kept"
    assert digest(hub.download_dir(tmp_path, "model", "tiny")) == tiny_before, "another model is untouched"

    hub.start_download(tmp_path, "model", "big", [Attempt("huggingface", "studio/big-chat")],
                       endpoints={"huggingface": olah.url})
    assert wait(tmp_path, "model", "big").state == "succeeded"
    assert digest(dest) == digest(repos["big"])


@pytest.mark.slow
def test_each_failure_gets_its_own_clear_error(tmp_path, olah, monkeypatch):
    closed = f"http://127.0.0.1:{free_port()}"
    cases = {
        "missing": ([Attempt("huggingface", "studio/no-such-model")], {"huggingface": olah.url}, "not_found"),
        "offline": ([Attempt("huggingface", "studio/tiny-chat")], {"huggingface": closed}, "network"),
        "gated": ([Attempt("huggingface", "studio/gated-chat")], {"huggingface": olah.url}, "gated"),
    }
    for name, (attempts, endpoints, _) in cases.items():
        hub.start_download(tmp_path, "model", name, attempts, endpoints=endpoints)
    monkeypatch.setenv("XTUNER_STUDIO_DISK_RESERVE", str(10 ** 15))  # the disk "cannot hold" it
    hub.start_download(tmp_path, "model", "full", [Attempt("huggingface", "studio/tiny-chat")],
                       endpoints={"huggingface": olah.url})
    cases["full"] = (None, None, "disk_full")
    for name, (_, _, code) in cases.items():
        job = wait(tmp_path, "model", name)
        st = hub.status(tmp_path, "model", name)
        assert job.state == "failed" and st.error["code"] == code, (name, st.progress)
        assert not st.complete
    msgs = {name: hub.status(tmp_path, "model", name).error["message"] for name in cases}
    assert "was not found on huggingface" in msgs["missing"]
    assert "Cannot reach huggingface" in msgs["offline"] and closed in msgs["offline"]
    assert "is gated" in msgs["gated"] and "HF_TOKEN" in msgs["gated"]
    assert "Not enough disk space" in msgs["full"]


@pytest.mark.slow
def test_the_users_source_order_is_followed_and_falls_back(tmp_path, olah, modelscope, repos):
    hub.start_download(tmp_path, "model", "tiny", [Attempt("huggingface", "studio/not-on-hf"),
                                                   Attempt("modelscope", "studio/tiny-chat")],
                       endpoints={"huggingface": olah.url, "modelscope": modelscope.url})
    assert wait(tmp_path, "model", "tiny").state == "succeeded"
    st = hub.status(tmp_path, "model", "tiny")
    assert st.progress["source"] == "modelscope" and digest(st.dest) == digest(repos["tiny"])
    assert [a["code"] for a in st.progress["attempts"]] == ["not_found"]


@pytest.mark.slow
def test_modelscope_errors(tmp_path, modelscope):
    hub.start_download(tmp_path, "model", "private", [Attempt("modelscope", "studio/private-chat")],
                       endpoints={"modelscope": modelscope.url})
    hub.start_download(tmp_path, "model", "missing", [Attempt("modelscope", "studio/none")],
                       endpoints={"modelscope": modelscope.url})
    assert wait(tmp_path, "model", "private").state == "failed"
    assert hub.status(tmp_path, "model", "private").error["code"] in ("auth", "gated")
    assert wait(tmp_path, "model", "missing").state == "failed"
    assert hub.status(tmp_path, "model", "missing").error["code"] == "not_found"


def test_free_disk_is_checked_before_starting(tmp_path):
    free = system.disk_free(tmp_path)
    with pytest.raises(DownloadError) as e:
        hub.start_download(tmp_path, "model", "huge", [Attempt("huggingface", "org/huge")], size_hint=free + 1)
    assert e.value.code == "disk_full" and "Not enough disk space" in str(e.value)
    assert not hub.job_dir(tmp_path, "model", "huge").exists()


@pytest.mark.slow
def test_openxlab_without_its_environment_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XTUNER_STUDIO_OPENXLAB_PYTHON", str(tmp_path / "missing" / "python"))
    hub.start_download(tmp_path, "model", "ox", [Attempt("openxlab", "OpenLMLab/internlm2-chat-7b")])
    assert wait(tmp_path, "model", "ox").state == "failed"
    err = hub.status(tmp_path, "model", "ox").error
    assert err["code"] == "client_missing" and "ensure_env.sh --openxlab" in err["message"]


def test_delete_removes_only_that_download(tmp_path):
    a, b = hub.download_dir(tmp_path, "model", "a"), hub.download_dir(tmp_path, "model", "b")
    for d in (a, b):
        d.mkdir(parents=True)
        (d / "w.bin").write_bytes(b"x")
    hub.delete_download(tmp_path, "model", "a")
    assert not a.exists() and (b / "w.bin").exists()
    with pytest.raises(ValueError):
        hub.download_dir(tmp_path, "model", "../b")


def test_client_errors_are_classified():
    import errno

    import requests

    disk = OSError(errno.ENOSPC, "No space left on device")
    try:
        try:
            raise disk
        except OSError as inner:
            raise RuntimeError("write failed") from inner
    except RuntimeError as outer:
        assert hub.classify(outer, "huggingface", "a/b", "x").code == "disk_full"
    refused = requests.ConnectionError("Connection refused")
    assert hub.classify(refused, "modelscope", "a/b", "http://x").code == "network"
    resp = requests.Response()
    resp.status_code = 403
    assert hub.classify(requests.HTTPError("403", response=resp), "huggingface", "a/b", "x").code == "auth"
    other = hub.classify(ValueError("boom"), "huggingface", "a/b", "x")
    assert other.code == "other" and "boom" in other.details and "boom" not in str(other)  # raw words: details
