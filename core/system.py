"""What this machine has: GPUs (nvidia-ml-py, no torch import), CPU, memory, disk (psutil)."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class GPU:
    index: int
    name: str
    memory_total: int
    memory_used: int
    utilization: int | None
    driver: str


def gpus() -> list[GPU]:
    """NVIDIA GPUs visible to this process, or [] (no driver, no GPU, or NVML missing)."""
    if os.environ.get("XTUNER_STUDIO_FORCE_CPU") == "1":
        return []
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return []
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        result = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            try:
                util = int(pynvml.nvmlDeviceGetUtilizationRates(h).gpu)
            except Exception:
                util = None
            result.append(GPU(i, _text(pynvml.nvmlDeviceGetName(h)), int(mem.total), int(mem.used), util, driver))
        return result
    except Exception:
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def device() -> str:
    """'cuda' when an NVIDIA GPU is usable, else 'cpu'."""
    return "cuda" if gpus() else "cpu"


def cpu_count() -> int:
    return os.cpu_count() or 1


def memory() -> tuple[int, int]:
    vm = psutil.virtual_memory()
    return int(vm.total), int(vm.available)


def disk_free(path: str | os.PathLike) -> int:
    """Free bytes on the file system holding ``path`` (its nearest existing parent)."""
    p = Path(path).expanduser().resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free
