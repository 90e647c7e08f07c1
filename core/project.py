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

from core.fsutil import Unreadable, atomic_write_json, atomic_write_text, read_state

Method = Literal["qlora", "lora", "full"]

METHOD_LABELS = {
    "qlora": "QLoRA (4-bit base + LoRA adapter, GPU only)",
    "lora": "LoRA (adapter on a 16/32-bit base)",
    "full": "Full fine-tune (every weight)",
}

_NAME_RE = re.compile(r"^[\w][\w.\- ]{0,63}$")


class Hyperparams(BaseModel):
    """Training hyperparameters; defaults follow XTuner's own QLoRA configs (``*_qlora_alpaca_e3.py``).

    Each field's description is the one-line explanation the Configure page shows.
    """

    lr: float = Field(2e-4, gt=0, lt=1, description="Learning rate: how big each update step is. LoRA/QLoRA ~2e-4, full ~2e-5.")
    max_epochs: int = Field(3, ge=1, le=1000, description="Passes over the whole dataset.")
    max_length: int = Field(2048, ge=16, le=1_048_576, description="Longest sample in tokens; longer ones are cut.")
    pack_to_max_length: bool = Field(True, description="Pack several short samples into one max_length sequence: much faster on short data.")
    batch_size: int = Field(1, ge=1, le=1024, description="Sequences per GPU per step.")
    accumulative_counts: int = Field(16, ge=1, le=4096, description="Gradient accumulation: steps summed before one update (effective batch = batch × this × GPUs).")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Share of training during which the learning rate ramps up from ~0.")
    save_steps: int = Field(500, ge=1, description="Save a checkpoint every this many iterations (the last one is always saved).")
    save_total_limit: int = Field(2, ge=-1, description="Checkpoints kept on disk; older ones are deleted (-1: keep all).")
    evaluation_freq: int = Field(500, ge=1, description="Ask the evaluation questions every this many iterations.")
    logging_interval: int = Field(10, ge=1, description="Log loss and learning rate every this many iterations.")
    optimizer: Literal["AdamW", "SGD"] = Field("AdamW", description="AdamW is XTuner's default and the usual choice.")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty on weights; 0 is XTuner's default.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW's momentum coefficients (β1, β2).")
    max_norm: float = Field(1.0, gt=0, description="Gradient clipping: gradients are scaled down above this norm.")
    lora_r: int = Field(64, ge=1, le=1024, description="LoRA rank: adapter size. Higher learns more, costs more memory.")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling: the adapter's update is multiplied by alpha / r.")
    lora_dropout: float = Field(0.1, ge=0, lt=1, description="Dropout inside the adapter, against overfitting.")
    lora_target_modules: Optional[list[str]] = Field(None, description="Layers that get an adapter; empty: every linear layer (XTuner's default).")
    seed: Optional[int] = Field(None, description="Random seed for reproducible runs; empty: random.")
    dataloader_num_workers: int = Field(0, ge=0, le=64, description="Processes loading data in parallel; 0 loads in the training process.")


class Project(BaseModel):
    name: str
    workspace: str
    download_cache: str
    method: Method = "qlora"
    model_path: Optional[str] = None
    prompt_template: Optional[str] = None
    trust_remote_code: bool = False  # the user opted in to run the model's own code
    dataset_path: Optional[str] = None
    download_sources: list[str] = Field(default_factory=lambda: ["huggingface", "modelscope", "openxlab"])
    hub_endpoints: dict[str, str] = Field(default_factory=dict)  # e.g. a Hugging Face mirror
    hyperparams: Hyperparams = Field(default_factory=Hyperparams)
    evaluation_inputs: list[str] = Field(default_factory=lambda: ["Who are you?"])
    system_prompt: str = ""
    num_gpus: int = Field(1, ge=0, le=1024)
    num_nodes: int = Field(1, ge=1, le=1024)
    deepspeed: Optional[str] = None
    # this node's place when training on several nodes (XTuner's NODE_RANK / ADDR / PORT)
    node_rank: int = Field(0, ge=0)
    master_addr: str = "127.0.0.1"
    master_port: Optional[int] = Field(None, ge=1, le=65535)
    is_demo: bool = False
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
        if len(v) > 10:
            raise ValueError("At most 10 evaluation questions.")
        return v

    @property
    def dir(self) -> Path:
        return Path(self.workspace) / "projects" / self.name

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"


class ProjectError(ValueError):
    """A project could not be created, loaded or saved; the message says why and what to do."""


class ProjectDamaged(ProjectError):
    """``project.json`` cannot be read; ``problem`` says which file and why, ``restorable`` whether a
    last good copy exists (``ProjectStore.restore``)."""

    def __init__(self, problem: Unreadable, restorable: bool):
        super().__init__(str(problem))
        self.problem = problem
        self.restorable = restorable


GOOD_COPY = "project.json.good"


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def check_project_name(name: str) -> None:
    if not _NAME_RE.match(name or "") or name.strip() != name or ".." in name:
        raise ValueError(
            f"Project name {name!r} is not allowed: use 1-64 letters, digits, '-', '_', '.' or spaces, "
            "starting with a letter or digit."
        )


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
        try:
            check_project_name(name)
        except ValueError as e:
            raise ProjectError(str(e)) from None
        if self.exists(name):
            raise ProjectError(f"A project named {name!r} already exists in {self.root}: open it or pick another name.")
        cache = download_cache or str(self.workspace / "downloads")
        try:
            project = Project(name=name, workspace=str(self.workspace), download_cache=cache, **fields)
        except ValidationError as e:
            raise ProjectError(_validation_message(e)) from None
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
            raise ProjectError(f"No project {name!r} in {self.root}.")
        if isinstance(project, Unreadable):
            raise ProjectDamaged(project, isinstance(read_state(path.with_name(GOOD_COPY), Project), Project))
        # A workspace moved as a whole keeps working: the directory we found it in wins.
        return project.model_copy(update={"workspace": str(self.workspace)})

    def save(self, project: Project) -> Project:
        try:
            project = Project.model_validate(project.model_dump() | {"updated_at": _now()})
        except ValidationError as e:
            raise ProjectError(_validation_message(e)) from None
        _write(self.root / project.name, project)
        return project

    def restore(self, name: str) -> Project:
        """Put the last good copy of a damaged ``project.json`` back (the damaged file is kept
        beside it as ``project.json.damaged``)."""
        folder = self.root / name
        good = read_state(folder / GOOD_COPY, Project)
        if not isinstance(good, Project):
            raise ProjectError(f"No good copy of {folder / 'project.json'} to restore ({good or 'missing'}).")
        if (folder / "project.json").exists():
            os.replace(folder / "project.json", folder / "project.json.damaged")
        atomic_write_text(folder / "project.json", (folder / GOOD_COPY).read_text(encoding="utf-8"))
        return self.load(name)


def _write(folder: Path, project: Project) -> None:
    """project.json and its good copy, each written atomically."""
    data = project.model_dump(mode="json")
    atomic_write_json(folder / "project.json", data)
    atomic_write_json(folder / GOOD_COPY, data)


def _validation_message(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        where = ".".join(str(x) for x in err["loc"]) or "value"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
