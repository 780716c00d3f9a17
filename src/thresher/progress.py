"""Progress bars for long work, silent when not on a terminal or when THRESHER_PROGRESS=0."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def enabled() -> bool:
    return os.environ.get("THRESHER_PROGRESS", "auto") not in {"0", "false", "off"}


def track(iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
    """Iterate with a tqdm bar (auto-disabled off a TTY); the core's only progress dependency."""
    from tqdm.auto import tqdm

    disable = None if enabled() else True  # None = tqdm decides (off when not a TTY)
    yield from tqdm(iterable, total=total, desc=desc, disable=disable, leave=False)
