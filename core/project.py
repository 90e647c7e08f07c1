"""A fine-tuning project: the user's choices, saved atomically as JSON.

On disk::

    <workspace>/projects/<name>/project.json
    <workspace>/projects/<name>/project.json.good   the last good copy (restored when the file is damaged)
    <workspace>/projects/<name>/data/          datasets uploaded or converted
    <workspace>/projects/<name>/runs/<run-id>/ one directory per training run
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, Field, ValidationError, field_validator

from core.errors import UserError
from core.results.scoring import ExpectedAnswer
from core.fsutil import Unreadable, atomic_write_json, atomic_write_text, read_state
from core.train.hyperparams import Hyperparams, Objective, check_evaluation_inputs  # noqa: F401 - Hyperparams is part of a project

Method = Literal["qlora", "lora", "full"]

METHOD_LABELS = {
    "qlora": "QLoRA (4-bit base + LoRA adapter, GPU only)",
    "lora": "LoRA (adapter on a 16/32-bit base)",
    "full": "Full fine-tune (every weight)",
}

_NAME_RE = re.compile(r"^[\w][\w.\- ]{0,63}$")

E_NAME = ("Project name {name} is not allowed: use 1-64 letters, digits, '-', '_', '.' or spaces, starting with a "
          "letter or digit.")
E_EXISTS = "A project named {name} already exists in {root}: open it or pick another name."
E_NO_PROJECT = "No project {name} in {root}."
E_INVALID = "These project settings are not valid (see the details): {fields}."
E_DAMAGED = "This project's state file is damaged: {problem}."
E_NO_GOOD_COPY = "No good copy of {path} to restore ({why})."
MESSAGES = [E_NAME, E_EXISTS, E_NO_PROJECT, E_INVALID, E_DAMAGED, E_NO_GOOD_COPY]


class ProjectError(UserError):
    """A project could not be created, loaded or saved; the message says why and what to do."""


class VisionEvalPair(BaseModel):
    """An evaluation question about a picture: asked at each checkpoint of both stages."""

    image: str  # a path, absolute or relative to the image folder
    question: str


class VisionSetup(BaseModel):
    """Vision-language (XTuner's LLaVA) mode: the encoder and the two stages' data (the LLM is ``model_path``)."""

    encoder_path: str = ""
    pretrain_data: str = ""  # stage 1: image captions (LLaVA JSON/JSONL)
    finetune_data: str = ""  # stage 2: conversations about images
    image_folder: str = ""
    pretrain_lr: float = Field(1e-3, gt=0, lt=1)  # stage 1 (XTuner's pretrain configs); stage 2 uses hyperparams
    encoder_lora: bool = False  # stage 2: LoRA on the vision encoder too
    evaluation: list[VisionEvalPair] = Field(default_factory=list)  # at most MAX_EVALUATION_QUESTIONS

    @field_validator("evaluation")
    @classmethod
    def _eval_count(cls, v: list[VisionEvalPair]) -> list[VisionEvalPair]:
        check_evaluation_inputs([p.question for p in v])
        return v


class Project(BaseModel):
    name: str
    workspace: str
    download_cache: str
    method: Method = "qlora"
    model_path: Optional[str] = None
    prompt_template: Optional[str] = None
    trust_remote_code: bool = False  # the user opted in to run the model's own code
    dataset_path: Optional[str] = None
    objective: Objective = "sft"  # sft, or preference tuning (dpo / orpo) on preference_path
    preference_path: Optional[str] = None  # the preference pairs (XTuner's preference JSONL)
    download_sources: list[str] = Field(default_factory=lambda: ["huggingface", "modelscope", "openxlab"])
    hub_endpoints: dict[str, str] = Field(default_factory=dict)  # e.g. a Hugging Face mirror
    hyperparams: Hyperparams = Field(default_factory=Hyperparams)
    evaluation_inputs: list[str] = Field(default_factory=lambda: ["Who are you?"])
    evaluation_expected: list[ExpectedAnswer] = Field(default_factory=list)  # aligned with evaluation_inputs
    system_prompt: str = ""
    num_gpus: int = Field(1, ge=0, le=1024)
    num_nodes: int = Field(1, ge=1, le=1024)
    deepspeed: Optional[str] = None
    # this node's place when training on several nodes (XTuner's NODE_RANK / ADDR / PORT)
    node_rank: int = Field(0, ge=0)
    master_addr: str = "127.0.0.1"
    master_port: Optional[int] = Field(None, ge=1, le=65535)
    is_demo: bool = False
    vision: Optional[VisionSetup] = None  # set: the project trains a LLaVA model in two stages
    created_at: str = Field(default_factory=lambda: _now())
    updated_at: str = Field(default_factory=lambda: _now())

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        check_project_name(v)
        return v

    @field_validator("evaluation_inputs")
    @classmethod
    def _check_eval(cls, v: list[str]) -> list[str]:
        return check_evaluation_inputs(v)

    @property
    def dir(self) -> Path:
        return Path(self.workspace) / "projects" / self.name

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"


class ProjectDamaged(ProjectError):
    """``project.json`` cannot be read; ``problem`` says which file and why, ``restorable`` whether a
    last good copy exists (``ProjectStore.restore``)."""

    def __init__(self, problem: Unreadable, restorable: bool):
        super().__init__(E_DAMAGED, problem=str(problem))
        self.problem = problem
        self.restorable = restorable


GOOD_COPY = "project.json.good"


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def check_project_name(name: str) -> None:
    if not _NAME_RE.match(name or "") or name.strip() != name or ".." in name:
        raise ProjectError(E_NAME, name=repr(name))


class ProjectStore:
    """Projects of one workspace directory."""

    def __init__(self, workspace: str | os.PathLike):
        self.workspace = Path(workspace).expanduser().resolve()
        self.root = self.workspace / "projects"

    def list(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "project.json").is_file())

    def exists(self, name: str) -> bool:
        return (self.root / name / "project.json").is_file()

    def create(self, name: str, download_cache: str | None = None, **fields) -> Project:
        """Create a project directory in one step (built aside, then renamed into place)."""
        check_project_name(name)
        if self.exists(name):
            raise ProjectError(E_EXISTS, name=repr(name), root=str(self.root))
        cache = download_cache or str(self.workspace / "downloads")
        try:
            project = Project(name=name, workspace=str(self.workspace), download_cache=cache, **fields)
        except ValidationError as e:
            raise ProjectError(E_INVALID, details=str(e), fields=_fields(e)) from None
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".new-{name}.", dir=self.root))
        try:
            (tmp / "data").mkdir()
            (tmp / "runs").mkdir()
            _write(tmp, project)
            os.rename(tmp, self.root / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        Path(cache).mkdir(parents=True, exist_ok=True)
        return project

    def load(self, name: str) -> Project:
        """The project; ``ProjectDamaged`` when its file is truncated, corrupt or invalid."""
        path = self.root / name / "project.json"
        project = read_state(path, Project)
        if project is None:
            raise ProjectError(E_NO_PROJECT, name=repr(name), root=str(self.root))
        if isinstance(project, Unreadable):
            raise ProjectDamaged(project, isinstance(read_state(path.with_name(GOOD_COPY), Project), Project))
        # A workspace moved as a whole keeps working: the directory we found it in wins.
        return project.model_copy(update={"workspace": str(self.workspace)})

    def save(self, project: Project) -> Project:
        try:
            project = Project.model_validate(project.model_dump() | {"updated_at": _now()})
        except ValidationError as e:
            raise ProjectError(E_INVALID, details=str(e), fields=_fields(e)) from None
        _write(self.root / project.name, project)
        return project

    def restore(self, name: str) -> Project:
        """Put the last good copy of a damaged ``project.json`` back (the damaged file is kept
        beside it as ``project.json.damaged``)."""
        folder = self.root / name
        good = read_state(folder / GOOD_COPY, Project)
        if not isinstance(good, Project):
            raise ProjectError(E_NO_GOOD_COPY, path=str(folder / "project.json"), why=str(good or "missing"))
        if (folder / "project.json").exists():
            os.replace(folder / "project.json", folder / "project.json.damaged")
        atomic_write_text(folder / "project.json", (folder / GOOD_COPY).read_text(encoding="utf-8"))
        return self.load(name)


def _write(folder: Path, project: Project) -> None:
    """project.json and its good copy, each written atomically."""
    data = project.model_dump(mode="json")
    atomic_write_json(folder / "project.json", data)
    atomic_write_json(folder / GOOD_COPY, data)


def _fields(e: ValidationError) -> str:
    """The names of the settings a validation refused (its English reasons go in the details)."""
    return ", ".join(".".join(str(x) for x in err["loc"]) or "value" for err in e.errors())
