"""cached_extract(): reuse, invalidation, streamed writes, damaged entries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from thresher.data.types import ImageDataset
from thresher.embed import cached_extract, extract, load_embeddings
from thresher.embed.cache import NpyStreamWriter, entry_dir
from thresher.errors import ConfigError, DataError, RunError
from thresher.models import InputTransform, create_model, transform_for
from thresher.store import Run

TRANSFORM = transform_for("mnist_lenet")


class ForwardCounter:
    def __init__(self, model: nn.Module) -> None:
        self.calls = 0
        model.register_forward_pre_hook(self._count)

    def _count(self, _module: nn.Module, _inputs: object) -> None:
        self.calls += 1


@pytest.fixture
def lenet() -> nn.Module:
    torch.manual_seed(0)
    return create_model("mnist_lenet", num_classes=10)


@pytest.fixture
def digits() -> ImageDataset:
    rng = np.random.default_rng(0)
    return ImageDataset(
        images=rng.integers(0, 256, (120, 1, 28, 28), dtype=np.uint8),
        labels=rng.integers(0, 10, 120),
        ids=np.array([f"img{i:03d}" for i in range(120)]),
    )


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run.create(tmp_path / "run", config={})


def test_second_call_reuses_the_cache_without_running_the_model(
    run: Run, lenet: nn.Module, digits: ImageDataset
) -> None:
    counter = ForwardCounter(lenet)
    first = cached_extract(run, lenet, digits, layer="flatten", transform=TRANSFORM, batch_size=50)
    assert counter.calls == 3
    second = cached_extract(run, lenet, digits, layer="flatten", transform=TRANSFORM)
    assert counter.calls == 3
    assert second.cache_key == first.cache_key
    assert isinstance(second.values, np.memmap)
    np.testing.assert_array_equal(second.values, first.values)
    np.testing.assert_array_equal(second.ids, digits.ids)
    np.testing.assert_array_equal(second.labels, digits.labels)
    np.testing.assert_array_equal(second.predictions, first.predictions)
    meta = run.read_json(f"{entry_dir(first.cache_key)}/meta.json")
    assert meta["shape"] == [120, 1600]
    assert meta["layer"] == "flatten"
    # the cached values are those extract() gives
    np.testing.assert_array_equal(
        first.values, extract(lenet, digits, transform=TRANSFORM, batch_size=50).values
    )


def test_changed_weights_layer_or_transform_recompute(
    run: Run, lenet: nn.Module, digits: ImageDataset
) -> None:
    counter = ForwardCounter(lenet)
    base = cached_extract(run, lenet, digits, layer="flatten", transform=TRANSFORM)
    calls = counter.calls
    with torch.no_grad():
        lenet.conv1.weight[0, 0, 0, 0] += 1.0
    changed = cached_extract(run, lenet, digits, layer="flatten", transform=TRANSFORM)
    assert counter.calls > calls
    assert changed.cache_key != base.cache_key
    assert not np.array_equal(changed.values, base.values)
    calls = counter.calls
    other_tf = InputTransform(mean=(0.5,), std=(0.5,), size=(28, 28))
    assert cached_extract(
        run, lenet, digits, layer="flatten", transform=other_tf
    ).cache_key not in {
        base.cache_key,
        changed.cache_key,
    }
    pooled = cached_extract(
        run, lenet, digits, layer="conv2", transform=TRANSFORM, pooling="avgpool"
    )
    assert pooled.values.shape == (120, 64)
    assert counter.calls > calls + 1


def test_large_outputs_stream_to_disk_with_the_same_values(
    run: Run, lenet: nn.Module, digits: ImageDataset
) -> None:
    in_ram = extract(lenet, digits, transform=TRANSFORM, layer="conv1", batch_size=32)
    streamed = cached_extract(
        run, lenet, digits, layer="conv1", transform=TRANSFORM, batch_size=32, in_memory_limit=0
    )
    np.testing.assert_array_equal(streamed.values, in_ram.values)
    on_disk = np.load(run.file(f"{entry_dir(streamed.cache_key)}/values.npy"))
    assert on_disk.shape == (120, 32 * 26 * 26)
    assert on_disk.dtype == np.float32


def test_unlabelled_stream_of_unknown_length_needs_and_uses_a_fingerprint(
    run: Run, lenet: nn.Module, digits: ImageDataset
) -> None:
    def stream():  # a generator: its length is unknown until it ends
        for i in range(0, 120, 25):
            yield digits.images[i : i + 25], digits.ids[i : i + 25]

    with pytest.raises(ConfigError, match="dataset_fingerprint"):
        cached_extract(run, lenet, stream(), layer="flatten", transform=TRANSFORM)
    emb = cached_extract(
        run, lenet, stream(), layer="flatten", transform=TRANSFORM, dataset_fingerprint="files-v1"
    )
    assert emb.labels is None
    assert emb.dataset_fingerprint == "files-v1"
    np.testing.assert_array_equal(emb.ids, digits.ids)
    again = load_embeddings(run, emb.cache_key)
    assert again.labels is None
    np.testing.assert_array_equal(again.values, emb.values)
    reference = extract(lenet, digits, transform=TRANSFORM)
    np.testing.assert_allclose(emb.values, reference.values, rtol=1e-6, atol=1e-6)


def test_failed_extraction_leaves_no_entry_and_no_temporary_file(run: Run) -> None:
    class Normalise(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            flat = x.flatten(1)
            return flat / flat.sum(1, keepdim=True)

    model = nn.Sequential(Normalise(), nn.Linear(16, 2))
    images = np.full((12, 1, 4, 4), 3, dtype=np.uint8)
    images[9] = 0
    ds = ImageDataset(images=images, labels=None, ids=np.array([f"x{i}" for i in range(12)]))
    with pytest.raises(DataError, match="'x9'"):
        cached_extract(
            run, model, ds, layer="0", transform=InputTransform(), batch_size=4, in_memory_limit=0
        )
    leftovers = [p for p in (run.path / "embeddings").rglob("*") if p.is_file()]
    assert leftovers == []


def test_damaged_entry_is_recomputed_and_unknown_key_refused(
    run: Run, lenet: nn.Module, digits: ImageDataset
) -> None:
    counter = ForwardCounter(lenet)
    first = cached_extract(run, lenet, digits, layer="flatten", transform=TRANSFORM)
    calls = counter.calls
    expected = np.array(first.values)
    damaged = run.file(f"{entry_dir(first.cache_key)}/values.npy")
    damaged.unlink()  # a new file: truncating the memory-mapped one would crash `first`
    damaged.write_bytes(b"garbage")
    again = cached_extract(run, lenet, digits, layer="flatten", transform=TRANSFORM)
    assert counter.calls > calls
    np.testing.assert_array_equal(again.values, expected)
    with pytest.raises(RunError, match="no complete embeddings entry"):
        load_embeddings(run, "0123456789abcdef")


def test_an_early_stopped_entry_is_not_reused_when_predictions_are_wanted(
    run: Run, lenet: nn.Module, digits: ImageDataset
) -> None:
    counter = ForwardCounter(lenet)
    early = cached_extract(
        run, lenet, digits, layer="conv1", transform=TRANSFORM, stop_early=True, limit=20
    )
    assert early.predictions is None
    calls = counter.calls
    full = cached_extract(run, lenet, digits, layer="conv1", transform=TRANSFORM, limit=20)
    assert counter.calls > calls
    assert full.predictions is not None
    assert full.predictions.shape == (20,)
    calls = counter.calls
    cached_extract(
        run, lenet, digits, layer="conv1", transform=TRANSFORM, stop_early=True, limit=20
    )
    assert counter.calls == calls  # a full entry serves an early-stop request


def test_npy_stream_writer_appends_blocks_and_aborts_cleanly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    blocks = [rng.random((n, 7), dtype=np.float32) for n in (5, 1, 12)]
    writer = NpyStreamWriter(tmp_path / "v.npy")
    for b in blocks:
        writer.append(b)
    assert not (tmp_path / "v.npy").exists()  # nothing visible before finish
    out = writer.finish()
    np.testing.assert_array_equal(out, np.concatenate(blocks))
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), np.concatenate(blocks))

    aborted = NpyStreamWriter(tmp_path / "w.npy")
    aborted.append(blocks[0])
    aborted.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.npy"]


@pytest.mark.skipif(
    not __import__("thresher.precision", fromlist=["x"]).cpu_bf16_supported(),
    reason="CPU without bf16 instructions",
)
def test_bf16_embeddings_are_their_own_entry_and_close_to_fp32(
    run: Run, lenet: nn.Module, digits: ImageDataset
) -> None:
    from thresher.embed.cache import cache_key

    ref = cached_extract(run, lenet, digits, layer="flatten", transform=TRANSFORM)
    low = cached_extract(run, lenet, digits, layer="flatten", transform=TRANSFORM, precision="auto")
    assert low.cache_key != ref.cache_key
    assert low.values.dtype == np.float32
    a, b = np.asarray(ref.values, np.float64), np.asarray(low.values, np.float64)
    assert not np.array_equal(a, b)  # bf16 really ran
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() > 0.99
    # fp32 entries keep the key they had before precision existed
    parts = {"model_fingerprint": "m", "layer": "l", "pooling": "flatten", "transform": "t"}
    assert cache_key(**parts, dataset_fingerprint="d") == cache_key(
        **parts, dataset_fingerprint="d", precision="fp32"
    )
    with pytest.raises(ConfigError, match="unknown precision 'half'"):
        cached_extract(run, lenet, digits, layer="flatten", transform=TRANSFORM, precision="half")


def test_a_killed_extraction_resumes_at_the_first_missing_part(
    run: Run, lenet: nn.Module, digits: ImageDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    from thresher.embed import cache

    monkeypatch.setattr(cache, "RESUME_CHUNK", 20)  # parts of 20 rows: 6 parts of 120
    counter = ForwardCounter(lenet)
    real = cache.run_extraction
    calls = {"n": 0}

    def dies_on_the_fourth_part(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # as a kill would: nothing after the third part is kept
        return real(*args, **kwargs)

    monkeypatch.setattr(cache, "run_extraction", dies_on_the_fourth_part)
    with pytest.raises(KeyboardInterrupt):
        cached_extract(run, lenet, digits, layer="flatten", transform=TRANSFORM, batch_size=10)
    monkeypatch.setattr(cache, "run_extraction", real)
    assert counter.calls == 6  # 3 parts of 2 batches
    resumed = cached_extract(
        run, lenet, digits, layer="flatten", transform=TRANSFORM, batch_size=10
    )
    assert counter.calls == 12  # only the 3 missing parts ran
    whole = extract(lenet, digits, layer="flatten", transform=TRANSFORM, batch_size=10)
    np.testing.assert_array_equal(np.asarray(resumed.values), whole.values)  # same bytes
    np.testing.assert_array_equal(resumed.predictions, whole.predictions)
    np.testing.assert_array_equal(resumed.ids, digits.ids)
    assert not (run.path / entry_dir(resumed.cache_key) / "parts").exists()
    again = load_embeddings(run, resumed.cache_key)
    np.testing.assert_array_equal(np.asarray(again.values), whole.values)
