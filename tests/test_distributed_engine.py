"""Engines without a Ray cluster: choosing one, the install hint, sharding, merging, storing."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from thresher.data import load_dataset
from thresher.distributed import EvalJob, LocalEngine, ModelSource, get_engine, merge_seed_results
from thresher.distributed.ray_extract import plan_shards
from thresher.distributed.sweep import read_seed_result, seed_key, write_seed_result
from thresher.embed import extract
from thresher.errors import ConfigError
from thresher.evaluate import evaluate
from thresher.models import create_model, model_spec, transform_for
from thresher.train import get_recipe

MODEL = "mnist_lenet"


@pytest.fixture(scope="module")
def mnist(data_root: Path) -> Any:
    return (
        load_dataset("mnist", root=data_root, split="train", limit=256),
        load_dataset("mnist", root=data_root, split="test", limit=128),
    )


def test_local_is_the_default_engine() -> None:
    assert isinstance(get_engine(), LocalEngine)


def test_an_unknown_engine_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"local.*ray"):
        get_engine("spark")


def test_a_ray_address_needs_the_ray_engine() -> None:
    with pytest.raises(ConfigError, match="--engine ray"):
        get_engine("local", address="auto")


def test_asking_for_ray_without_ray_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = importlib.import_module

    def no_ray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", no_ray)
    with pytest.raises(ConfigError, match=r"pip install 'thresher\[ray\]'"):
        get_engine("ray")


def test_shards_are_whole_batches_covering_every_row_once() -> None:
    plan = plan_shards(
        1000, batch_size=64, shard_size=None, workers=2, cpus_per_worker=1, gpus_per_worker=0
    )
    starts = [a for a, _ in plan.shards]
    assert all(a % 64 == 0 for a in starts)
    covered = np.concatenate([np.arange(a, b) for a, b in plan.shards])
    np.testing.assert_array_equal(covered, np.arange(1000))
    assert len(plan.shards) >= 2  # both workers get work
    with pytest.raises(ConfigError, match="multiple of batch_size"):
        plan_shards(
            1000, batch_size=64, shard_size=100, workers=2, cpus_per_worker=1, gpus_per_worker=0
        )


def test_a_model_source_rebuilds_the_same_model(mnist: Any) -> None:
    torch.manual_seed(3)
    net = create_model(MODEL, num_classes=10, in_channels=1).eval()
    source = ModelSource.from_module(net, name=MODEL, num_classes=10, in_channels=1)
    layer = model_spec(MODEL).feature_layer
    a = extract(net, mnist[0], layer=layer, transform=transform_for(MODEL))
    b = LocalEngine().extract(source, mnist[0], layer=layer, transform=transform_for(MODEL))
    np.testing.assert_array_equal(a.values, b.values)
    assert a.model_fingerprint == b.model_fingerprint


def test_single_seed_results_merge_into_the_multi_seed_evaluation(mnist: Any) -> None:
    train, test = mnist
    recipe = get_recipe(model_spec(MODEL).recipe).replace(epochs=1)
    both = evaluate(train, test, model=MODEL, recipe=recipe, seeds=[0, 1], device="cpu")
    parts = [
        evaluate(train, test, model=MODEL, recipe=recipe, seeds=[s], device="cpu").to_dict()
        for s in (0, 1)
    ]
    merged = merge_seed_results(parts)
    columns = [c for c in both.to_table().column_names if c != "train_seconds"]
    assert merged.to_table().select(columns).equals(both.to_table().select(columns))
    assert merged.accuracy_std == both.accuracy_std


def test_a_stored_seed_result_is_read_back_only_for_its_key(tmp_path: Path) -> None:
    recipe = get_recipe(model_spec(MODEL).recipe)
    job = EvalJob(name="half", model=MODEL, recipe=recipe, seeds=(0,), subset_ids=np.array(["a"]))
    key = seed_key(job, 0, data="fp")
    path = tmp_path / "half" / "seed-0.json"
    write_seed_result(path, key, {"accuracy": [0.5]})
    assert read_seed_result(path, key) == {"accuracy": [0.5]}
    assert read_seed_result(path, seed_key(job, 1, data="fp")) is None
    assert read_seed_result(path, seed_key(job, 0, data="other")) is None
    path.write_text("{ truncated")
    assert read_seed_result(path, key) is None
    assert not list(tmp_path.rglob("*.tmp"))


def test_job_names_must_be_file_names_and_seeds_distinct() -> None:
    recipe = get_recipe(model_spec(MODEL).recipe)
    with pytest.raises(ConfigError, match="letters, digits"):
        EvalJob(name="../x", model=MODEL, recipe=recipe, seeds=(0,))
    with pytest.raises(ConfigError, match="distinct seeds"):
        EvalJob(name="x", model=MODEL, recipe=recipe, seeds=(1, 1))
