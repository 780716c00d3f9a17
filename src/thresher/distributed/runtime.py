"""Ray as an optional dependency: importing it, connecting to a cluster, shutting down cleanly."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

from thresher.errors import ConfigError

INSTALL_HINT = "pip install 'thresher[ray]'"


def import_ray() -> ModuleType:
    """The ``ray`` module (with Ray Data), or a ``ConfigError`` saying how to install it."""
    try:
        ray = importlib.import_module("ray")
        importlib.import_module("ray.data")
    except ImportError as err:
        raise ConfigError(
            f"the ray engine needs Ray, which is not installed ({err}); run `{INSTALL_HINT}` "
            "or use engine='local'"
        ) from err
    return ray


class RaySession:
    """A connection to Ray: an existing cluster (``address``) or a local one started here.

    Only a cluster this session started is shut down by :meth:`close`; when Ray was already
    initialised in this process (a notebook, a test fixture) that connection is reused and
    left open.

    Parameters
    ----------
    address:
        ``"auto"``, ``"ray://host:10001"`` or ``"host:6379"`` of a running cluster; ``None``
        starts a local one (or reuses ``RAY_ADDRESS`` when that is set).
    num_cpus, num_gpus:
        resources of a local cluster (ignored when connecting to one).
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
    ) -> None:
        self.ray = import_ray()
        self.address = address
        self.started = False
        if self.ray.is_initialized():
            return
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": False,
        }
        target = address or os.environ.get("RAY_ADDRESS")
        if target:
            kwargs["address"] = target
        else:
            kwargs.update(num_cpus=num_cpus, num_gpus=num_gpus)
        try:
            self.ray.init(**kwargs)
        except ConnectionError as err:
            raise ConfigError(
                f"could not connect to the Ray cluster at {target!r} ({err}); check "
                "--ray-address (e.g. 'auto' on a cluster node, or ray://HEAD:10001)"
            ) from err
        self.started = True

    def resources(self) -> dict[str, float]:
        """The cluster's total resources (``{"CPU": 2.0, "GPU": 0.0, ...}``)."""
        total = self.ray.cluster_resources()
        return {"CPU": float(total.get("CPU", 0.0)), "GPU": float(total.get("GPU", 0.0))}

    def close(self) -> None:
        """Shut Ray down if this session started it."""
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
        self.started = False
