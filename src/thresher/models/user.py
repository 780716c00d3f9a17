"""The user's own code: ``module:attribute`` or ``path/to/file.py:attribute`` references.

A model name that is neither registered nor ``tv:``/``timm:`` is read as a reference to a
callable the user wrote: ``my_models:make_net`` (an importable module, looked up from the
current directory first, as ``python -m`` does) or ``nets/lenet.py:LeNet`` (a file). The
callable builds the architecture; when its signature takes ``num_classes`` and/or
``in_channels`` they are passed, so one factory serves every data set. The reference is stored
in the run, so every later command rebuilds the same architecture from the same code.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from torch import nn

from thresher.errors import ModelError
from thresher.models.registry import ModelSpec

RESERVED_PREFIXES = ("tv", "timm")


def is_user_reference(name: str) -> bool:
    """``True`` for ``module:attr`` / ``file.py:attr`` (not ``tv:``/``timm:``, not a bare name)."""
    module, sep, attr = name.rpartition(":")
    return bool(sep and module and attr) and module not in RESERVED_PREFIXES


def import_object(reference: str, *, what: str = "object") -> Any:
    """The object a ``module:attr`` or ``file.py:attr`` reference names.

    ``attr`` may be dotted (``pkg.mod:Class.factory``). The current directory is searched
    before the installed packages, so a file next to the user's data works without installing.

    Raises:
        ModelError: the reference is malformed, the module or file cannot be imported (the
            import's own error is named), or it has no such attribute.
    """
    module_name, sep, attr = reference.rpartition(":")
    if not (sep and module_name and attr):
        raise ModelError(
            f"{reference!r} is not a reference to a {what}; write module:name "
            "(e.g. my_models:make_net) or path/to/file.py:name"
        )
    module = _import_module(module_name, reference)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n in dir(module) if not n.startswith("_"))
            from thresher.errors import did_you_mean

            raise ModelError(
                f"{module_name} has no attribute {attr!r}{did_you_mean(part, names)}; "
                f"check the name after the colon in {reference!r}"
            )
        obj = getattr(obj, part)
    return obj


def _import_module(module_name: str, reference: str) -> Any:
    if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
        path = Path(module_name).expanduser().resolve()
        if not path.is_file():
            raise ModelError(f"{reference!r}: no such file {path}; check the path before ':'")
        # One module name per file, so two files called model.py never shadow each other.
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
        name = f"thresher_user_{path.stem}_{digest}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ModelError(f"{reference!r}: {path} is not an importable Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            del sys.modules[name]
            raise ModelError(f"importing {path} failed: {type(err).__name__}: {err}") from err
        return module
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        raise ModelError(
            f"{reference!r}: cannot import {module_name!r} ({err}); a model is a registered "
            "name, tv:<torchvision name>, timm:<timm name>, or your own module:callable (run "
            "from the folder that holds the module, add it to PYTHONPATH, or write "
            "path/to/file.py:callable)"
        ) from err
    except Exception as err:
        raise ModelError(f"importing {module_name} failed: {type(err).__name__}: {err}") from err


def build_user_model(reference: str, *, num_classes: int, in_channels: int) -> nn.Module:
    """Call the factory ``reference`` names, passing ``num_classes``/``in_channels`` when its
    signature takes them; the result must be an ``nn.Module``."""
    factory = import_object(reference, what="model factory")
    if not callable(factory):
        raise ModelError(
            f"{reference!r} names a {type(factory).__name__}, not a callable that builds a "
            "model; point it at a class or a function returning an nn.Module"
        )
    kwargs: dict[str, int] = {}
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature: call with nothing
        params = {}  # type: ignore[assignment]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if key in params or takes_any:
            kwargs[key] = value
    try:
        model = factory(**kwargs)
    except Exception as err:
        raise ModelError(
            f"{reference}({', '.join(f'{k}={v}' for k, v in kwargs.items())}) failed: "
            f"{type(err).__name__}: {err}"
        ) from err
    if not isinstance(model, nn.Module):
        raise ModelError(f"{reference!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


@functools.lru_cache(maxsize=64)
def user_spec(reference: str) -> ModelSpec:
    """A :class:`ModelSpec` for the user's factory: pixels in [0, 1] (normalise inside the
    module, or give ``mean``/``std`` to ``thresher init``), any input size, the Adam recipe,
    the feature layer found on the built model (input of its last ``nn.Linear``)."""
    import_object(reference, what="model factory")  # refuse a bad reference now
    return ModelSpec(
        name=reference,
        builder=functools.partial(build_user_model, reference),
        recipe="paper-mnist",
        feature_layer="",
        description=f"user model {reference}",
    )
