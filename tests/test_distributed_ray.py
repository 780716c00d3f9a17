"""The ray engine on a local 2-CPU Ray: same embeddings and tables as the local engine.

One Ray instance serves the whole module (starting Ray costs seconds); data are tiny (256
MNIST training images, 128 test images, one epoch).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from thresher.data import load_dataset
from thresher.distributed import EvalJob, LocalEngine, ModelSource, RayEngine, get_engine
from thresher.embed import extract
from thresher.models import create_model, model_spec, transform_for
from thresher.train import get_recipe

pytest.importorskip("ray")

# Ray Data's DataContext sets its own deprecated fields in its constructor (ray 2.60:
# use_push_based_shuffle, use_polars); only warnings raised in that module are ignored.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

MODEL = "mnist_lenet"


@pytest.fixture(scope="module")
def engine() -> Any:
    import ray

    # Workers unpickle the fault-injecting transform below by value: tests/ is not on their path.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    eng = RayEngine(num_cpus=2, workers=2)
    eng.session  # noqa: B018 - start Ray once for the module
    yield eng
    eng.close()
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def mnist(data_root: Path) -> Any:
    train = load_dataset("mnist", root=data_root, split="train", limit=256)
    test = load_dataset("mnist", root=data_root, split="test", limit=128)
    return train, test


@pytest.fixture(scope="module")
def source() -> ModelSource:
    torch.manual_seed(0)
    net = create_model(MODEL, num_classes=10, in_channels=1)
    return ModelSource.from_module(net, name=MODEL, num_classes=10, in_channels=1)


def _local_embeddings(source: ModelSource, ds: Any) -> Any:
    return extract(
        source.build(),
        ds,
        layer=model_spec(MODEL).feature_layer,
        transform=transform_for(MODEL),
        batch_size=64,
    )


def test_ray_embeddings_equal_the_local_engine(engine: RayEngine, mnist: Any, source: Any) -> None:
    train, _ = mnist
    local = _local_embeddings(source, train)
    remote = engine.extract(
        source,
        train,
        layer=model_spec(MODEL).feature_layer,
        transform=transform_for(MODEL),
        batch_size=64,
    )
    np.testing.assert_array_equal(remote.ids, local.ids)
    np.testing.assert_array_equal(remote.labels, local.labels)
    np.testing.assert_allclose(remote.values, local.values, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(remote.predictions, local.predictions)
    assert remote.model_fingerprint == local.model_fingerprint
    assert remote.dataset_fingerprint == local.dataset_fingerprint


@dataclass(frozen=True)
class ExitOnce:
    """A transform whose first call anywhere kills its process (a worker dying mid-shard)."""

    marker: str
    inner: Any

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)
        return self.inner(x)


def test_a_replica_killed_mid_shard_is_restarted_and_its_shard_rerun(
    engine: RayEngine, mnist: Any, source: Any, tmp_path: Path
) -> None:
    train = mnist[0].take(np.arange(128))
    marker = tmp_path / "died-once"
    one_replica = RayEngine(workers=1)  # shares the module's Ray; fewer processes to start
    remote = one_replica.extract(
        source,
        train,
        layer=model_spec(MODEL).feature_layer,
        transform=ExitOnce(str(marker), transform_for(MODEL)),
        batch_size=64,
    )
    assert marker.exists()  # a replica really died
    local = _local_embeddings(source, train)
    np.testing.assert_array_equal(remote.ids, local.ids)
    np.testing.assert_allclose(remote.values, local.values, rtol=1e-5, atol=1e-5)


def _jobs(train: Any) -> list[EvalJob]:
    recipe = get_recipe(model_spec(MODEL).recipe).replace(epochs=1)
    half = train.ids[::2]
    return [
        EvalJob(name="full", model=MODEL, recipe=recipe, seeds=(0, 1)),
        EvalJob(name="half", model=MODEL, recipe=recipe, seeds=(1,), subset_ids=half),
    ]


def _table(result: Any) -> Any:
    return result.to_table().drop_columns(["train_seconds"])  # wall time differs by nature


def test_ray_sweep_tables_equal_the_local_engine(
    engine: RayEngine, mnist: Any, tmp_path: Path
) -> None:
    train, test = mnist
    jobs = _jobs(train)
    local = LocalEngine().sweep(jobs, train=train, test=test, device="cpu")
    remote = engine.sweep(jobs, train=train, test=test, store=tmp_path / "sweep")
    for a, b in zip(local, remote, strict=True):
        assert _table(b).equals(_table(a))
        assert b.seeds == a.seeds
        assert b.subset_size == a.subset_size
    stored = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json"))
    assert stored == ["sweep/full/seed-0.json", "sweep/full/seed-1.json", "sweep/half/seed-1.json"]


def test_a_restarted_sweep_reuses_the_results_already_written(
    engine: RayEngine, mnist: Any, tmp_path: Path
) -> None:
    import json

    train, test = mnist
    jobs = _jobs(train)
    store = tmp_path / "sweep"
    # The first run got through one job before it was interrupted.
    first = engine.sweep(jobs[:1], train=train, test=test, store=store)
    seed0 = store / "full" / "seed-0.json"
    stored = json.loads(seed0.read_text())
    stored["result"]["accuracy"] = [0.125]  # a mark only a reused file can carry
    seed0.write_text(json.dumps(stored))
    again = engine.sweep(jobs, train=train, test=test, store=store)
    assert again[0].accuracy[0] == 0.125
    assert again[0].accuracy[1] == first[0].accuracy[1]
    assert (store / "half" / "seed-1.json").exists()
    # A different recipe is a different result: the stored file is not reused for it.
    other = EvalJob(name="full", model=MODEL, recipe=jobs[0].recipe.replace(epochs=2), seeds=(0,))
    assert engine.sweep([other], train=train, test=test, store=store)[0].accuracy[0] != 0.125


def test_get_engine_ray_reuses_the_running_ray(engine: RayEngine) -> None:
    eng = get_engine("ray")
    assert isinstance(eng, RayEngine)
    assert not eng.session.started  # connected to the module's Ray, so it will not stop it
    eng.close()
    import ray

    assert ray.is_initialized()


@pytest.fixture(scope="module")
def run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from thresher.workflows.run import DataSpec, open_run
    from thresher.workflows.train import train_run

    out = tmp_path_factory.mktemp("ray-run") / "run"
    train_run(out, data=DataSpec("mnist", root=str(data_root), limit=256), model=MODEL, epochs=1)
    return open_run(out)


def test_ray_embeddings_land_in_the_run_cache_that_the_local_engine_reads(
    engine: RayEngine, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import thresher.embed.cache as cache
    from thresher.workflows.embed import embed_run, embed_run_on

    remote = embed_run_on(engine, run)
    assert remote.cache_key is not None
    assert run.manifest["steps"]["embed"]

    def no_model_run(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the local engine recomputed embeddings the ray engine stored")

    monkeypatch.setattr(cache, "run_extraction", no_model_run)
    local = embed_run(run)  # a cache hit: same key, same files
    assert local.cache_key == remote.cache_key
    np.testing.assert_array_equal(local.values, remote.values)
    np.testing.assert_array_equal(local.predictions, remote.predictions)


def test_evaluate_subsets_on_ray_store_results_like_evaluate_run(
    engine: RayEngine, run: Any
) -> None:
    from thresher.workflows.evaluate import evaluate_subsets_run
    from thresher.workflows.run import run_dataset

    ids = run_dataset(run, "train").ids[:128]
    results = evaluate_subsets_run(engine, run, {"first 128": ids}, seeds=1, epochs=1)
    stored = run.read_json("evaluate/first_128.json")
    assert stored["accuracy"] == results["first 128"].accuracy.tolist()
    assert stored["subset_size"] == 128
    assert run.exists("evaluate/first_128.parquet")
    assert run.exists("sweep/first_128/seed-0.json")


def test_another_process_connects_by_address_and_leaves_the_cluster_running(
    engine: RayEngine,
) -> None:
    import subprocess

    import ray

    address = ray.get_runtime_context().gcs_address
    code = (
        "from thresher.distributed import get_engine\n"
        f"eng = get_engine('ray', address={address!r})\n"
        "print(eng.session.resources()['CPU'])\n"
        "eng.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "2.0"  # the module's 2-CPU cluster
    assert ray.cluster_resources()["CPU"] == 2.0  # its close() only disconnected it


def test_cli_engine_ray_on_embed_and_compare_matches_the_local_engine(
    engine: RayEngine, run: Any, cli: Any
) -> None:
    import json

    code, stdout, err = cli(["embed", str(run.path), "--engine", "ray", "--json"])
    assert code == 0, err
    assert json.loads(stdout)["shape"] == [256, 1600]
    args = ["compare", str(run.path), "--methods", "random", "--keep", "50", "--seeds", "1"]
    args += ["--epochs", "1", "--json"]
    code, stdout, err = cli([*args, "--engine", "ray"])
    assert code == 0, err
    remote = json.loads(stdout)
    for name in ("full", "random-keep50"):
        (run.path / "compare" / f"{name}.json").unlink()  # force the local engine to retrain
    code, stdout, err = cli(args)
    assert code == 0, err
    local = json.loads(stdout)
    assert remote["mean"] == local["mean"]
    assert remote["full"] == local["full"]
