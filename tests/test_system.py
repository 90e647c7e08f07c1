import os

from core.machine import system


def test_no_gpu_is_a_clear_empty_list(monkeypatch):
    monkeypatch.setenv("XTUNER_STUDIO_FORCE_CPU", "1")
    assert system.gpus() == [] and system.device() == "cpu"


def test_snapshot_reports_cpu_memory_disk_and_a_process_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("XTUNER_STUDIO_FORCE_CPU", "1")
    snap = system.snapshot(tmp_path / "not" / "yet", pid=os.getpid())
    assert snap.gpus == []
    assert snap.cpu_count >= 1 and 0.0 <= snap.cpu_percent <= 100.0
    assert 0 < snap.memory_used <= snap.memory_total
    assert 0 < snap.disk_free <= snap.disk_total
    assert snap.process_memory and snap.process_memory > 10 * 1024 * 1024  # this interpreter and pytest


def test_process_tree_memory_of_a_gone_process_is_none():
    assert system.process_tree_memory(2 ** 22 + 12345) is None
