"""The reproducibility bundle: kept at run creation, exported as one zip."""
import hashlib
import io
import json
import zipfile
from importlib import metadata

from core.project import ProjectStore
from core.results import repro
from core.train import runs


def make_run(ws, seed=7):
    store = ProjectStore(ws)
    data = ws / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n')
    model = ws / "model"
    model.mkdir()
    project = store.create("p", method="lora", prompt_template="qwen_chat", model_path=str(model),
                           dataset_path=str(data))
    project = store.save(project.model_copy(update={"hyperparams": project.hyperparams.model_copy(
        update={"seed": seed})}))
    return project, runs.new_run(project, "cpu", gpu_count=0)


def test_a_new_run_keeps_what_reproduces_it(workspace):
    project, run = make_run(workspace)
    info = json.loads((run.dir / repro.REPRO_FILE).read_text())
    assert info["argv"] == runs.train_argv(run) and info["command"].endswith(f"--work-dir {run.work_dir}")
    assert info["env"]["HF_HUB_OFFLINE"] == "1" and info["seed"] == 7
    (data,) = info["datasets"]
    assert data["sha256"] == hashlib.sha256(open(project.dataset_path, "rb").read()).hexdigest()
    assert info["app_version"] != "unknown" and info["python"]
    freeze = (run.dir / repro.FREEZE_FILE).read_text().splitlines()
    assert f"pydantic=={metadata.version('pydantic')}" in freeze


def test_the_bundle_is_one_zip_with_config_command_packages_hashes_seed_and_version(workspace):
    _, run = make_run(workspace, seed=None)
    log = run.work_dir / "20260101_000000" / "20260101_000000.log"
    log.parent.mkdir(parents=True)
    log.write_text("Runtime environment:\n    numpy_random_seed: 11\n    seed: 1234\n")  # as mmengine logs it
    z = zipfile.ZipFile(io.BytesIO(repro.bundle(run.dir)))
    names = sorted(n.split("/", 1)[1] for n in z.namelist())
    assert names == ["README.txt", "config.py", "environment.txt", "repro.json", "run.json"]
    readme = z.read(f"{run.id}/README.txt").decode()
    assert "Seed: 1234" in readme and "sha256 " in readme and runs.train_argv(run)[0] in readme
    assert z.read(f"{run.id}/config.py") == run.config_path.read_bytes()


def test_the_run_history_offers_the_bundle(workspace):
    from tests.apptests import open_page

    _, run = make_run(workspace)
    at = open_page(workspace, "pages/train.py", project="p")
    (button,) = [b for b in at.get("download_button") if b.proto.label.startswith("Reproducibility bundle")]
    assert run.id in button.proto.label
