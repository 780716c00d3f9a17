"""What a worker needs to rebuild a model: its registry spec plus its weights as numpy arrays.

No module is pickled across processes: a replica is built from the registry name, class count
and channels with :func:`~thresher.models.create_model`, then loaded with the state dict.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from thresher.errors import ModelError


@dataclass(frozen=True, eq=False)
class ModelSource:
    """A registered architecture and its weights, cheap to send to workers.

    Attributes:
        name: registry name (``model_spec(name)``), e.g. ``"mnist_lenet"``.
        num_classes: outputs of the classifier.
        in_channels: image channels the model takes.
        state: the state dict as numpy arrays (parameters and buffers).
    """

    name: str
    num_classes: int
    in_channels: int
    state: dict[str, np.ndarray] = field(repr=False)

    @classmethod
    def from_module(
        cls, model: nn.Module, *, name: str, num_classes: int, in_channels: int
    ) -> ModelSource:
        """The source of a registered architecture ``name`` holding ``model``'s weights."""
        state: dict[str, np.ndarray] = {}
        for key, value in model.state_dict().items():
            if not isinstance(value, torch.Tensor) or value.dtype == torch.bfloat16:
                raise ModelError(
                    f"state entry {key!r} of {name} cannot travel as a numpy array "
                    f"({type(value).__name__}); convert the model to float32 first"
                )
            state[key] = value.detach().to("cpu").contiguous().numpy().copy()
        return cls(name=name, num_classes=num_classes, in_channels=in_channels, state=state)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str]) -> ModelSource:
        """The source of a ``save_checkpoint`` file (it names its architecture)."""
        from thresher.train.checkpoint import checkpoint_info, load_checkpoint

        info = checkpoint_info(path)
        model = load_checkpoint(path)  # raises ModelError when the file names no architecture
        return cls.from_module(
            model,
            name=str(info["model_name"]),
            num_classes=int(info["num_classes"]),
            in_channels=int(info.get("in_channels", 1)),
        )

    def build(self) -> nn.Module:
        """A fresh replica in eval mode on the CPU."""
        from thresher.models import create_model

        model = create_model(self.name, num_classes=self.num_classes, in_channels=self.in_channels)
        # from_numpy shares memory; copy so a replica never writes into a read-only Ray buffer.
        model.load_state_dict(
            {k: torch.from_numpy(np.array(v)) for k, v in self.state.items()}, strict=True
        )
        return model.eval()
