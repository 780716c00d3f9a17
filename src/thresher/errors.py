"""One error family for everything Thresher refuses to do.

Every message names the problem *and* the fix, so the CLI can print it as a single line.
"""

from __future__ import annotations


class ThresherError(Exception):
    """Base class: a problem the user can fix. The CLI prints ``str(err)`` and exits 2."""

    exit_code = 2


class DataError(ThresherError):
    """A data set could not be found, read, verified or understood."""


class ChecksumError(DataError):
    """A file's content does not match its published checksum."""


class FetchError(DataError):
    """A download failed (network, HTTP status, checksum)."""


class ModelError(ThresherError):
    """A model could not be built or loaded."""


class LayerError(ThresherError):
    """A layer name does not exist in the model, or cannot be tapped."""


class ConfigError(ThresherError):
    """A parameter is out of range or inconsistent with another."""


class RunError(ThresherError):
    """A run directory is missing, incomplete or from an incompatible version."""


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """``"; did you mean 'x'?"`` when a close match exists, else ``""``."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
