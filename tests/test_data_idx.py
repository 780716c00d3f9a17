"""IDX files: real MNIST / Fashion-MNIST, and every way a file can be broken."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from thresher.data import FASHION_MNIST_CLASSES, load_dataset, load_idx, parse_idx, read_idx
from thresher.errors import ChecksumError, DataError


def idx_bytes(values: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format."""
    header = bytes([0, 0, 0x08, values.ndim]) + struct.pack(f">{values.ndim}I", *values.shape)
    return header + values.astype(np.uint8).tobytes()


def write_split(
    folder: Path,
    *,
    prefix: str = "train",
    n: int = 12,
    n_labels: int | None = None,
    gz: bool = True,
    label_max: int = 9,
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 5, 4), dtype=np.uint8)
    labels = rng.integers(0, label_max + 1, size=n_labels or n, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, arr in (("images-idx3", images), ("labels-idx1", labels)):
        data = idx_bytes(arr)
        name = f"{prefix}-{stem}-ubyte"
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return images, labels


def test_mnist_train_loads_60000_verified(data_root: Path) -> None:
    ds = load_dataset("mnist", root=data_root, split="train")
    assert ds.images.shape == (60000, 1, 28, 28)
    assert ds.images.dtype == np.uint8
    assert ds.ids[42] == "mnist/train/00042"
    assert ds.classes == tuple("0123456789")
    assert ds.source["verified"] is True
    assert ds.class_counts().sum() == 60000
    assert ds.class_counts()[1] == 6742  # the published count of ones in MNIST train


def test_fashion_mnist_test_has_named_classes(data_root: Path) -> None:
    ds = load_dataset("fashion-mnist", root=data_root, split="test")
    assert len(ds) == 10000
    assert ds.classes == FASHION_MNIST_CLASSES
    assert ds.classes[0] == "T-shirt/top"
    assert (ds.class_counts() == 1000).all()
    assert ds.ids[0] == "fashion-mnist/test/00000"


def test_idx_folder_path_is_recognised_by_checksum(data_root: Path, tmp_path: Path) -> None:
    # the real test files copied under another folder name are still identified as MNIST
    copy = tmp_path / "digits-copy"
    copy.mkdir()
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (copy / f).write_bytes((data_root / "mnist" / f).read_bytes())
    ds = load_dataset(copy, split="test")
    assert ds.name == "mnist/test"
    assert ds.source["verified"] is True


def test_raw_and_gz_give_same_data(tmp_path: Path) -> None:
    images, labels = write_split(tmp_path / "gz", gz=True)
    write_split(tmp_path / "raw", gz=False)
    a = load_idx(tmp_path / "gz", split="train")
    b = load_idx(tmp_path / "raw", split="train")
    np.testing.assert_array_equal(a.images[:, 0], images)
    np.testing.assert_array_equal(a.labels, labels)
    assert a.images.tobytes() == b.images.tobytes()
    assert a.source["verified"] is False  # unknown custom data: nothing to verify against


def test_parse_idx_reads_big_endian_int32() -> None:
    values = np.array([[1, -2], [70000, 3]], dtype=">i4")
    data = bytes([0, 0, 0x0C, 2]) + struct.pack(">2I", 2, 2) + values.tobytes()
    out = parse_idx(data)
    np.testing.assert_array_equal(out, [[1, -2], [70000, 3]])
    assert out.dtype.byteorder in ("=", "<", "|")


def test_truncated_raw_file_names_file(tmp_path: Path) -> None:
    write_split(tmp_path, gz=False)
    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-7])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte is truncated.*download it again"):
        load_idx(tmp_path, split="train")


def test_truncated_gz_file_names_file(tmp_path: Path) -> None:
    write_split(tmp_path, gz=True, n=200)
    f = tmp_path / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-30])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz is truncated or corrupt"):
        load_idx(tmp_path, split="train")


def test_wrong_magic_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "x.idx"
    f.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(DataError, match=r"x.idx is not an IDX file \(magic number 0x89504e47\)"):
        read_idx(f)


def test_count_mismatch_names_both_files(tmp_path: Path) -> None:
    write_split(tmp_path, n=12, n_labels=11)
    with pytest.raises(DataError, match=r"has 12 images but .*has 11 labels"):
        load_idx(tmp_path, split="train")


def test_labels_out_of_range_are_refused(tmp_path: Path) -> None:
    write_split(tmp_path, n=30, label_max=12)
    with pytest.raises(DataError, match=r"label 1[0-2] of sample mnist/train/\d+ is out of range"):
        load_idx(tmp_path, split="train", dataset="mnist", verify=False)


def test_checksum_mismatch_names_file_expected_and_actual(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    write_split(folder)
    actual = hashlib.sha256(
        gzip.decompress((folder / "train-images-idx3-ubyte.gz").read_bytes())
    ).hexdigest()
    with pytest.raises(ChecksumError) as err:
        load_dataset("mnist", root=tmp_path)
    message = str(err.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db" in message
    assert actual in message
    # with verification off the same files load
    assert len(load_dataset("mnist", root=tmp_path, verify=False)) == 12


def test_missing_files_suggest_fetch(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"mnist not found at .*thresher data fetch mnist --root"):
        load_dataset("mnist", root=tmp_path)


def test_missing_root_says_how_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THRESHER_DATA", raising=False)
    with pytest.raises(DataError, match=r"no data root: pass --root DIR or set THRESHER_DATA"):
        load_dataset("mnist")


def test_root_from_environment(monkeypatch: pytest.MonkeyPatch, data_root: Path) -> None:
    monkeypatch.setenv("THRESHER_DATA", str(data_root))
    assert len(load_dataset("fashion-mnist", split="test", limit=50)) == 50
