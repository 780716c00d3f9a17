"""Named registries (timm's ``register_model`` / zennit's named composites).

One registry per kind of component; the CLI and the app list their choices from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from thresher.errors import ThresherError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> entry mapping that refuses unknown names with the list of valid ones."""

    def __init__(self, kind: str, *, error: type[ThresherError] = ThresherError) -> None:
        self.kind = kind
        self._error = error
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> T:
        """Remove ``name`` (tests and plug-ins that register temporarily); returns its entry."""
        if name not in self._entries:
            raise self._error(f"no {self.kind} {name!r} is registered")
        return self._entries.pop(name)

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator("name")`` registers the decorated object under ``name``."""

        def wrap(entry: T) -> T:
            return self.register(name, entry)

        return wrap

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(sorted(self._entries))
            raise self._error(
                f"unknown {self.kind} {name!r}{did_you_mean(name, self.names())} (valid: {valid})"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def in_order(self) -> list[str]:
        """Names in the order they were registered (reports list their sections so)."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
