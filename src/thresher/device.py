"""Device choice and deterministic seeding."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from thresher.errors import ConfigError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto" -> CUDA when present, CPU otherwise; refuses a CUDA request without one."""
    if device is None or device == "auto":
        device = os.environ.get("THRESHER_DEVICE", "auto")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} asked for but no CUDA GPU is available; use --device cpu"
        )
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; return a CPU generator for explicit sampling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def available_cpus(*, cgroup_root: str = "/sys/fs/cgroup") -> int:
    """CPUs this process may really use: its affinity mask, capped by a cgroup v2 CPU quota.

    ``os.cpu_count()`` reports the host's CPUs; in a container limited to two, torch would
    start one thread per host CPU and they would fight over two (slower than two threads).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        with open(os.path.join(cgroup_root, "cpu.max"), encoding="ascii") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def configure_threads(*, cgroup_root: str = "/sys/fs/cgroup") -> int:
    """Set torch's intra-op threads to :func:`available_cpus` unless the user chose a count
    (``OMP_NUM_THREADS`` or ``THRESHER_THREADS``); returns the count in use."""
    chosen = os.environ.get("THRESHER_THREADS") or os.environ.get("OMP_NUM_THREADS")
    if chosen:
        try:
            threads = int(chosen)
        except ValueError:
            raise ConfigError(
                f"THRESHER_THREADS/OMP_NUM_THREADS must be a whole number, got {chosen!r}"
            ) from None
        if threads < 1:
            raise ConfigError(f"THRESHER_THREADS/OMP_NUM_THREADS must be >= 1, got {threads}")
    else:
        threads = available_cpus(cgroup_root=cgroup_root)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def as_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A CPU tensor over ``images``, shared when possible; read-only arrays (memory maps) and
    strided views are copied, since torch cannot share a read-only buffer."""
    if isinstance(images, torch.Tensor):
        return images
    if not images.flags.writeable or not images.flags.c_contiguous:
        images = np.array(images)
    return torch.from_numpy(images)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), for benchmark records; the platform's
    processor or machine string where that file is absent."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
