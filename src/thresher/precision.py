"""Numeric precision of training and inference: ``auto``, ``fp32``, ``bf16`` or ``fp16``.

* ``bf16`` — autocast to bfloat16 (matrix work in bf16, accumulations and the optimiser in
  fp32) with channels-last memory for convolutional nets; on CPUs with AVX512-BF16 or AMX and on
  CUDA devices that support bf16.
* ``fp16`` — CUDA autocast to float16 with a gradient scaler (older GPUs without bf16).
* ``fp32`` — plain float32, contiguous memory (the reference).
* ``auto`` — ``bf16`` where the device supports it, ``fp16`` on older CUDA, ``fp32`` elsewhere.

Measured on this project's 2-core CPU (AVX512-BF16; ``benchmarks/bench_precision.py``):
bf16 with channels-last trained the paper nets 1.4-3x faster than fp32; bf16 alone or
channels-last alone gained less. The same seed, precision, device and thread count give
identical weights.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from thresher.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@functools.cache
def cpu_bf16_supported() -> bool:
    """True when this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX-BF16)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def supported(device: torch.device) -> tuple[str, ...]:
    """The precisions ``device`` can run."""
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        return ("fp32", "fp16", "bf16") if bf16 else ("fp32", "fp16")
    if device.type == "cpu" and cpu_bf16_supported():
        return ("fp32", "bf16")
    return ("fp32",)


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """``auto`` -> the fastest supported one; an unsupported request is a clear error."""
    precision = precision or "fp32"
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r} (valid: {', '.join(PRECISIONS)})")
    can = supported(device)
    if precision == "auto":
        return "bf16" if "bf16" in can else ("fp16" if "fp16" in can else "fp32")
    if precision not in can:
        why = (
            "fp16 training needs a CUDA GPU"
            if precision == "fp16"
            else "bf16 needs a CPU with AVX512-BF16 or AMX, or a CUDA GPU with bf16"
        )
        raise ConfigError(
            f"precision {precision!r} cannot run on {device.type}: {why}; this device supports "
            f"{', '.join(can)} (or use --precision auto)"
        )
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[None]:
    """The autocast context of a *resolved* precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def use_channels_last(precision: str, model: nn.Module) -> bool:
    """Channels-last memory pays with bf16 convolutions (measured); fp32 stays contiguous."""
    return precision in ("bf16", "fp16") and has_conv(model)


@contextlib.contextmanager
def memory_format(model: nn.Module, channels_last: bool) -> Iterator[None]:
    """Run ``model`` in channels-last memory inside the block; contiguous again afterwards
    (checkpoints and the caller see ordinary tensors), even on error."""
    if not channels_last:
        yield
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)


def to_input(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    if channels_last and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


__all__ = [
    "PRECISIONS",
    "autocast",
    "cpu_bf16_supported",
    "memory_format",
    "resolve_precision",
    "supported",
    "to_input",
    "use_channels_last",
]
