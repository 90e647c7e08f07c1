"""Read an existing XTuner ``.py`` config as syntax (``ast``) — it is never executed or imported.

Known settings are mapped to the project's fields (hyperparameters, evaluation questions, system
prompt, method, model, dataset, prompt template); everything else is returned as source text so the
page can show what was not taken over. A value is only taken when it is a Python literal (or a name
bound to one, or ``PROMPT_TEMPLATE.x`` / ``SYSTEM_TEMPLATE.x``); anything computed is reported.
"""
from __future__ import annotations

import ast
import json
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, get_args

from pydantic import ValidationError

from core.errors import UserError
from core.project import Hyperparams, Project
from core.train.hyperparams import MAX_EVALUATION_QUESTIONS, keyword_names, top_level_names
from core.data.templates import PROMPT_TEMPLATES, template_dict

SYSTEM_TEMPLATES: dict[str, str] = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "system_templates.json").read_text(encoding="utf-8")
)  # a copy of xtuner.utils.SYSTEM_TEMPLATE (0.2.0); a test keeps them identical

# where each hyperparameter sits in an XTuner config: the schema's ``xtuner`` names
_DIRECT = top_level_names()  # top-level name -> field, the value taken as it is
_LORA_KWARGS = keyword_names("lora")  # LoraConfig keyword -> field
_RANDOMNESS = keyword_names("randomness")
_LOGGER = keyword_names("LoggerHook")
_OPTIMIZERS = set(get_args(Hyperparams.model_fields["optimizer"].annotation))
_MAX_BYTES = 1_000_000
_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow}


E_TOO_LARGE = "The file is larger than 1 MB: that is not an XTuner config."
E_SYNTAX = "Not valid Python (line {line}: {error})."
E_NOT_UTF8 = "The file is not UTF-8 text."
MESSAGES = [E_TOO_LARGE, E_SYNTAX, E_NOT_UTF8]


class ConfigImportError(UserError):
    """The file cannot be read as a Python config; the message says where."""


_OBJECTIVES = {"SupervisedFinetune": "sft", "DPO": "dpo", "ORPO": "orpo"}  # XTuner's model classes


class _NotLiteral(Exception):
    pass


@dataclass
class ImportedConfig:
    method: Optional[str] = None
    objective: Optional[str] = None  # sft, dpo or orpo: XTuner's model class
    hyperparams: dict[str, Any] = field(default_factory=dict)
    evaluation_inputs: Optional[list[str]] = None
    system_prompt: Optional[str] = None
    model_path: Optional[str] = None
    dataset_path: Optional[str] = None
    prompt_template: Optional[str] = None
    mapped: dict[str, str] = field(default_factory=dict)  # project field -> where it came from
    unmapped: dict[str, str] = field(default_factory=dict)  # name (or line) -> source text
    errors: list[str] = field(default_factory=list)

    def apply(self, project: Project, paths: bool = False) -> Project:
        """``project`` with the imported settings; model/dataset/template only when ``paths``."""
        update: dict[str, Any] = {
            "hyperparams": Hyperparams.model_validate(project.hyperparams.model_dump() | self.hyperparams)}
        if self.evaluation_inputs:
            update["evaluation_inputs"] = self.evaluation_inputs
        if self.system_prompt is not None:
            update["system_prompt"] = self.system_prompt
        if self.method:
            update["method"] = self.method
        if self.objective:
            update["objective"] = self.objective
        if paths:
            for name in ("model_path", "dataset_path", "prompt_template"):
                if getattr(self, name):
                    update[name] = getattr(self, name)
        return Project.model_validate(project.model_dump() | update)


def parse_config(text: str) -> ImportedConfig:
    """Map an XTuner config's text onto the project's fields (see the module docstring)."""
    if len(text.encode("utf-8", errors="replace")) > _MAX_BYTES:
        raise ConfigImportError(E_TOO_LARGE)
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        raise ConfigImportError(E_SYNTAX, line=e.lineno, error=e.msg) from None
    return _Reader(text, tree).read()


def parse_config_file(path: str | Path) -> ImportedConfig:
    return parse_config(Path(path).read_text(encoding="utf-8", errors="replace"))


class _Reader:
    def __init__(self, text: str, tree: ast.Module):
        self.text = text
        self.tree = tree
        self.env: dict[str, ast.expr] = {}
        self.used: set[str] = set()
        self.out = ImportedConfig()

    # -- values -------------------------------------------------------------------------------
    def value(self, node: ast.expr, depth: int = 0) -> Any:
        """The literal a node stands for, following names bound at top level."""
        if depth > 20:
            raise _NotLiteral
        if isinstance(node, ast.Name):
            if node.id in self.env:
                self.used.add(node.id)
                return self.value(self.env[node.id], depth + 1)
            raise _NotLiteral
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" \
                and not node.args and all(kw.arg for kw in node.keywords):
            return {kw.arg: self.value(kw.value, depth + 1) for kw in node.keywords}
        if isinstance(node, (ast.BinOp, ast.Call)):
            return self.arithmetic(node, depth)
        try:
            return ast.literal_eval(node)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise _NotLiteral from None

    def arithmetic(self, node: ast.expr, depth: int) -> Any:
        """Numbers combined with + - * / // ** (small powers) and int()/float(), e.g.
        ``int(2048 - (336 / 14) ** 2)`` in XTuner's LLaVA configs — computed here, never executed."""
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("int", "float") \
                and len(node.args) == 1 and not node.keywords:
            inner = self.value(node.args[0], depth + 1)
            if isinstance(inner, (int, float)) and not isinstance(inner, bool):
                return int(inner) if node.func.id == "int" else float(inner)
            raise _NotLiteral
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            a, b = self.value(node.left, depth + 1), self.value(node.right, depth + 1)
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e12 for v in (a, b)):
                raise _NotLiteral
            if isinstance(node.op, ast.Pow) and abs(b) > 8:
                raise _NotLiteral
            try:
                return _ARITH[type(node.op)](a, b)
            except (ZeroDivisionError, OverflowError):
                raise _NotLiteral from None
        raise _NotLiteral

    def source(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or ast.dump(node)

    def attr(self, node: ast.expr, owner: str) -> Optional[str]:
        """``x`` for ``owner.x`` (following a top-level name bound to it)."""
        if isinstance(node, ast.Name) and node.id in self.env:
            self.used.add(node.id)
            return self.attr(self.env[node.id], owner)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == owner:
            return node.attr
        return None

    def calls(self, root: ast.AST):
        """Every ``dict(...)``-style call below ``root`` with its keyword arguments by name."""
        for node in ast.walk(root):
            if isinstance(node, ast.Call):
                yield node, {kw.arg: kw.value for kw in node.keywords if kw.arg}

    @staticmethod
    def type_name(kwargs: dict[str, ast.expr]) -> Optional[str]:
        t = kwargs.get("type")
        if isinstance(t, ast.Name):
            return t.id
        if isinstance(t, ast.Attribute):
            return t.attr
        return None

    # -- mapping ------------------------------------------------------------------------------
    def take(self, project_field: str, value: Any, origin: str) -> None:
        if project_field in Hyperparams.model_fields:
            if isinstance(value, list) and project_field == "betas":
                value = tuple(value)
            try:
                Hyperparams.model_validate({project_field: value})
            except ValidationError as e:
                msg = e.errors()[0]["msg"]
                self.out.errors.append(f"{origin} = {value!r} was not taken: {msg}.")
                return
            self.out.hyperparams[project_field] = value
        else:
            setattr(self.out, project_field, value)
        self.out.mapped[project_field] = origin

    def read(self) -> ImportedConfig:
        body = self.tree.body
        for node in body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                self.env[node.targets[0].id] = node.value
        for name, field_name in _DIRECT.items():
            self.simple(name, field_name)
        self.optimizer()
        self.evaluation()
        self.template()
        self.model()
        self.dataset()
        self.hooks()
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
                if name not in self.used:
                    self.out.unmapped[name] = self.source(node.value)
            else:
                self.out.unmapped[f"line {node.lineno}"] = self.source(node)
        return self.out

    def simple(self, name: str, field_name: str) -> None:
        if name not in self.env:
            return
        self.used.add(name)
        try:
            self.take(field_name, self.value(self.env[name]), name)
        except _NotLiteral:
            self.out.errors.append(f"{name} = {self.source(self.env[name])} is computed, not a literal: not taken.")

    def optimizer(self) -> None:
        node = self.env.get("optim_type")
        if node is None:
            return
        self.used.add("optim_type")
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        if name in _OPTIMIZERS:
            self.take("optimizer", name, "optim_type")
        else:
            self.out.errors.append(f"optim_type = {self.source(node)}: only AdamW and SGD are offered; not taken.")

    def evaluation(self) -> None:
        if "evaluation_inputs" in self.env:
            self.used.add("evaluation_inputs")
            try:
                value = self.value(self.env["evaluation_inputs"])
                value = [value] if isinstance(value, str) else value
                if not (isinstance(value, list) and all(isinstance(q, str) for q in value)):
                    raise _NotLiteral
                if len(value) > MAX_EVALUATION_QUESTIONS:
                    self.out.errors.append(f"evaluation_inputs has {len(value)} questions; "
                                           f"the first {MAX_EVALUATION_QUESTIONS} were taken.")
                    value = value[:MAX_EVALUATION_QUESTIONS]
                if value:
                    self.take("evaluation_inputs", value, "evaluation_inputs")
            except _NotLiteral:
                self.out.errors.append("evaluation_inputs is not a list of strings: not taken.")
        if "SYSTEM" in self.env:
            self.used.add("SYSTEM")
            node = self.env["SYSTEM"]
            template = self.attr(node, "SYSTEM_TEMPLATE")
            if template is not None:
                if template in SYSTEM_TEMPLATES:
                    self.take("system_prompt", SYSTEM_TEMPLATES[template], f"SYSTEM_TEMPLATE.{template}")
                else:
                    self.out.errors.append(f"SYSTEM_TEMPLATE.{template} is not one of XTuner's system templates.")
                return
            try:
                value = self.value(node)
                if not isinstance(value, str):
                    raise _NotLiteral
                self.take("system_prompt", value, "SYSTEM")
            except _NotLiteral:
                self.out.errors.append(f"SYSTEM = {self.source(node)} is not a string: not taken.")

    def template(self) -> None:
        if "prompt_template" not in self.env:
            return
        self.used.add("prompt_template")
        name = self.attr(self.env["prompt_template"], "PROMPT_TEMPLATE")
        if name is None and "studio_prompt_template" in self.env:  # a literal template this app wrote, by name
            self.used.add("studio_prompt_template")
            try:
                named = self.value(self.env["studio_prompt_template"])
                literal = self.value(self.env["prompt_template"])
            except _NotLiteral:
                named = literal = None
            if named in PROMPT_TEMPLATES and literal == template_dict(named):
                self.take("prompt_template", named, "studio_prompt_template")
                return
        if name in PROMPT_TEMPLATES:
            self.take("prompt_template", name, f"PROMPT_TEMPLATE.{name}")
        else:
            self.out.errors.append(f"prompt_template = {self.source(self.env['prompt_template'])} "
                                   "is not one of XTuner's prompt templates.")

    def model(self) -> None:
        model = self.env.get("model")
        if model is None:
            return
        self.used.add("model")
        kinds = {self.type_name(kw) for _, kw in self.calls(model)}
        objectives = [objective for cls, objective in _OBJECTIVES.items() if cls in kinds]
        if objectives:
            self.take("objective", objectives[0], "model")
        else:
            found = self.type_name({kw.arg: kw.value for kw in getattr(model, "keywords", []) if kw.arg})
            self.out.errors.append(f"model type {found or '?'} is not supervised fine-tuning (SupervisedFinetune): "
                                   "method not taken.")
            return
        quantized = lora = False
        for _call, kw in self.calls(model):
            if "quantization_config" in kw:
                q = kw["quantization_config"]
                quantized = quantized or not (isinstance(q, ast.Constant) and q.value is None)
            if "pretrained_model_name_or_path" in kw and self.out.model_path is None:
                try:
                    path = self.value(kw["pretrained_model_name_or_path"])
                    if isinstance(path, str):
                        self.take("model_path", path, "pretrained_model_name_or_path")
                except _NotLiteral:
                    pass
            if self.type_name(kw) == "LoraConfig":
                lora = True
                for arg, field_name in _LORA_KWARGS.items():
                    if arg in kw:
                        try:
                            self.take(field_name, self.value(kw[arg]), f"lora.{arg}")
                        except _NotLiteral:
                            self.out.errors.append(f"lora {arg}={self.source(kw[arg])} is not a literal: not taken.")
        method = "qlora" if quantized and lora else "lora" if lora else "full"
        if quantized and not lora:
            self.out.errors.append("A quantized model without a LoRA adapter cannot be trained; method not taken.")
            return
        self.take("method", method, "model")
        if "pretrained_model_name_or_path" in self.env:
            self.used.add("pretrained_model_name_or_path")

    def dataset(self) -> None:
        for _call, kw in self.calls(self.tree):
            if "path" not in kw or not (isinstance(kw.get("type"), ast.Name) and kw["type"].id == "load_dataset"):
                continue
            try:
                path = self.value(kw["path"])
                if path in ("json", "jsonl") and "data_files" in kw:
                    files = self.value(kw["data_files"])
                    path = files.get("train") if isinstance(files, dict) else files
                if isinstance(path, str):
                    self.take("dataset_path", path, self.source(kw["path"]))
                    return
            except _NotLiteral:
                continue

    def hooks(self) -> None:
        for name in ("randomness", "default_hooks"):
            if name not in self.env:
                continue
            for _call, kw in self.calls(self.env[name]):
                if name == "randomness":
                    for arg, field_name in _RANDOMNESS.items():
                        if arg in kw:
                            self.used.add(name)
                            try:
                                self.take(field_name, self.value(kw[arg]), f"randomness.{arg}")
                            except _NotLiteral:
                                self.out.errors.append(f"randomness {arg} is not a literal: not taken.")
                if name == "default_hooks" and self.type_name(kw) == "LoggerHook":
                    for arg, field_name in _LOGGER.items():
                        if arg in kw:
                            try:
                                self.take(field_name, self.value(kw[arg]), f"LoggerHook.{arg}")
                            except _NotLiteral:
                                pass
