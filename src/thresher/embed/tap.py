"""LayerTap: capture layer outputs with forward hooks that always remove themselves."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Literal

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from thresher.errors import ConfigError, LayerError
from thresher.models.layers import resolve_layer

Pooling = Literal["flatten", "avgpool", "none"]
POOLINGS: tuple[str, ...] = ("flatten", "avgpool", "none")


class _StopForward(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised from a hook to end the forward once every tapped layer has its output."""


class LayerTap:
    """Capture the outputs of named layers during forward passes (zennit's context pattern).

    Inside the ``with`` block every forward of ``model`` stores, per tapped layer, a detached
    *copy* of its output in :attr:`outputs` (so an in-place op later in the network, such as
    ``ReLU(inplace=True)`` right after a tapped conv, cannot change it). The hooks are removed
    when the block ends, also when it ends with an exception.

    Parameters
    ----------
    model:
        the network; only its named submodules can be tapped.
    layers:
        one layer name or several (dotted paths as in ``model.named_modules()``).
    pooling:
        ``"flatten"``: ``(B, ...) -> (B, prod(...))``; ``"avgpool"``: average every axis after
        the channel axis, ``(B, C, H, W) -> (B, C)`` (2-D outputs are kept as they are);
        ``"none"``: the output's own shape.
    stop_early:
        end the forward as soon as every tapped layer has fired, skipping the rest of the
        network; call :meth:`run` (not ``model(x)``) so the stop is caught.

    Attributes
    ----------
    outputs:
        ``{layer: tensor}`` of the latest forward, on the model's device; cleared at the start
        of each forward of ``model``. A layer called twice in one forward keeps its last call
        (its first one with ``stop_early``).

    Examples
    --------
    >>> with LayerTap(model, "flatten") as tap:  # doctest: +SKIP
    ...     logits = model(x)
    ...     features = tap.outputs["flatten"]  # (B, 1600)
    """

    def __init__(
        self,
        model: nn.Module,
        layers: str | Sequence[str],
        *,
        pooling: Pooling = "flatten",
        stop_early: bool = False,
    ) -> None:
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}")
        names = [layers] if isinstance(layers, str) else list(dict.fromkeys(layers))
        if not names:
            raise LayerError("no layer to tap; name at least one layer")
        self.model = model
        self.pooling = pooling
        self.stop_early = stop_early
        self.layers: tuple[str, ...] = tuple(names)
        self._modules = {name: resolve_layer(model, name) for name in names}
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list[RemovableHandle] = []
        self._into: dict[str, torch.Tensor] = {}

    # --- context ---------------------------------------------------------------------------
    def __enter__(self) -> LayerTap:
        if self._handles:
            raise LayerError("this LayerTap is already active; do not nest it with itself")
        try:
            self._handles.append(self.model.register_forward_pre_hook(self._clear))
            for name, module in self._modules.items():
                self._handles.append(module.register_forward_hook(self._hook_for(name)))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this tap registered (idempotent)."""
        while self._handles:
            self._handles.pop().remove()

    # --- running ---------------------------------------------------------------------------
    def run(self, x: torch.Tensor) -> object | None:
        """``model(x)``; ``None`` instead of the output when ``stop_early`` ended it."""
        if not self._handles:
            raise LayerError(
                "LayerTap.run needs an active tap; call it inside `with LayerTap(...)`"
            )
        try:
            return self.model(x)
        except _StopForward:
            return None

    def write_next_into(self, layer: str, destination: torch.Tensor) -> None:
        """Copy ``layer``'s next reduced output into ``destination`` instead of a new tensor.

        Saves an allocation per batch (e.g. writing straight into a preallocated result);
        ignored when the shapes turn out to differ.
        """
        if layer not in self._modules:
            raise LayerError(
                f"layer {layer!r} is not tapped here (tapped: {', '.join(self.layers)})"
            )
        self._into[layer] = destination

    # --- hooks -----------------------------------------------------------------------------
    def _clear(self, _module: nn.Module, _inputs: object) -> None:
        self.outputs.clear()

    def _hook_for(self, name: str) -> Callable[[nn.Module, object, object], None]:
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            if not isinstance(output, torch.Tensor) or output.ndim == 0:
                raise LayerError(
                    f"layer {name!r} outputs {type(output).__name__}, not a batched tensor; "
                    "tap one of its submodules instead"
                )
            last = self.stop_early and len(self.outputs | {name: output}) == len(self._modules)
            # Nothing runs after the last capture of an early stop, so it needs no copy.
            self.outputs[name] = reduce_output(
                output, self.pooling, into=self._into.pop(name, None), copy=not last
            )
            if last:
                raise _StopForward(
                    "LayerTap(stop_early=True) ended the forward; call tap.run(x), not model(x)"
                )

        return hook


def reduce_output(
    output: torch.Tensor,
    pooling: str,
    *,
    into: torch.Tensor | None = None,
    copy: bool = True,
) -> torch.Tensor:
    """``output`` reduced per sample, detached, as a copy (never a view of the original).

    ``into``: a tensor of the reduced shape to write the copy into (used when shapes match).
    ``copy=False`` allows a view when nothing can change ``output`` afterwards.
    """
    out = output.detach()
    if pooling == "avgpool" and out.ndim > 2:
        reduced = out.mean(dim=tuple(range(2, out.ndim)))  # a new tensor already
    elif pooling == "none":
        reduced = out
    else:
        reduced = out.reshape(out.shape[0], -1)
    if into is not None and into.shape == reduced.shape:
        return into.copy_(reduced)
    shares = reduced.untyped_storage().data_ptr() == out.untyped_storage().data_ptr()
    if copy and shares:
        return reduced.clone()  # copy it out before in-place ops downstream change it
    return reduced
