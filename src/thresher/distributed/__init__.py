"""Run Thresher's heavy steps on an engine: ``local`` (default, in-process) or ``ray``.

Ray is optional (``pip install 'thresher[ray]'``); nothing here imports it until the ray
engine is used. See ``docs/distributed.md``.
"""

from thresher.distributed.engine import ENGINE_NAMES, Engine, LocalEngine, RayEngine, get_engine
from thresher.distributed.replica import ModelSource
from thresher.distributed.runtime import INSTALL_HINT, RaySession, import_ray
from thresher.distributed.sweep import EvalJob, merge_seed_results

__all__ = [
    "ENGINE_NAMES",
    "INSTALL_HINT",
    "Engine",
    "EvalJob",
    "LocalEngine",
    "ModelSource",
    "RayEngine",
    "RaySession",
    "get_engine",
    "import_ray",
    "merge_seed_results",
]
