"""Starting points for the Configure page.

- Per-method presets read from XTuner 0.2.0's own config files (parsed with ``core.train.config_import``,
  never executed), located in the installed package without importing it:

  - QLoRA: ``internlm/internlm2_chat_1_8b/internlm2_chat_1_8b_qlora_alpaca_e3.py`` — the config the
    seeds' tutorials copy (lr 2e-4, r 64, alpha 16, dropout 0.1, batch 1 × accumulate 16,
    max_length 2048, warmup 3 %, 3 epochs, save / evaluate every 500);
  - LoRA: ``minicpm/2b/minicpm_2b_lora_alpaca_zh_e3.py`` — XTuner's LoRA-without-quantisation config;
  - full: ``internlm/internlm2_chat_1_8b/internlm2_chat_1_8b_full_alpaca_e3.py`` (lr 2e-5).

  ``BUILTIN`` is the schema's defaults (``core.train.hyperparams``), used without xtuner; a test keeps
  them equal to XTuner's files.
- Any other XTuner config of the same method can be a starting point (``xtuner_configs``).
- The user's own presets: ``<workspace>/presets/<name>.json``.
"""
from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, Field, ValidationError

from core.train.config_import import parse_config_file
from core.fsutil import atomic_write_json, read_json
from core.errors import UserError
from core.project import Hyperparams, Method, Project
from core.train.hyperparams import MAX_EVALUATION_QUESTIONS, METHODS, defaults

PRESET_FILES: dict[str, str] = {
    "qlora": "internlm/internlm2_chat_1_8b/internlm2_chat_1_8b_qlora_alpaca_e3.py",
    "lora": "minicpm/2b/minicpm_2b_lora_alpaca_zh_e3.py",
    "full": "internlm/internlm2_chat_1_8b/internlm2_chat_1_8b_full_alpaca_e3.py",
}

BUILTIN: dict[str, Hyperparams] = {method: defaults(method) for method in METHODS}
_METHOD_IN_NAME = {"qlora": "_qlora_", "lora": "_lora_", "full": "_full_"}
_PRESET_NAME = re.compile(r"^[\w][\w.\- ]{0,63}$")


@functools.cache
def xtuner_configs_dir() -> Optional[Path]:
    """``xtuner/configs`` of the installed package (found without importing xtuner), or None."""
    spec = importlib.util.find_spec("xtuner")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "configs"
    return path if path.is_dir() else None


def preset(method: str) -> Hyperparams:
    """XTuner's own hyperparameters for ``method``, read from its config file."""
    root = xtuner_configs_dir()
    if root is not None and (root / PRESET_FILES[method]).is_file():
        imported = parse_config_file(root / PRESET_FILES[method])
        return Hyperparams.model_validate(imported.hyperparams)
    return BUILTIN[method].model_copy(deep=True)


def preset_source(method: str) -> str:
    return f"xtuner/configs/{PRESET_FILES[method]}"


@functools.cache
def xtuner_configs(method: str) -> dict[str, Path]:
    """{config name: path} of XTuner's configs for ``method`` (by file name), sorted by name."""
    root = xtuner_configs_dir()
    if root is None:
        return {}
    marker = _METHOD_IN_NAME[method]
    found = {p.stem: p for p in root.rglob("*.py") if marker in p.name and "llava" not in p.parts
             and "internvl" not in p.parts and p.name != "__init__.py"}
    return dict(sorted(found.items()))


# --- the user's presets ---------------------------------------------------------------------------
class UserPreset(BaseModel):
    """What a saved preset restores: the Configure page's choices, not the model or data."""

    method: Method
    hyperparams: Hyperparams
    evaluation_inputs: list[str] = Field(default_factory=list, max_length=MAX_EVALUATION_QUESTIONS)
    system_prompt: str = ""
    num_gpus: int = Project.model_fields["num_gpus"]  # the project's own declaration (default, bounds)
    num_nodes: int = Project.model_fields["num_nodes"]
    deepspeed: Optional[str] = Project.model_fields["deepspeed"]

    @classmethod
    def of(cls, project: Project) -> "UserPreset":
        return cls.model_validate(project.model_dump(include=set(cls.model_fields)))

    def apply(self, project: Project) -> Project:
        """The project with this preset's choices (the method stays the project's own)."""
        data = self.model_dump(exclude={"method"})
        return Project.model_validate(project.model_dump() | data)


E_NAME = "Preset name {name} is not allowed: use 1-64 letters, digits, '-', '_', '.' or spaces."
E_NOT_JSON = "{path} is not valid JSON (see the details)."
E_NO_PRESET = "No preset named {name}."
E_INVALID = "{path} is not a valid preset (see the details)."
MESSAGES = [E_NAME, E_NOT_JSON, E_NO_PRESET, E_INVALID]


class PresetError(UserError):
    pass


def presets_dir(workspace: str | Path) -> Path:
    return Path(workspace) / "presets"


def check_preset_name(name: str) -> str:
    name = (name or "").strip()
    if not _PRESET_NAME.match(name) or ".." in name:
        raise PresetError(E_NAME, name=repr(name))
    return name


def save_user_preset(workspace: str | Path, name: str, project: Project) -> Path:
    path = presets_dir(workspace) / f"{check_preset_name(name)}.json"
    atomic_write_json(path, UserPreset.of(project).model_dump(mode="json"))
    return path


def list_user_presets(workspace: str | Path) -> list[str]:
    root = presets_dir(workspace)
    return sorted(p.stem for p in root.glob("*.json")) if root.is_dir() else []


def load_user_preset(workspace: str | Path, name: str) -> UserPreset:
    path = presets_dir(workspace) / f"{check_preset_name(name)}.json"
    try:
        data = read_json(path)
    except ValueError as e:
        raise PresetError(E_NOT_JSON, details=str(e), path=str(path)) from None
    if data is None:
        raise PresetError(E_NO_PRESET, name=repr(name))
    try:
        return UserPreset.model_validate(data)
    except ValidationError as e:
        raise PresetError(E_INVALID, details=str(e), path=str(path)) from None
