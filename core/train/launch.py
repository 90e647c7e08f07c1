"""How a training run is launched: one process, or ``torchrun`` over GPUs and nodes; DeepSpeed presets.

XTuner's own CLI (``xtuner/entry_point.py``) runs ``tools/train.py`` directly for one process, and
for more (``NPROC_PER_NODE`` × ``NNODES`` > 1) runs::

    torchrun --nnodes=$NNODES --node_rank=$NODE_RANK --nproc_per_node=$NPROC_PER_NODE \\
             --master_addr=$ADDR --master_port=$PORT  tools/train.py CONFIG ... --launcher pytorch

The app builds the same command with this environment's interpreter (``python -m
torch.distributed.run`` is ``torchrun``) and ``core.train.xtuner_entry`` in place of ``tools/train.py``.
A DeepSpeed run goes through torchrun even on one GPU: without it, DeepSpeed discovers its rank
through MPI (mpi4py). Presets are XTuner's built-in names, passed as ``--deepspeed NAME``.

Every "can this work here" answer is a ``Why`` (an English template + values) so the UI can
translate it and show it next to the disabled choice.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, Field

from core.paths import python_executable
from core.errors import UserError

# XTuner 0.2.0's xtuner/configs/deepspeed/*.json, by the name ``--deepspeed`` accepts
DEEPSPEED_PRESETS = (
    "deepspeed_zero1",
    "deepspeed_zero2",
    "deepspeed_zero2_offload",
    "deepspeed_zero3",
    "deepspeed_zero3_offload",
)
DEEPSPEED_LABELS = {
    "deepspeed_zero1": "ZeRO-1: optimizer states split across GPUs",
    "deepspeed_zero2": "ZeRO-2: optimizer states and gradients split across GPUs",
    "deepspeed_zero2_offload": "ZeRO-2 with optimizer states offloaded to CPU memory",
    "deepspeed_zero3": "ZeRO-3: weights, gradients and optimizer states split across GPUs",
    "deepspeed_zero3_offload": "ZeRO-3 with weights and optimizer states offloaded to CPU memory",
}
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.\-:]{0,252})$")


@dataclass
class Why:
    """A reason in English with its values; ``str()`` gives the English text."""

    template: str
    params: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.template.format(**self.params)


class LaunchError(UserError):
    def __init__(self, why: Why):
        super().__init__(why.template, **why.params)
        self.why = why


class LaunchPlan(BaseModel):
    nproc_per_node: int = Field(1, ge=1, le=1024)
    nnodes: int = Field(1, ge=1, le=1024)
    node_rank: int = Field(0, ge=0)
    master_addr: str = "127.0.0.1"
    master_port: Optional[int] = Field(None, ge=1, le=65535)
    deepspeed: Optional[str] = None

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    @property
    def uses_torchrun(self) -> bool:
        return self.world_size > 1 or self.deepspeed is not None


def plan_for(project) -> LaunchPlan:
    """The launch plan a project's settings ask for (0 GPUs means the CPU: one process)."""
    return LaunchPlan(
        nproc_per_node=max(1, project.num_gpus),
        nnodes=project.num_nodes,
        node_rank=project.node_rank,
        master_addr=project.master_addr,
        master_port=project.master_port,
        deepspeed=project.deepspeed or None,
    )


def deepspeed_installed() -> bool:
    return importlib.util.find_spec("deepspeed") is not None  # finds it without importing torch


def deepspeed_unavailable(preset: str, device: str) -> Optional[Why]:
    """Why ``preset`` cannot run here, or None."""
    if preset not in DEEPSPEED_PRESETS:
        return Why("Unknown DeepSpeed preset {name!r}; XTuner has {known}.",
                   {"name": preset, "known": ", ".join(DEEPSPEED_PRESETS)})
    if device != "cuda":
        return Why("DeepSpeed needs an NVIDIA GPU; none was found on this machine.")
    if not deepspeed_installed():
        return Why("DeepSpeed is not installed in this environment (pip install deepspeed==0.16.2).")
    if preset.endswith("_offload") and shutil.which("ninja") is None:
        return Why("Offloading builds DeepSpeed's CPU Adam optimizer on first use, which needs ninja "
                   "(pip install ninja) and the CUDA toolkit.")
    return None


def gpus_unavailable(n: int, device: str, gpu_count: int) -> Optional[Why]:
    """Why ``n`` GPUs per node cannot be used here, or None."""
    if n <= 1:
        return None
    if device != "cuda":
        return Why("Training on several GPUs needs NVIDIA GPUs; none was found on this machine.")
    if n > gpu_count:
        return Why("{n} GPUs asked for, but this machine has {found}.", {"n": n, "found": gpu_count})
    return None


def check_plan(plan: LaunchPlan, device: str, gpu_count: int) -> None:
    """Raise ``LaunchError`` with the reason when ``plan`` cannot run on this machine."""
    why = gpus_unavailable(plan.nproc_per_node, device, gpu_count)
    if why is None and plan.deepspeed:
        why = deepspeed_unavailable(plan.deepspeed, device)
    if why is None and plan.nnodes > 1 and device != "cuda":
        why = Why("Training on several nodes needs NVIDIA GPUs; none was found on this machine.")
    if why is None and plan.node_rank >= plan.nnodes:
        why = Why("Node rank {rank} is out of range: with {nnodes} nodes it is 0 to {last}.",
                  {"rank": plan.node_rank, "nnodes": plan.nnodes, "last": plan.nnodes - 1})
    if why is None and not _HOST.match(plan.master_addr or ""):
        why = Why("Master address {addr!r} is not a host name or IP address.", {"addr": plan.master_addr})
    if why is None and plan.nnodes > 1 and plan.master_port is None:
        why = Why("Training on several nodes needs a fixed master port, the same on every node.")
    if why is not None:
        raise LaunchError(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_argv(plan: LaunchPlan, config: str | Path, work_dir: str | Path,
               resume_from: str | Path | None = None, port: int | None = None) -> list[str]:
    """The argv of a training run (a list: nothing goes through a shell)."""
    tool = ["-m", "core.train.xtuner_entry", "train", str(config), "--work-dir", str(work_dir)]
    if plan.deepspeed:
        tool += ["--deepspeed", plan.deepspeed]
    if resume_from is not None:
        tool += ["--resume", str(resume_from)]
    if not plan.uses_torchrun:
        return [python_executable(), *tool]
    master_port = plan.master_port or port or free_port()
    return [
        python_executable(), "-m", "torch.distributed.run",
        f"--nnodes={plan.nnodes}",
        f"--node_rank={plan.node_rank}",
        f"--nproc_per_node={plan.nproc_per_node}",
        f"--master_addr={plan.master_addr}",
        f"--master_port={master_port}",
        *tool, "--launcher", "pytorch",
    ]
