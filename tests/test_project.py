import json

import pytest

from core.project import Hyperparams, ProjectError, ProjectStore


def test_create_load_save_roundtrip(tmp_path):
    store = ProjectStore(tmp_path)
    p = store.create("my assistant", method="lora")
    assert store.list() == ["my assistant"]
    assert (p.dir / "data").is_dir() and (p.dir / "runs").is_dir()
    p2 = store.save(p.model_copy(update={"hyperparams": Hyperparams(lr=1e-3), "system_prompt": 'say "hi"\n'}))
    loaded = store.load("my assistant")
    assert loaded.hyperparams.lr == 1e-3
    assert loaded.system_prompt == 'say "hi"\n'
    assert loaded.updated_at >= p2.created_at


@pytest.mark.parametrize("bad", ["", " lead", "../escape", "a/b", ".hidden", "x" * 65, "a\nb"])
def test_bad_names_are_refused_and_nothing_is_written(tmp_path, bad):
    store = ProjectStore(tmp_path)
    with pytest.raises(ProjectError):
        store.create(bad)
    assert store.list() == []
    assert not any(p.name.startswith(".new-") for p in (tmp_path / "projects").glob("*")) if (tmp_path / "projects").exists() else True


def test_duplicate_name_is_refused(tmp_path):
    store = ProjectStore(tmp_path)
    store.create("p")
    with pytest.raises(ProjectError, match="already exists"):
        store.create("p")


def test_invalid_field_is_refused_without_a_half_written_project(tmp_path):
    store = ProjectStore(tmp_path)
    with pytest.raises(ProjectError, match="method"):
        store.create("p", method="dpo")
    assert store.list() == []


def test_corrupt_project_file_gives_a_clear_error(tmp_path):
    store = ProjectStore(tmp_path)
    p = store.create("p")
    (p.dir / "project.json").write_text(json.dumps({"name": "p", "workspace": 3}))
    with pytest.raises(ProjectError, match="project's state file is damaged: .*project.json: invalid content"):
        store.load("p")


def test_save_is_atomic_no_temp_files_left(tmp_path):
    store = ProjectStore(tmp_path)
    p = store.create("p")
    for i in range(5):
        p = store.save(p.model_copy(update={"system_prompt": str(i)}))
    assert sorted(x.name for x in p.dir.iterdir()) == ["data", "project.json", "project.json.good", "runs"]


def test_hyperparams_validation():
    with pytest.raises(ValueError):
        Hyperparams(lr=0)
    with pytest.raises(ValueError):
        Hyperparams(max_epochs=0)
