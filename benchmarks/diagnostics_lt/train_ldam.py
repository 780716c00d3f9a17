"""Fashion-MNIST-LT (100:1, exp) with fmnist_cnn and LDAM-DRW: the paper-fmnist recipe with
loss="ldam" and deferred re-weighting over the last ~20% of the epochs."""

import sys

from thresher.runs import DataSpec, train_run
from thresher.train import get_recipe
from thresher.train.recipes import register_recipe

epochs = int(sys.argv[2])
drw_epoch = int(0.8 * epochs) + 1
rec = register_recipe(
    get_recipe("paper-fmnist").replace(
        name="paper-fmnist-ldam-drw", epochs=epochs, loss="ldam", drw_epoch=drw_epoch
    )
)
res = train_run(
    sys.argv[1],
    data=DataSpec(name="fashion-mnist", longtail_ratio=100.0, longtail_kind="exp"),
    model="fmnist_cnn",
    recipe=rec.name,
    seed=0,
    device="cpu",
    overwrite=True,
)
print(res.to_dict())
