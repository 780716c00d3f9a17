"""Hugging Face data sets on disk (save_to_disk and Parquet) load as ImageDatasets, offline."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from thresher.data import load_dataset
from thresher.errors import DataError

datasets = pytest.importorskip("datasets")


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def digits_hf() -> tuple[object, object]:
    """The real digits as a DatasetDict with Image and ClassLabel features."""
    parts = {}
    for split in ("train", "test"):
        src = load_dataset("digits", split=split)
        features = datasets.Features(
            {
                "image": datasets.Image(),
                "label": datasets.ClassLabel(names=list(src.classes)),
            }
        )
        rows = {
            "image": [{"bytes": _png(img[0]), "path": None} for img in src.images[:120]],
            "label": src.labels[:120].tolist(),
        }
        parts[split] = datasets.Dataset.from_dict(rows, features=features)
    return datasets.DatasetDict(parts), load_dataset("digits", split="train")


def test_save_to_disk_and_parquet_load_the_same_images(tmp_path: Path, digits_hf) -> None:
    whole, src = digits_hf
    whole.save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "pq").mkdir()
    whole["train"].to_parquet(str(tmp_path / "pq" / "train-00000-of-00001.parquet"))
    whole["test"].to_parquet(str(tmp_path / "pq" / "test-00000-of-00001.parquet"))
    saved = load_dataset(tmp_path / "saved", split="train")
    parquet = load_dataset(tmp_path / "pq", split="train")
    for ds in (saved, parquet):
        np.testing.assert_array_equal(ds.images, src.images[:120])  # PNG is lossless
        np.testing.assert_array_equal(ds.labels, src.labels[:120])
        assert ds.classes == src.classes
        assert ds.ids[3] == "train/000003"
    test = load_dataset(tmp_path / "pq", split="test")
    assert len(test) == 120


def test_a_missing_split_and_a_missing_image_column_are_named(tmp_path: Path, digits_hf) -> None:
    whole, _ = digits_hf
    whole.save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(DataError, match="no split 'validation'; it has train, test"):
        load_dataset(tmp_path / "saved", split="validation")
    plain = datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]})
    plain.save_to_disk(str(tmp_path / "text"))
    with pytest.raises(DataError, match="no image column"):
        load_dataset(tmp_path / "text", split="train")


def test_an_hf_folder_is_a_run_data_set(cli, tmp_path: Path, digits_hf) -> None:
    whole, _ = digits_hf
    whole.save_to_disk(str(tmp_path / "saved"))
    code, out, err = cli(
        ["train", str(tmp_path / "saved"), "--model", "resnet20", "--epochs", "1", "--out",
         str(tmp_path / "run")]
    )  # fmt: skip
    assert code == 0, err
    assert "test accuracy" in out
