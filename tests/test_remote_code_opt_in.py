"""A model that brings its own code, used without the opt-in: training and chat refuse it before transformers runs
anything, naming the file and what to do."""
import json

import pytest

from core.demo import create_demo_project
from core.project import ProjectStore
from core.train import remote_code, runs


@pytest.fixture
def remote_project(tmp_path):
    """The demo project whose model folder names its own code in config.json (auto_map), not opted in."""
    store = ProjectStore(tmp_path / "ws")
    project = create_demo_project(store)
    cfg_path = project.dir / "model" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_mine.MyForCausalLM"}
    cfg_path.write_text(json.dumps(cfg))
    (cfg_path.parent / "modeling_mine.py").write_text("raise SystemExit('must never run')\n")
    return store, project


def test_a_run_is_refused_without_the_opt_in_and_leaves_nothing_behind(remote_project):
    store, project = remote_project
    with pytest.raises(remote_code.RemoteCodeNotAllowed) as err:
        runs.new_run(project, "cpu", gpu_count=0)
    text = str(err.value)
    assert str(project.dir / "model" / "config.json") in text and "modeling_mine.MyForCausalLM" in text
    assert "I trust this model's code" in text and "Model & Data" in text
    assert runs.list_runs(project) == []
    trusted = store.save(project.model_copy(update={"trust_remote_code": True}))
    run = runs.new_run(trusted, "cpu", gpu_count=0)  # with the opt-in the run is created (not started here)
    assert "trust_remote_code=True" in run.config_path.read_text()


def test_chat_refuses_to_load_it_without_the_opt_in(remote_project):
    from core.deploy import chat

    _, project = remote_project
    with pytest.raises(remote_code.RemoteCodeNotAllowed, match="I trust this model's code"):
        chat.load_model(project.model_path, trust_remote_code=False)


def test_the_tokenizers_auto_map_counts_too(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": ["tok.MyTok", None]}}))
    with pytest.raises(remote_code.RemoteCodeNotAllowed) as err:
        remote_code.check_allowed(tmp_path, allowed=False)
    assert str(tmp_path / "tokenizer_config.json") in str(err.value) and "tok.MyTok" in str(err.value)
    remote_code.check_allowed(tmp_path, allowed=True)
    remote_code.check_allowed(None, allowed=False)  # no model chosen yet: other checks say so
