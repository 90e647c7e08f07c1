"""The exact XTuner CLI commands for a project, and a Slurm batch script — so a user can graduate
from the app to the command line. Every path or value is quoted with ``shlex.quote``: text a user
typed is never interpreted by the shell.

The commands use XTuner's own launcher: ``NPROC_PER_NODE``/``NNODES``/``NODE_RANK``/``ADDR``/``PORT``
make ``xtuner train`` start ``torchrun`` (``xtuner/entry_point.py``); on Slurm, ``srun`` starts one
task per GPU and ``--launcher slurm`` lets mmengine read the ranks from Slurm.
A generated config imports ``core.train.mmhooks`` (progress, stop, warmup), so ``PYTHONPATH`` must hold
this repository.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from core.train.launch import DEEPSPEED_PRESETS, plan_for
from core.paths import REPO_ROOT
from core.errors import UserError
from core.project import Project

q = shlex.quote
_SLURM_NAME = re.compile(r"^[\w.\-]{1,64}$")


E_DEEPSPEED = "Unknown DeepSpeed config {name}; known: {known}."
E_NO_MODEL = "Choose a base model (and its prompt template) on Model & Data first."
E_PARTITION = "The Slurm partition {value} may only hold letters, digits, '.', '-' and '_'."
E_JOB_NAME = "The Slurm job name {value} may only hold letters, digits, '.', '-' and '_'."
E_TIME = "The Slurm time limit {value} must look like 1-00:00:00 or 24:00:00."
MESSAGES = [E_DEEPSPEED, E_NO_MODEL, E_PARTITION, E_JOB_NAME, E_TIME]


class CommandError(UserError):
    pass


@dataclass
class Layout:
    """Where the CLI flow reads and writes (defaults: ``<project>/cli/``)."""

    config: Path
    work_dir: Path
    hf_dir: Path
    merged_dir: Path

    @classmethod
    def for_project(cls, project: Project) -> "Layout":
        root = project.dir / "cli"
        return cls(root / "config.py", root / "work_dir", root / "hf", root / "merged")


def _check(project: Project) -> None:
    if project.deepspeed is not None and project.deepspeed not in DEEPSPEED_PRESETS:
        raise CommandError(E_DEEPSPEED, name=repr(project.deepspeed), known=", ".join(DEEPSPEED_PRESETS))
    if not project.model_path or not project.prompt_template:
        raise CommandError(E_NO_MODEL)


def _train_args(project: Project, layout: Layout) -> str:
    """``xtuner train`` and its arguments: the one builder of this command line (the app's own argv is
    ``launch.train_argv``)."""
    args = f"xtuner train {q(str(layout.config))} --work-dir {q(str(layout.work_dir))}"
    if project.deepspeed:
        args += f" --deepspeed {q(project.deepspeed)}"
    return args


def env_line() -> str:
    return f'export PYTHONPATH={q(str(REPO_ROOT))}"${{PYTHONPATH:+:$PYTHONPATH}}"'


def train_commands(project: Project, layout: Layout, master_addr: str = "<master-node-address>",
                   port: int = 29500) -> list[str]:
    """One command per node (a single line when one node)."""
    _check(project)
    plan = plan_for(project)
    gpus, nodes = plan.nproc_per_node, plan.nnodes
    train = _train_args(project, layout)
    if nodes <= 1:
        return [f"NPROC_PER_NODE={gpus} {train}" if gpus > 1 else train]
    return [f"NPROC_PER_NODE={gpus} NNODES={nodes} NODE_RANK={rank} ADDR={q(master_addr)} "
            f"PORT={int(port)} {train}" for rank in range(nodes)]


def convert_commands(project: Project, layout: Layout) -> list[str]:
    """pth_to_hf on the newest checkpoint (``last_checkpoint`` names it), then merge for adapters."""
    _check(project)
    last = f'"$(cat {q(str(layout.work_dir / "last_checkpoint"))})"'
    cmds = [f"xtuner convert pth_to_hf {q(str(layout.config))} {last} {q(str(layout.hf_dir))}"]
    if project.method != "full":
        cmds.append(f"xtuner convert merge {q(project.model_path)} {q(str(layout.hf_dir))} "
                    f"{q(str(layout.merged_dir))} --max-shard-size 2GB")
    return cmds


def chat_command(project: Project, layout: Layout) -> str:
    _check(project)
    model = layout.hf_dir if project.method == "full" else layout.merged_dir
    cmd = f"xtuner chat {q(str(model))} --prompt-template {q(project.prompt_template)}"
    if project.system_prompt:
        cmd += f" --system {q(project.system_prompt)}"
    return cmd


def shell_script(project: Project, layout: Layout) -> str:
    """The whole flow for one machine: train, convert, merge, chat."""
    lines = ["#!/usr/bin/env bash", f"# XTuner Studio: project {project.name!r} on the command line", "set -euo pipefail",
             env_line(), "", "# 1. train (the config was saved by the Configure page)"]
    lines += train_commands(project, layout)
    lines += ["", "# 2. convert the newest checkpoint to Hugging Face format" +
              (" and merge the adapter into the base model" if project.method != "full" else "")]
    lines += convert_commands(project, layout)
    lines += ["", "# 3. chat with the result", chat_command(project, layout)]
    return "\n".join(lines) + "\n"


def slurm_script(project: Project, layout: Layout, partition: str = "", job_name: str = "xtuner",
                 cpus_per_task: int = 8, time_limit: str = "") -> str:
    """An ``sbatch`` script: ``srun`` starts one task per GPU on every node."""
    _check(project)
    for text, value in ((E_PARTITION, partition), (E_JOB_NAME, job_name)):
        if value and not _SLURM_NAME.match(value):
            raise CommandError(text, value=repr(value))
    if time_limit and not re.match(r"^[\d:\-]{1,16}$", time_limit):
        raise CommandError(E_TIME, value=repr(time_limit))
    gpus = plan_for(project).nproc_per_node
    lines = ["#!/usr/bin/env bash", f"#SBATCH --job-name={job_name or 'xtuner'}"]
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    lines += [f"#SBATCH --nodes={project.num_nodes}", f"#SBATCH --ntasks-per-node={gpus}",
              f"#SBATCH --gres=gpu:{gpus}", f"#SBATCH --cpus-per-task={int(cpus_per_task)}"]
    if time_limit:
        lines.append(f"#SBATCH --time={time_limit}")
    lines += [f"#SBATCH --output={q(str(layout.work_dir.parent / 'slurm-%j.log'))}", "", "set -euo pipefail",
              env_line(), "",
              f"srun {_train_args(project, layout)} --launcher slurm", ""]
    return "\n".join(lines)


def write_config(layout: Layout, text: str) -> Path:
    from core.fsutil import atomic_write_text

    atomic_write_text(layout.config, text)
    return layout.config


def describe_launch(project: Project) -> Optional[str]:
    """A one-line summary of the distributed setup, or None for one GPU."""
    gpus = plan_for(project).nproc_per_node
    if gpus == 1 and project.num_nodes == 1 and not project.deepspeed:
        return None
    parts = [f"{project.num_nodes} node(s) × {gpus} GPU(s)"]
    if project.deepspeed:
        parts.append(project.deepspeed)
    return ", ".join(parts)
