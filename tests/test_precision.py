"""Training precision: resolution, errors, determinism and accuracy under bf16."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thresher.data import load_dataset
from thresher.errors import ConfigError
from thresher.precision import cpu_bf16_supported, resolve_precision, supported
from thresher.train import Recipe, fit, get_recipe, predict

CPU = torch.device("cpu")
needs_bf16 = pytest.mark.skipif(not cpu_bf16_supported(), reason="CPU without AVX512-BF16/AMX")


def test_auto_resolves_to_what_the_cpu_runs_and_refusals_name_the_choices() -> None:
    assert resolve_precision("auto", CPU) == ("bf16" if cpu_bf16_supported() else "fp32")
    assert resolve_precision("fp32", CPU) == "fp32"
    assert resolve_precision(None, CPU) == "fp32"
    with pytest.raises(ConfigError, match="fp16 training needs a CUDA GPU; this device supports"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", CPU)
    with pytest.raises(ConfigError, match="unknown precision 'half'"):
        Recipe(precision="half")
    assert "fp32" in supported(CPU)


@needs_bf16
def test_bf16_training_is_deterministic_and_as_accurate_as_fp32() -> None:
    train = load_dataset("digits", split="train")
    test = load_dataset("digits", split="test")
    rec = get_recipe("paper-mnist").replace(epochs=4)
    a = fit("mnist_lenet", train, recipe=rec, seed=3, precision="auto")
    b = fit("mnist_lenet", train, recipe=rec, seed=3, precision="bf16")
    ref = fit("mnist_lenet", train, recipe=rec, seed=3, precision="fp32")
    assert a.precision == b.precision == "bf16"
    assert ref.precision == "fp32"
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)  # same seed, precision, device, threads: same weights
        assert pa.is_contiguous()  # channels-last during training only
    labels = np.asarray(test.labels)
    acc = {
        name: float((predict(r.model, test, transform="mnist_lenet").argmax(1) == labels).mean())
        for name, r in (("bf16", a), ("fp32", ref))
    }
    assert acc["bf16"] > 0.85
    assert abs(acc["bf16"] - acc["fp32"]) < 0.03, acc
    bf16_logits = predict(a.model, test, transform="mnist_lenet", precision="bf16")
    assert bf16_logits.dtype == np.float32
    assert (bf16_logits.argmax(1) == labels).mean() > 0.85


def test_train_run_stores_the_resolved_precision(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from thresher.workflows.run import DataSpec, open_run
    from thresher.workflows.train import train_run

    res = train_run(
        tmp_path / "r", data=DataSpec(name="digits", limit=200), model="mnist_lenet", epochs=1,
        precision="auto",
    )  # fmt: skip
    want = "bf16" if cpu_bf16_supported() else "fp32"
    assert res.precision == want
    assert open_run(tmp_path / "r").config["recipe"]["precision"] == want
    with pytest.raises(ConfigError, match="fp16"):
        train_run(
            tmp_path / "bad", data=DataSpec(name="digits", limit=200), model="mnist_lenet",
            epochs=1, precision="fp16",
        )  # fmt: skip
    assert not (tmp_path / "bad").exists()  # refused before anything was written


@pytest.mark.gpu
def test_auto_precision_trains_on_cuda() -> None:
    dev = torch.device("cuda")
    train = load_dataset("digits", split="train")
    rec = get_recipe("paper-mnist").replace(epochs=1)
    res = fit("mnist_lenet", train, recipe=rec, seed=0, device="cuda", precision="auto")
    assert res.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    assert np.isfinite(res.final_loss)
    assert resolve_precision("fp16", dev) == "fp16"


def test_a_stored_precision_this_cpu_lacks_is_refused_before_any_work(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import json

    import thresher.precision
    from thresher.workflows.compare import compare_run
    from thresher.workflows.evaluate import evaluate_run
    from thresher.workflows.run import DataSpec, open_run, run_recipe
    from thresher.workflows.train import train_run

    train_run(
        tmp_path / "r", data=DataSpec(name="digits", limit=200), model="mnist_lenet", epochs=1,
        precision="fp32",
    )  # fmt: skip
    # a run trained in bf16 on another machine, opened on a CPU without AVX512-BF16/AMX
    manifest = tmp_path / "r" / "manifest.json"
    stored = json.loads(manifest.read_text())
    stored["config"]["recipe"]["precision"] = "bf16"
    manifest.write_text(json.dumps(stored))
    monkeypatch.setattr(thresher.precision, "cpu_bf16_supported", lambda: False)
    before = sorted(p.name for p in (tmp_path / "r").iterdir())
    run = open_run(tmp_path / "r")
    with pytest.raises(ConfigError, match=r"trains its models in bf16 \(stored in the run's"):
        compare_run(run, methods=("random",), keeps=(0.5,), seeds=1, device="cpu")
    with pytest.raises(ConfigError, match="or pass --precision fp32 to train in fp32"):
        evaluate_run(run, subset_ids=None, seeds=1, device="cpu")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == before  # nothing written
    # the fix the message names works, and a distributed engine checks on its workers instead
    assert run_recipe(run, precision="fp32", check_device=True).precision == "fp32"
    assert run_recipe(run, device="cpu").precision == "bf16"
