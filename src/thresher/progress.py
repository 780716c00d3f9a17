"""Progress bars for long work: on a terminal by default, never with THRESHER_PROGRESS=0, and
always (also into a log file) with THRESHER_PROGRESS=1."""

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

    forced = os.environ.get("THRESHER_PROGRESS", "auto") in {"1", "true", "on"}
    # None = tqdm decides (off when not a TTY); False = on even into a log file
    disable = False if forced else (None if enabled() else True)
    yield from tqdm(iterable, total=total, desc=desc, disable=disable, leave=False)
