"""Thread counts follow the CPUs a container really grants (cgroup quota, affinity)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from thresher.device import available_cpus, configure_threads
from thresher.errors import ConfigError


def cgroup(tmp_path: Path, text: str) -> str:
    (tmp_path / "cpu.max").write_text(text)
    return str(tmp_path)


def test_a_cgroup_quota_caps_the_cpu_count(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    assert available_cpus(cgroup_root=cgroup(tmp_path, "100000 100000\n")) == 1
    assert available_cpus(cgroup_root=cgroup(tmp_path, "max 100000\n")) == affinity
    assert available_cpus(cgroup_root=cgroup(tmp_path, "50000 100000\n")) == 1  # half a CPU
    assert available_cpus(cgroup_root=str(tmp_path / "absent")) == affinity


def test_configure_threads_respects_the_users_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("THRESHER_THREADS", raising=False)
        assert configure_threads(cgroup_root=cgroup(tmp_path, "100000 100000")) == 1
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("THRESHER_THREADS", "2")
        assert configure_threads(cgroup_root=cgroup(tmp_path, "100000 100000")) == 2
        monkeypatch.setenv("THRESHER_THREADS", "many")
        with pytest.raises(ConfigError, match="must be a whole number, got 'many'"):
            configure_threads()
    finally:
        torch.set_num_threads(before)


def test_the_cpu_model_names_this_machines_processor() -> None:
    from pathlib import Path

    from thresher.device import cpu_model

    name = cpu_model()
    assert name
    assert name.strip() == name
    info = Path("/proc/cpuinfo")
    if info.is_file():  # the name is the one the kernel reports
        assert f": {name}" in info.read_text(errors="replace")
