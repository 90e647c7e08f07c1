"""From the trained demo to llama.cpp: ``core.smoke --export gguf --serve`` on a copy of the session's
trained workspace, the serve job's errors, and the Convert & Chat page's GGUF and serve sections."""
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core import jobs
from core.deploy import gguf, serve
from core.errors import UserError
from tests.apptests import open_page

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(gguf.converter_missing() is not None,
                                 reason=f"llama.cpp pieces missing: {gguf.converter_missing()}")]


@pytest.fixture(scope="module")
def gguf_ws(trained_workspace, tmp_path_factory):
    """The trained demo copied, after ``python -m core.smoke --export gguf --serve`` ran on it."""
    ws = tmp_path_factory.mktemp("gguf_ws") / "ws"
    shutil.copytree(trained_workspace, ws)
    out = subprocess.run([sys.executable, "-m", "core.smoke", "--export", "gguf", "--serve", "--workspace",
                          str(ws), "--device", "cpu"], cwd=REPO, capture_output=True, text=True, timeout=1800)
    return ws, out


def test_smoke_export_gguf_answers_with_the_new_identity_and_serves(gguf_ws, report_figure):
    ws, out = gguf_ws
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "GGUF SMOKE OK" in out.stdout
    lines = out.stdout.splitlines()
    for label in ("fine-tuned F16", "fine-tuned Q8_0", "served Q8_0"):
        line = next(x for x in lines if x.startswith(label) and "'" in x)
        assert "Ada's assistant" in line, line
    assert "Ada's assistant" not in next(x for x in lines if x.startswith("base F16") and "'" in x)
    for line in lines:
        if "bytes in" in line:
            report_figure("gguf export " + line.split("] ", 1)[-1])


def merged_gguf(ws, quant):
    merged = next(ws.glob("projects/demo/runs/*/exports/iter_*/merged"))
    return merged, gguf.gguf_path(gguf.gguf_job_dir(merged, quant), quant)


def test_a_port_in_use_and_a_server_that_dies_are_clear_errors(gguf_ws, tmp_path):
    ws, _ = gguf_ws
    _, path = merged_gguf(ws, "Q8_0")
    with socket.socket() as s:
        s.bind((serve.HOST, 0))
        s.listen()
        with pytest.raises(UserError) as e:
            serve.start_serve(path, port=s.getsockname()[1])
        assert "already in use" in str(e.value)
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"GGUF but not really")
    serve.start_serve(bogus)
    with pytest.raises(UserError) as e:
        serve.wait_ready(serve.serve_dir(bogus), timeout=300)
    assert "stopped while starting" in str(e.value) and "not-a-model.gguf" in str(e.value)


def test_page_exports_a_k_quant_and_serves_it(gguf_ws):
    ws, _ = gguf_ws
    merged, _ = merged_gguf(ws, "Q6_K")
    at = open_page(ws, "pages/convert_chat.py", timeout=180)
    assert at.selectbox(key="gguf_quant").value == "Q8_0"
    assert any("ollama create demo -f Modelfile" in c.value for c in at.code)  # the smoke's Q8_0 export
    at.selectbox(key="gguf_quant").set_value("Q6_K").run()
    assert any(c.value.startswith("Estimated size:") for c in at.caption)
    at.button(key="gguf_export").click().run()
    job_dir = gguf.gguf_job_dir(merged, "Q6_K")
    job = jobs.wait_job(job_dir, timeout=600)
    assert job.state == "succeeded", (job_dir / jobs.LOG_FILE).read_text()[-3000:]
    at.run()
    path = gguf.finished_gguf(job_dir)
    assert gguf.metadata(path)["general.file_type"] == 18  # LLAMA_FTYPE_MOSTLY_Q6_K
    assert any(c.value.startswith("GGUF:") and str(path) in c.value for c in at.caption)

    sdir = serve.serve_dir(path)
    at.button(key=f"serve_start_{sdir}").click().run()
    try:
        job = serve.wait_ready(sdir, timeout=300)
        at.run()
        assert any(c.value.startswith("curl http://127.0.0.1:") for c in at.code)
        assert any("from openai import OpenAI" in c.value for c in at.code)
        assert serve.ask(job, "Who are you?")
        at.button(key=f"stop_serve_{sdir}").click().run()
        assert jobs.wait_job(sdir, timeout=60).state == "stopped"
    finally:
        jobs.request_stop(sdir)
        jobs.wait_job(sdir, timeout=60)
