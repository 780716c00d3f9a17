"""CIFAR python batches: synthetic files in the exact format, and a malicious pickle."""

from __future__ import annotations

import os
import pickle  # noqa: TID251 -- tests write synthetic CIFAR batches; loading uses CifarUnpickler
from pathlib import Path

import numpy as np
import pytest

from thresher.data import load_cifar10, load_cifar100, load_dataset, read_batch
from thresher.errors import DataError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]  # fmt: skip


def dump(path: Path, obj: object, protocol: int = 2) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)


def batch(n: int, seed: int, *, key: bytes = b"labels", filenames: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    out: dict = {
        b"batch_label": f"batch {seed}".encode(),
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        key: [int(v) for v in rng.integers(0, 10, size=n)],
    }
    if filenames:
        out[b"filenames"] = [f"img_{seed}_{i:03d}.png".encode() for i in range(n)]
    return out


def write_cifar10(folder: Path, *, n: int = 6, filenames: bool = True, protocol: int = 2) -> Path:
    folder.mkdir(parents=True)
    for i in range(1, 6):
        dump(folder / f"data_batch_{i}", batch(n, i, filenames=filenames), protocol)
    dump(folder / "test_batch", batch(n, 9, filenames=filenames), protocol)
    meta = {b"label_names": [s.encode() for s in CIFAR10_NAMES], b"num_cases_per_batch": n}
    dump(folder / "batches.meta", meta, protocol)
    return folder


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_batches(tmp_path: Path, protocol: int) -> None:
    folder = write_cifar10(tmp_path / "cifar-10-batches-py", protocol=protocol)
    train = load_cifar10(folder, split="train")
    assert train.images.shape == (30, 3, 32, 32)
    assert train.classes == tuple(CIFAR10_NAMES)
    assert train.ids[0] == "cifar10/train/img_1_000.png"
    first = batch(6, 1)
    # row-major 3072 = 1024 red, 1024 green, 1024 blue
    np.testing.assert_array_equal(train.images[0].reshape(-1), first[b"data"][0])
    np.testing.assert_array_equal(train.labels[:6], first[b"labels"])
    assert len(load_cifar10(folder, split="test")) == 6


def test_cifar10_ids_without_filenames(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path / "c", filenames=False)
    ds = load_cifar10(folder, split="test")
    assert list(ds.ids[:2]) == ["cifar10/test/00000", "cifar10/test/00001"]
    assert ds.source["ids"] == "index"


def test_registry_prefers_python_batches(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "cifar-10-batches-py")
    ds = load_dataset("cifar10", root=tmp_path, split="test", limit=4)
    assert len(ds) == 4
    assert ds.source["format"] == "cifar-python"


def write_cifar100(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for split, n in (("train", 20), ("test", 8)):
        dump(
            folder / split,
            {
                b"filenames": [f"{split}_{i}.png".encode() for i in range(n)],
                b"batch_label": split.encode(),
                b"fine_labels": [int(v) for v in rng.integers(0, 100, n)],
                b"coarse_labels": [int(v) for v in rng.integers(0, 20, n)],
                b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            },
        )
    dump(
        folder / "meta",
        {
            b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
        },
    )
    return folder


def test_cifar100_fine_and_coarse(tmp_path: Path) -> None:
    folder = write_cifar100(tmp_path / "cifar-100-python")
    fine = load_dataset("cifar100", root=tmp_path)
    assert fine.num_classes == 100
    assert len(fine) == 20
    assert fine.classes[3] == "fine3"
    coarse = load_cifar100(folder, split="test", coarse=True)
    assert coarse.num_classes == 20
    assert coarse.classes[0] == "coarse0"
    assert coarse.ids[0] == "cifar100/test/test_0.png"
    # a path to the folder works as well
    assert len(load_dataset(folder, split="test")) == 8


class Boom:
    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))

    def __init__(self, marker: Path) -> None:
        self.marker = marker


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    folder = write_cifar10(tmp_path / "c")
    dump(folder / "test_batch", {b"data": Boom(marker), b"labels": [1]})
    with pytest.raises(
        DataError,
        match=r"refusing to unpickle posix.system from .*test_batch: CIFAR batches contain "
        r"only arrays and lists",
    ):
        load_cifar10(folder, split="test")
    assert not marker.exists()


def test_builtins_eval_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "b"
    # GLOBAL builtins.eval, then call it: the classic pickle exploit, hand-written
    f.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(DataError, match=r"refusing to unpickle builtins.eval"):
        read_batch(f)


def test_truncated_batch(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path / "c")
    f = folder / "data_batch_3"
    f.write_bytes(f.read_bytes()[:500])
    with pytest.raises(DataError, match=r"data_batch_3 is truncated or corrupt"):
        load_cifar10(folder, split="train")


def test_wrong_data_shape(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path / "c")
    bad = batch(6, 9)
    bad[b"data"] = bad[b"data"][:, :100]
    dump(folder / "test_batch", bad)
    with pytest.raises(DataError, match=r"'data' should be \(N, 3072\) uint8"):
        load_cifar10(folder, split="test")


def test_missing_folder_suggests_fetch(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cifar100 not found .*thresher data fetch cifar100"):
        load_dataset("cifar100", root=tmp_path)
