"""Push to a hub as a job, against a local fake of the upload API: the files arrive byte for byte, the
token is sent to the server and is nowhere on disk or on a command line."""
import shutil
import uuid
from pathlib import Path

import pytest

from core.deploy import export
from core import jobs
from fake_hub import FakeHub


@pytest.fixture
def merged(demo_workspace, tmp_path):
    folder = tmp_path / "runs" / "r1" / "exports" / "iter_10" / "merged"
    shutil.copytree(demo_workspace / "projects" / "demo" / "model", folder)
    return folder


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def assert_token_nowhere(token: str, job_dir: Path, folder: Path) -> None:
    job = jobs.read_job(job_dir)
    for step in job.steps:
        assert token not in " ".join(step.argv) and token not in str(step.env)
    for root in (job_dir, folder):
        for p in root.rglob("*"):
            if p.is_file():
                assert token.encode() not in p.read_bytes(), p


@pytest.mark.parametrize("hub", ["huggingface", "modelscope"])
def test_push_uploads_every_file_and_keeps_the_token_secret(hub, merged, tmp_path):
    token = f"tok_{uuid.uuid4().hex}"
    with FakeHub(tmp_path / "hub") as server:
        export.start_push(merged, hub, "alice/tiny-assistant", token=token, private=True, endpoint=server.url)
        job_dir = export.push_job_dir(merged, hub)
        job = jobs.wait_job(job_dir, timeout=180)
        log = (job_dir / jobs.LOG_FILE).read_text()
        assert job.state == "succeeded", log
        assert files_of(tmp_path / "hub" / "alice" / "tiny-assistant") == files_of(merged)
        assert f"Bearer {token}" in server.auth  # the token did reach the hub, in the header
        assert any("lfs-upload" in r for r in server.requests), "the weights went the LFS way"
        assert "Done:" in log
    assert_token_nowhere(token, job_dir, merged)
    assert not (merged / ".ms_upload_cache").exists(), "nothing written into the model folder"


def test_a_failed_push_is_reported_and_still_masks_the_token(merged, tmp_path):
    token = f"tok_{uuid.uuid4().hex}"
    with FakeHub(tmp_path / "hub") as server:
        export.start_push(merged, "huggingface", "alice/x", token=token, endpoint=server.url + "/nothing-here")
        job = jobs.wait_job(export.push_job_dir(merged, "huggingface"), timeout=180)
    assert job.state == "failed"
    assert "Push failed" in (export.push_job_dir(merged, "huggingface") / jobs.LOG_FILE).read_text()
    assert_token_nowhere(token, export.push_job_dir(merged, "huggingface"), merged)


def test_masked_stream_hides_the_secret():
    import io

    out = io.StringIO()
    export._Masked(out, "s3cret").write("header Authorization: Bearer s3cret!")
    assert out.getvalue() == "header Authorization: Bearer ***!"


def test_token_lookup_prefers_the_environment(monkeypatch):
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "MODELSCOPE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    assert export.find_token("huggingface", {}) == (None, None, None)
    assert export.find_token("huggingface", {"HF_TOKEN": "from-secrets"}) == ("from-secrets", "secrets", "HF_TOKEN")
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "from-env")
    assert export.find_token("huggingface", {"HF_TOKEN": "s"}) == ("from-env", "environment", "HUGGING_FACE_HUB_TOKEN")
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", "ms")
    assert export.find_token("modelscope")[0] == "ms"


@pytest.mark.parametrize("kw,msg", [
    (dict(repo_id="no-slash"), "owner/name"),
    (dict(repo_id="a/b; rm -rf /"), "owner/name"),
    (dict(token=""), "No Hugging Face token"),
    (dict(hub="gitee"), "Unknown hub"),
])
def test_bad_pushes_are_refused_before_anything_starts(merged, kw, msg):
    args = dict(hub="huggingface", repo_id="alice/x", token="t") | kw
    with pytest.raises(export.ExportError, match=msg):
        export.start_push(merged, **args)
    assert not export.push_job_dir(merged, "huggingface").exists()


def test_a_folder_without_a_model_is_refused(tmp_path):
    with pytest.raises(export.ExportError, match="no model or adapter"):
        export.start_push(tmp_path, "huggingface", "alice/x", token="t")


def test_an_offline_push_says_why_not_just_the_exit_code(merged):
    from core.errors import E_REFUSED
    from core.train.launch import free_port

    token = f"tok_{uuid.uuid4().hex}"
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: what a push sees without a network
    export.start_push(merged, "huggingface", "alice/x", token=token, endpoint=closed)
    job_dir = export.push_job_dir(merged, "huggingface")
    job = jobs.wait_job(job_dir, timeout=180)
    assert job.state == "failed" and "exit code 1" in (job.reason or "")
    error = job.meta["error"]
    assert error["text"] == E_REFUSED and error["params"] == {"host": closed.removeprefix("http://")}
    assert "ConnectionError" in error["details"] or "Connection refused" in error["details"]
    assert_token_nowhere(token, job_dir, merged)
