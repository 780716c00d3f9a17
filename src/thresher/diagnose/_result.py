"""Shared plumbing of the diagnostics' frozen result dataclasses: JSON round trips."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

import numpy as np

R = TypeVar("R", bound="DiagnosticResult")


def jsonable(value: Any) -> Any:
    """``value`` with arrays as (nested) lists and NaN as ``None`` (strict JSON)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            return [jsonable(v) for v in value.tolist()] if value.ndim else jsonable(float(value))
        return value.tolist()
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return jsonable(value.item())
    return value


def _nan_for_none(value: Any) -> Any:
    if isinstance(value, list):
        return [_nan_for_none(v) for v in value]
    return math.nan if value is None else value


class DiagnosticResult:
    """Mixin for frozen result dataclasses: ``to_dict``/``from_dict`` (arrays <-> lists)."""

    #: fields holding float arrays (``None`` in JSON means NaN)
    _float_arrays: tuple[str, ...] = ()
    #: fields holding integer arrays
    _int_arrays: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (arrays as lists, NaN as ``None``)."""
        return {
            f.name: jsonable(getattr(self, f.name))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
        }

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        """Inverse of :meth:`to_dict`."""
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in data and f.default is not dataclasses.MISSING:
                # a result stored before the field existed: the field's default says what
                # those results meant
                kwargs[f.name] = f.default
                continue
            value = data[f.name]
            if f.name in cls._float_arrays and value is not None:
                value = np.asarray(_nan_for_none(value), dtype=np.float64)
            elif f.name in cls._int_arrays and value is not None:
                value = np.asarray(value, dtype=np.int64)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        return cls(**kwargs)
