"""What this machine has and how busy it is: GPUs (nvidia-ml-py, no torch import), CPU, memory,
disk (psutil). ``snapshot()`` is the Train page's monitor: cheap enough to call every poll."""
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
    temperature_c: int | None = None
    power_w: float | None = None
    compute_capability: tuple[int, int] | None = None  # (8, 0) and later: bf16 in hardware


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
            util = _try(lambda: int(pynvml.nvmlDeviceGetUtilizationRates(h).gpu))
            temp = _try(lambda: int(pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)))
            power = _try(lambda: pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0)
            cap = _try(lambda: tuple(int(x) for x in pynvml.nvmlDeviceGetCudaComputeCapability(h)))
            result.append(GPU(i, _text(pynvml.nvmlDeviceGetName(h)), int(mem.total), int(mem.used), util, driver,
                              temp, power, cap))
        return result
    except Exception:
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _try(read):
    try:
        return read()
    except Exception:  # a metric this GPU or driver does not report
        return None


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


def disk_usage(path: str | os.PathLike):
    """``shutil.disk_usage`` of the file system holding ``path`` (its nearest existing parent: a
    folder that is still to be made)."""
    p = Path(path).expanduser().resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p)


def disk_free(path: str | os.PathLike) -> int:
    """Free bytes on the file system holding ``path``."""
    return disk_usage(path).free


@dataclass(frozen=True)
class Snapshot:
    gpus: list[GPU]
    cpu_percent: float  # whole machine, since the previous call (0.0 on the first)
    cpu_count: int
    load_avg: tuple[float, float, float]
    memory_total: int
    memory_used: int
    disk_total: int
    disk_free: int
    process_memory: int | None  # resident memory of the watched process tree (the training job)


def snapshot(disk_path: str | os.PathLike, pid: int | None = None) -> Snapshot:
    """GPUs, CPU, RAM and the disk holding ``disk_path``; with ``pid``, that process tree's memory."""
    vm = psutil.virtual_memory()
    du = disk_usage(disk_path)
    try:
        load = tuple(round(x, 2) for x in os.getloadavg())
    except OSError:
        load = (0.0, 0.0, 0.0)
    return Snapshot(
        gpus=gpus(),
        cpu_percent=psutil.cpu_percent(interval=None),
        cpu_count=cpu_count(),
        load_avg=load,
        memory_total=int(vm.total),
        memory_used=int(vm.total - vm.available),
        disk_total=int(du.total),
        disk_free=int(du.free),
        process_memory=process_tree_memory(pid) if pid else None,
    )


def process_tree_memory(pid: int) -> int | None:
    """Resident bytes of ``pid`` and all its descendants (torchrun workers, dataloader workers)."""
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.Error:
        return None
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total
