"""Optional dependencies: which are installed, and clear errors for the ones a command needs.

A core install (``pip install thresher``) has no plotting libraries; the figures live in the
``report`` extra. Commands whose main result is data (filter, reduce, diagnose) write their
results and skip the figures with a note; commands whose result *is* a figure (explain,
report) refuse before any work, naming the extra to install.
"""

from __future__ import annotations

import importlib.util

from thresher.errors import ConfigError

PLOTTING = ("matplotlib", "plotly")


def installed(module: str) -> bool:
    """Whether the top-level ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None


def missing(*modules: str) -> list[str]:
    """The top-level ``modules`` that cannot be imported here, in the order given."""
    return [m for m in modules if not installed(m)]


def require(*modules: str, feature: str, extra: str = "report") -> None:
    """Raise ``ConfigError`` naming the install command unless all ``modules`` are present."""
    absent = missing(*modules)
    if absent:
        raise ConfigError(
            f"{feature} needs {', '.join(absent)}, which is not installed; "
            f"pip install 'thresher[{extra}]'"
        )


def skipped_note(modules: tuple[str, ...], what: str) -> str:
    """A one-line note for a skipped figure, or "" when its libraries are present."""
    absent = missing(*modules)
    if not absent:
        return ""
    return f"{what} skipped: {', '.join(absent)} not installed (pip install 'thresher[report]')"
