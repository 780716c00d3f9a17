"""Train a long-tailed (100:1, exp) run with LDAM-DRW: the model's recipe with loss="ldam",
the cosine classifier head LDAM is defined on, and deferred re-weighting over the last ~20% of
the epochs.

    python benchmarks/diagnostics_lt/train_ldam.py DATASET MODEL RECIPE OUT EPOCHS
    e.g. fashion-mnist fmnist_cnn paper-fmnist runs/diag/fmnist_ldam 12
         cifar10 cifar_small cifar-small runs/diag/cifar_lt_ldam 15

``PRECISION`` in the environment overrides the recipe's (as ``thresher train --precision``);
``HEAD=linear`` keeps the architecture's own head (how the runs before 2026-12-03 trained, and
why their LDAM-DRW collapsed: docs/diagnostics-results.md).
"""

import os
import sys

from thresher.train import get_recipe
from thresher.train.recipes import register_recipe
from thresher.workflows.run import DataSpec
from thresher.workflows.train import train_run

dataset, model, recipe, out, epochs_arg = sys.argv[1:6]
epochs = int(epochs_arg)
drw_epoch = int(0.8 * epochs) + 1
rec = register_recipe(
    get_recipe(recipe).replace(
        # LDAM (Cao et al.) has no label smoothing; recipes with it (cifar-fast) drop it
        name=f"{recipe}-ldam-drw",
        epochs=epochs,
        loss="ldam",
        drw_epoch=drw_epoch,
        label_smoothing=0.0,
        head=os.environ.get("HEAD") or "cosine",
    )
)
res = train_run(
    out,
    data=DataSpec(name=dataset, longtail_ratio=100.0, longtail_kind="exp"),
    model=model,
    recipe=rec.name,
    seed=0,
    device="cpu",
    overwrite=True,
    precision=os.environ.get("PRECISION") or None,
)
print(res.to_dict())
