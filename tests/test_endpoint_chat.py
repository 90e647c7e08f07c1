"""Chat with an OpenAI-compatible endpoint (SSE streaming) and with a local model folder:
core.deploy.endpoint_chat against a small local server speaking OpenAI's streaming protocol (and its
error cases), and against llama.cpp's real server as the serve job runs it (slow)."""
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core import errors
from core.deploy import chat, endpoint_chat as ec
from core.errors import UserError
from core.models import folder as model_folder
from ui.chat_sources import TYPED


class OpenAIish(BaseHTTPRequestHandler):
    """/v1: a good API; /html: answers a web page; /empty: no model; /key: wants an API key; /err: refuses
    questions; /junk: a broken stream."""
    requests: list = []
    events_sent = threading.Event()

    def log_message(self, *args):
        pass

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/v1/models":
            self._send(200, json.dumps({"object": "list", "data": [{"id": "tiny"}, {"id": "other"}]}).encode(),
                       "application/json")
        elif self.path == "/empty/v1/models":
            self._send(200, b'{"data": []}', "application/json")
        elif self.path == "/key/v1/models":
            self._send(401, b'{"error": {"message": "Incorrect API key provided"}}', "application/json")
        else:
            self._send(200, b"<html>hello</html>", "text/html")

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, body))
        if self.path.startswith("/err/"):
            self._send(400, b'{"error": {"message": "model tiny is not loaded"}}', "application/json")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if self.path.startswith("/junk/"):
            self.wfile.write(b"data: {not json\n\n")
            return
        pieces = [{"role": "assistant"}, {"reasoning_content": "hmm"}, {"content": "I am"}, {"content": " tiny."}]
        for delta in pieces:
            chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
            self.wfile.flush()
        self.wfile.write(b": a comment line\n\ndata: [DONE]\n\n")


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), OpenAIish)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_base_url_is_normalised_and_anything_else_refused():
    assert ec.base_url("127.0.0.1:8080") == "http://127.0.0.1:8080/v1"
    assert ec.base_url(" https://api.example.com/v1/ ") == "https://api.example.com/v1"
    assert ec.base_url("http://h:1/v1/chat/completions") == "http://h:1/v1"
    assert ec.base_url("http://h:1/openai/v1/models") == "http://h:1/openai/v1"
    for bad in ("", "file:///etc/passwd", "ftp://h/v1", "http://", "http://h:99999/v1", "http://u:p@h/v1",
                "http://h/v1?x=1", "http://h/v 1", "javascript:alert(1)", "http://h/v\n1"):
        with pytest.raises(UserError) as e:
            ec.base_url(bad)
        assert e.value.text == ec.E_BAD_URL, bad


def test_models_are_listed_and_a_server_that_is_not_openai_is_named(server):
    assert ec.list_models(server) == ["tiny", "other"]  # "/v1" added
    with pytest.raises(UserError) as e:
        ec.list_models(server + "/html")
    assert e.value.text == ec.E_NOT_OPENAI and "html" in e.value.details
    with pytest.raises(UserError) as e:
        ec.list_models(server + "/empty/v1")
    assert e.value.text == ec.E_NO_MODELS
    with pytest.raises(UserError) as e:
        ec.list_models(server + "/key/v1")
    assert e.value.text == ec.E_AUTH and e.value.params["code"] == 401 and "API key" in e.value.details


def test_an_unreachable_endpoint_is_a_refused_connection():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    with pytest.raises(UserError) as e:
        ec.list_models(f"http://127.0.0.1:{port}/v1")
    assert e.value.text == errors.E_REFUSED and e.value.params["host"] == f"127.0.0.1:{port}"


def test_an_answer_streams_with_its_reasoning_history_and_settings(server):
    choice = ec.endpoint_choice(server, "tiny")
    assert (choice.kind, choice.url, choice.served_model) == ("endpoint", server + "/v1", "tiny")
    settings = chat.GenerationSettings(max_new_tokens=20, temperature=0.5, top_p=0.9, seed=7)
    stream = ec.start_stream(choice, "Who are you?", settings, system="Be brief.",
                             history=[("Hi", "<think>x</think>Hello")])
    assert stream.wait(30) and stream.done and stream.error is None
    assert stream.text == "<think>hmm</think>I am tiny."
    assert chat.split_thinking(stream.text) == ("hmm", "I am tiny.")
    assert stream.streamed and stream.tokens == 3 and stream.tokens_per_s > 0
    path, body = OpenAIish.requests[-1]
    assert path == "/v1/chat/completions"
    assert body == {"model": "tiny", "stream": True, "max_tokens": 20, "temperature": 0.5, "top_p": 0.9, "seed": 7,
                    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                                 {"role": "assistant", "content": "Hello"},
                                 {"role": "user", "content": "Who are you?"}]}


def test_a_refused_question_and_a_broken_stream_are_errors_not_answers(server):
    stream = ec.start_stream(ec.endpoint_choice(server + "/err/v1", "tiny"), "Q")
    assert stream.wait(30)
    assert stream.error.text == ec.E_HTTP and stream.error.params["code"] == 400
    assert stream.error.params["message"] == "model tiny is not loaded"
    stream = ec.start_stream(ec.endpoint_choice(server + "/junk/v1", "tiny"), "Q")
    assert stream.wait(30)
    assert stream.error.text == ec.E_BAD_STREAM and stream.text == ""


def test_a_folder_is_checked_without_loading_it(demo_workspace, tmp_path):
    model = next((demo_workspace / "projects" / "demo").rglob("config.json")).parent
    choice = ec.folder_choice(f" {model} ")
    assert (choice.kind, choice.model_path, choice.params["name"]) == ("folder", str(model.resolve()), model.name)
    with pytest.raises(UserError) as e:
        ec.folder_choice(str(tmp_path))
    assert e.value.text == model_folder.M_NO_CONFIG
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
                                                      "hidden_size": 8, "num_hidden_layers": 1,
                                                      "num_attention_heads": 1, "vocab_size": 10}))
    with pytest.raises(UserError) as e:
        ec.folder_choice(str(tmp_path))  # no tokenizer, no weights
    assert e.value.text in (ec.E_FOLDER, *model_folder.MESSAGES)


def demo_model(ws):
    from core.project import ProjectStore

    return ProjectStore(ws).load("demo").model_path


def test_a_folder_is_prompted_with_its_own_chat_template(demo_workspace):
    loaded = chat.load_model(demo_model(demo_workspace))
    inputs = chat._chat_template_inputs(loaded, chat.messages_of("Who are you?", system="S"), thinking=False)
    text = loaded.tokenizer.decode(inputs["input_ids"][0])
    assert text == loaded.tokenizer.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "Who are you?"}],
        add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n")  # the demo's ChatML, not the XTuner template's text
    stream = chat.start_stream(loaded, "", "Who are you?", chat.GenerationSettings(max_new_tokens=8),
                               own_template=True)
    assert stream.wait(120) and stream.error is None and stream.tokens > 0


def test_page_puts_a_typed_endpoint_and_a_local_folder_side_by_side(demo_workspace, server, tmp_path):
    from tests.apptests import open_page

    at = open_page(demo_workspace, "pages/convert_chat.py", timeout=180)
    at.radio(key="chat_source_left").set_value("endpoint").run()
    at.selectbox(key="chat_endpoint_left").set_value(TYPED).run()  # the project serves nothing
    assert at.chat_input[0].disabled  # no model on the left yet
    at.text_input(key="chat_url_left").set_value(server + "/html").run()
    at.button(key="chat_connect_left").click().run()
    assert any(e.value.startswith("Cannot use this endpoint: ") and "not as an OpenAI-compatible API" in e.value for e in at.error)
    at.text_input(key="chat_url_left").set_value(server).run()
    at.button(key="chat_connect_left").click().run()
    assert not at.error and at.selectbox(key="chat_url_model_left").options == ["tiny", "other"]

    at.radio(key="chat_source_right").set_value("folder").run()
    at.text_input(key="chat_folder_right").set_value(str(tmp_path)).run()
    assert any(e.value.startswith("Cannot chat with this folder: ") and str(tmp_path) in e.value for e in at.error)
    at.text_input(key="chat_folder_right").set_value(demo_model(demo_workspace)).run()
    assert not at.error and not at.chat_input[0].disabled
    at.chat_input[0].set_value("Who are you?").run()
    assert not at.exception, [e.value for e in at.exception]
    turn = at.session_state["chat_turns"][-1]
    assert turn["answers"][0] == "<think>hmm</think>I am tiny." and turn["answers"][1].strip()
    assert turn["labels"] == [f"Endpoint · tiny · {server}/v1", "Folder · model"]
    assert turn["keys"][1].startswith("folder:")
    assert sum("tokens/s" in c.value for c in at.caption) == 2


@pytest.mark.slow
def test_llama_cpp_serve_job_is_an_endpoint_choice_that_streams(tmp_path):
    """The real thing: the demo model exported to GGUF F16 and served by the serve job, as the page does."""
    from core import jobs
    from core.demo import create_demo_project
    from core.deploy import gguf, serve
    from core.project import ProjectStore

    if gguf.converter_missing():
        pytest.skip(f"llama.cpp pieces missing: {gguf.converter_missing()}")
    project = create_demo_project(ProjectStore(tmp_path / "ws"))
    assert ec.served_choices(project) == []
    gguf.start_gguf_export(project.model_path, "F16", name="demo", template=project.prompt_template)
    job_dir = gguf.gguf_job_dir(project.model_path, "F16")
    assert jobs.wait_job(job_dir, timeout=600).state == "succeeded", (job_dir / jobs.LOG_FILE).read_text()[-3000:]
    path = gguf.finished_gguf(job_dir)
    serve.start_serve(path, alias="demo")
    try:
        job = serve.wait_ready(serve.serve_dir(path), timeout=300)
        [choice] = ec.served_choices(project)
        assert (choice.url, choice.served_model) == (serve.base_url(job), "demo")
        assert choice.params["name"] == "model F16"
        assert ec.list_models(choice.url) == ["demo"]
        stream = ec.start_stream(choice, "Who are you?", chat.GenerationSettings(max_new_tokens=12))
        assert stream.wait(120)
        assert stream.error is None, stream.error.details
        assert stream.streamed and stream.text and stream.tokens > 1  # piece by piece, as server-sent events
    finally:
        jobs.request_stop(serve.serve_dir(path))
        jobs.wait_job(serve.serve_dir(path), timeout=60)
