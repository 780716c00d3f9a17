"""extract(): data sets and unlabelled streams, order, determinism, validation."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from thresher.data.types import ImageDataset
from thresher.embed import Embeddings, extract
from thresher.errors import ConfigError, DataError, LayerError, ModelError
from thresher.models import InputTransform, create_model, transform_for

TRANSFORM = transform_for("mnist_lenet")


@pytest.fixture
def lenet() -> nn.Module:
    torch.manual_seed(0)
    return create_model("mnist_lenet", num_classes=10)


@pytest.fixture
def digits() -> ImageDataset:
    rng = np.random.default_rng(0)
    return ImageDataset(
        images=rng.integers(0, 256, (300, 1, 28, 28), dtype=np.uint8),
        labels=rng.integers(0, 10, 300),
        ids=np.array([f"img{i:03d}" for i in range(300)]),
        name="synthetic",
    )


def _stream(ds: ImageDataset, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(ds.images[i : i + size], ds.ids[i : i + size]) for i in range(0, len(ds), size)]


def test_dataset_extraction_at_the_default_penultimate_layer(
    lenet: nn.Module, digits: ImageDataset
) -> None:
    emb = extract(lenet, digits, transform=TRANSFORM, batch_size=64, device="cpu")
    assert emb.layer == "flatten"
    assert emb.values.shape == (300, 1600)
    assert emb.values.dtype == np.float32
    np.testing.assert_array_equal(emb.ids, digits.ids)
    np.testing.assert_array_equal(emb.labels, digits.labels)
    assert emb.dataset_fingerprint == digits.fingerprint()
    with torch.inference_mode():
        logits = lenet.eval()(TRANSFORM(torch.from_numpy(digits.images)))
        feats = lenet[:8](TRANSFORM(torch.from_numpy(digits.images)))
    np.testing.assert_array_equal(emb.predictions, logits.argmax(1).numpy())
    np.testing.assert_allclose(emb.values, feats.numpy(), rtol=1e-5, atol=1e-5)


def test_unlabelled_stream_keeps_id_order_and_has_no_labels(
    lenet: nn.Module, digits: ImageDataset
) -> None:
    from_ds = extract(lenet, digits, transform=TRANSFORM, batch_size=50)
    stream = iter(_stream(digits, 50))  # a one-shot iterator, no len()
    emb = extract(lenet, stream, transform=TRANSFORM)
    assert emb.labels is None
    np.testing.assert_array_equal(emb.ids, digits.ids)
    np.testing.assert_allclose(emb.values, from_ds.values, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(emb.predictions, from_ds.predictions)


def test_labels_travel_with_streamed_batches(lenet: nn.Module, digits: ImageDataset) -> None:
    labelled = [(x, ids, torch.as_tensor(y)) for (x, ids), y in zip(
        _stream(digits, 50), np.split(digits.labels, range(50, len(digits), 50)), strict=True
    )]  # fmt: skip
    emb = extract(lenet, labelled, transform=TRANSFORM, limit=120)
    np.testing.assert_array_equal(emb.labels, digits.labels[:120])
    np.testing.assert_array_equal(emb.ids, digits.ids[:120])


def test_stream_of_tensors_with_integer_ids_and_a_limit(lenet: nn.Module) -> None:
    batches = [(torch.rand(8, 1, 28, 28), torch.arange(i, i + 8)) for i in range(0, 32, 8)]
    emb = extract(lenet, batches, transform=None, layer="pool2", pooling="avgpool", limit=20)
    assert emb.values.shape == (20, 64)
    assert emb.ids.tolist() == [str(i) for i in range(20)]


def test_a_stream_with_its_own_fingerprint_is_identified_by_it(
    lenet: nn.Module, digits: ImageDataset
) -> None:
    class Files:  # re-iterable with a length, like a loader over a file list
        def __len__(self) -> int:
            return 3

        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter(_stream(digits, 100))

        def fingerprint(self) -> str:
            return "file-list-sha"

    emb = extract(lenet, Files(), transform=TRANSFORM, layer="pool2", pooling="avgpool")
    assert emb.dataset_fingerprint == "file-list-sha"
    assert emb.values.shape == (300, 64)
    plain = extract(lenet, iter(_stream(digits, 100)), transform=TRANSFORM, layer="pool2")
    other = extract(lenet, iter(_stream(digits.take(np.arange(299, -1, -1)), 100)),
                    transform=TRANSFORM, layer="pool2")  # fmt: skip
    assert plain.dataset_fingerprint != other.dataset_fingerprint  # hashed from ids and pixels


def test_extraction_is_deterministic(lenet: nn.Module, digits: ImageDataset) -> None:
    a = extract(lenet, digits, transform=TRANSFORM, batch_size=128)
    b = extract(lenet, digits, transform=TRANSFORM, batch_size=128)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.model_fingerprint == b.model_fingerprint


def test_rows_follow_ids_for_a_random_subset_order(lenet: nn.Module, digits: ImageDataset) -> None:
    full = extract(lenet, digits, transform=TRANSFORM, batch_size=64)
    order = np.random.default_rng(1).permutation(len(digits))[:120]
    sub = extract(lenet, digits.take(order), transform=TRANSFORM, batch_size=32)
    np.testing.assert_array_equal(sub.ids, digits.ids[order])
    np.testing.assert_array_equal(sub.labels, digits.labels[order])
    np.testing.assert_allclose(sub.values, full.values[order], rtol=1e-5, atol=1e-5)


def test_early_layer_with_stop_early_matches_full_forward(
    lenet: nn.Module, digits: ImageDataset
) -> None:
    full = extract(lenet, digits, transform=TRANSFORM, layer="conv1", limit=40)
    early = extract(lenet, digits, transform=TRANSFORM, layer="conv1", limit=40, stop_early=True)
    assert early.values.shape == (40, 32 * 26 * 26)
    assert early.predictions is None
    assert full.predictions is not None
    np.testing.assert_array_equal(early.values, full.values)
    np.testing.assert_array_equal(early.ids, digits.ids[:40])
    assert early.dataset_fingerprint == digits.take(np.arange(40)).fingerprint()


def test_model_state_and_mode_are_restored(lenet: nn.Module, digits: ImageDataset) -> None:
    lenet.train()
    before = {k: v.clone() for k, v in lenet.state_dict().items()}
    extract(lenet, digits, transform=TRANSFORM, limit=10)
    assert all(m.training for m in lenet.modules())
    after = lenet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in lenet.modules())


def test_non_finite_embedding_names_the_first_bad_sample() -> None:
    class Normalise(nn.Module):  # 0 / 0 for an all-black image
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            flat = x.flatten(1)
            return flat / flat.sum(1, keepdim=True)

    model = nn.Sequential(Normalise(), nn.Linear(16, 2))
    images = np.full((10, 1, 4, 4), 7, dtype=np.uint8)
    images[6] = 0
    ds = ImageDataset(images=images, labels=None, ids=np.array([f"x{i}" for i in range(10)]))
    with pytest.raises(DataError, match=r"sample 'x6'.*NaN or inf"):
        extract(model, ds, layer="0", transform=InputTransform(), batch_size=4)


def test_malformed_streams_are_refused(lenet: nn.Module) -> None:
    x = np.zeros((4, 1, 28, 28), np.uint8)
    with pytest.raises(DataError, match=r"\(batch, ids\) or \(batch, ids, labels\)"):
        extract(lenet, [(x, ["a"] * 4, [0] * 4, None)], transform=TRANSFORM)
    with pytest.raises(DataError, match="label every batch or none"):
        extract(lenet, [(x, list("abcd"), [0] * 4), (x, list("efgh"))], transform=TRANSFORM)
    with pytest.raises(DataError, match="integer class indices"):
        extract(lenet, [(x, list("abcd"), [0, 1])], transform=TRANSFORM)
    with pytest.raises(DataError, match="exactly B ids"):
        extract(lenet, [(x, ["a", "b"])], transform=TRANSFORM)
    with pytest.raises(DataError, match="'a' occurs more than once"):
        extract(lenet, [(x, ["a", "b", "c", "d"]), (x[:1], ["a"])], transform=TRANSFORM)
    with pytest.raises(DataError, match="no batches"):
        extract(lenet, [], transform=TRANSFORM)


def test_bad_arguments_and_wrong_input_are_refused(lenet: nn.Module) -> None:
    rgb = ImageDataset(
        images=np.zeros((4, 3, 28, 28), np.uint8), labels=None, ids=np.array(list("abcd"))
    )
    with pytest.raises(ModelError, match="forward failed"):
        extract(lenet, rgb, transform=TRANSFORM, layer="flatten")
    with pytest.raises(ConfigError, match="pooling"):
        extract(lenet, rgb, transform=TRANSFORM, layer="flatten", pooling="none")
    with pytest.raises(ConfigError, match="batch_size"):
        extract(lenet, rgb, transform=TRANSFORM, layer="flatten", batch_size=0)


def test_unknown_layer_is_refused_before_the_stream_is_read(lenet: nn.Module) -> None:
    batches = iter([(np.zeros((2, 1, 28, 28), np.uint8), ["a", "b"])])
    with pytest.raises(LayerError, match="did you mean 'conv1'"):
        extract(lenet, batches, transform=TRANSFORM, layer="conv_1")
    assert next(batches, None) is not None  # nothing was consumed


def test_embeddings_refuse_misaligned_fields() -> None:
    with pytest.raises(DataError, match="ids has shape"):
        Embeddings(
            values=np.zeros((3, 2), np.float32),
            ids=np.array(["a", "b"]),
            labels=None,
            layer="fc",
            model_fingerprint="m",
            dataset_fingerprint="d",
        )


def _read_idx(path: Path, count: int) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    items = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return items.reshape(dims)[:count]


def test_real_mnist_embeddings(data_root: Path, lenet: nn.Module) -> None:
    images = _read_idx(data_root / "mnist" / "t10k-images-idx3-ubyte.gz", 512)[:, None]
    labels = _read_idx(data_root / "mnist" / "t10k-labels-idx1-ubyte.gz", 512).astype(np.int64)
    ds = ImageDataset(
        images=np.ascontiguousarray(images),
        labels=labels,
        ids=np.array([f"mnist/test/{i}" for i in range(512)]),
    )
    emb = extract(lenet, ds, transform=TRANSFORM, batch_size=200)
    assert emb.values.shape == (512, 1600)
    assert np.isfinite(emb.values).all()
    assert (emb.values >= 0).all()  # after ReLU and max pooling
    assert emb.ids[-1] == "mnist/test/511"
    np.testing.assert_array_equal(emb.labels, labels)
