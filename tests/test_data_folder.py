"""Image folders from directories and tar archives: layout, ids, modes, sizes, safety."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from thresher.data import load_dataset, load_image_folder
from thresher.errors import DataError


def png(size: tuple[int, int] = (6, 4), mode: str = "RGB", value: int = 0) -> bytes:
    buf = io.BytesIO()
    colour: int | tuple[int, ...] = value if mode == "L" else (value, 255 - value, 7)
    Image.new(mode, size, colour).save(buf, format="PNG")
    return buf.getvalue()


def make_folder(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def make_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for rel, data in files.items():
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


SPLIT_FILES = {
    "train/cat/b.png": png(value=1),
    "train/cat/a.PNG": png(value=2),
    "train/dog/x.png": png(value=3),
    "test/cat/t.png": png(value=4),
    "test/eel/u.png": png(value=5),  # a class only in test: still in the shared class list
    "train/dog/notes.txt": b"not an image",
    "train/dog/.hidden.png": b"garbage that must be skipped",
}


def test_directory_split_layout(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "pets", SPLIT_FILES)
    train = load_image_folder(root, split="train")
    test = load_image_folder(root, split="test")
    assert list(train.ids) == ["train/cat/a.PNG", "train/cat/b.png", "train/dog/x.png"]
    assert train.classes == test.classes == ("cat", "dog", "eel")
    assert list(train.labels) == [0, 0, 1]
    assert list(test.labels) == [0, 2]
    assert train.images.shape == (3, 3, 4, 6)  # (N, C, H, W) of 6x4 RGB images
    assert train.images[0, 0, 0, 0] == 2
    assert train.images[0, 1, 0, 0] == 253
    assert train.name == "pets/train"


def test_archive_equals_directory_and_extracts_nothing(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "pets", SPLIT_FILES)
    archive = make_tar(tmp_path / "pets.tar.gz", SPLIT_FILES)
    before = sorted(os.listdir(tmp_path))
    from_tar = load_image_folder(archive, split="train")
    from_dir = load_image_folder(root, split="train")
    assert sorted(os.listdir(tmp_path)) == before
    assert list(from_tar.ids) == list(from_dir.ids)
    np.testing.assert_array_equal(from_tar.images, from_dir.images)
    np.testing.assert_array_equal(from_tar.labels, from_dir.labels)
    assert from_tar.source["archive"] is True
    assert len(from_tar.source["sha256"]) == 64


def test_archive_with_common_top_folder(tmp_path: Path) -> None:
    files = {f"pets-v2/{k}": v for k, v in SPLIT_FILES.items()}
    ds = load_image_folder(make_tar(tmp_path / "p.tgz", files), split="test")
    assert list(ds.ids) == ["test/cat/t.png", "test/eel/u.png"]


def test_folder_without_split_level(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "flat", {"b/1.png": png(), "a/2.png": png(), "a/1.png": png()})
    ds = load_image_folder(root, split=None)
    assert list(ds.ids) == ["a/1.png", "a/2.png", "b/1.png"]
    assert ds.classes == ("a", "b")
    with pytest.raises(DataError, match=r"class folders but no split level: pass split=None"):
        load_image_folder(root, split="train")
    # load_dataset loads a split-less folder whole for the default split
    assert list(load_dataset(root).ids) == list(ds.ids)


def test_unknown_split_lists_the_present_ones(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "pets", SPLIT_FILES)
    with pytest.raises(DataError, match=r"split 'val'.*split folders test, train"):
        load_image_folder(root, split="val")


def test_grey_images_give_one_channel(tmp_path: Path) -> None:
    files = {"train/a/1.png": png(mode="L", value=9), "train/b/2.jpg": b""}
    buf = io.BytesIO()
    Image.new("L", (6, 4), 200).save(buf, format="JPEG")
    files["train/b/2.jpg"] = buf.getvalue()
    ds = load_image_folder(make_folder(tmp_path / "g", files), split="train")
    assert ds.images.shape == (2, 1, 4, 6)
    assert ds.images[0].max() == 9


def test_mixed_grey_and_colour_promotes_grey(tmp_path: Path) -> None:
    files = {"train/a/1.png": png(mode="L", value=9), "train/a/2.png": png(mode="RGBA")}
    ds = load_image_folder(make_folder(tmp_path / "m", files), split="train")
    assert ds.images.shape == (2, 3, 4, 6)
    assert (ds.images[0] == 9).all()  # grey replicated into R, G and B
    assert ds.source["grey_promoted_to_rgb"] == 1


def test_mixed_sizes_name_a_sample_and_suggest_resize(tmp_path: Path) -> None:
    files = {"train/a/1.png": png((6, 4)), "train/a/2.png": png((5, 5))}
    with pytest.raises(
        DataError, match=r"image train/a/2.png is 5x5 but train/a/1.png is 6x4.*resize"
    ):
        load_image_folder(make_folder(tmp_path / "s", files), split="train")


def test_corrupt_image_is_named_by_id(tmp_path: Path) -> None:
    files = {"train/a/1.png": png(), "train/a/2.jpg": png()[:40]}
    with pytest.raises(DataError, match=r"cannot decode image train/a/2.jpg .*delete or replace"):
        load_image_folder(make_tar(tmp_path / "c.tar.gz", files), split="train")


@pytest.mark.parametrize("bad", ["../evil.png", "/etc/evil.png", "train/../../evil.png"])
def test_archive_member_outside_is_refused(tmp_path: Path, bad: str) -> None:
    files = {"train/a/1.png": png(), bad: png()}
    with pytest.raises(DataError, match=r"points outside the archive .*refusing the archive"):
        load_image_folder(make_tar(tmp_path / "evil.tar.gz", files), split="train")
    assert not (tmp_path.parent / "evil.png").exists()


def test_corrupt_archive(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "t.tar.gz", {f"train/a/{i}.png": png() for i in range(50)})
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DataError, match=r"cannot read archive .*truncated or corrupt"):
        load_image_folder(archive, split="train")


def test_limit_is_stratified_and_seeded(tmp_path: Path) -> None:
    files = {f"train/{c}/{i:02d}.png": png(value=i) for c in "ab" for i in range(10)}
    files.update({f"train/c/{i:02d}.png": png() for i in range(20)})
    root = make_folder(tmp_path / "l", files)
    ds = load_image_folder(root, split="train", limit=8, seed=3)
    assert list(np.bincount(ds.labels)) == [2, 2, 4]
    again = load_image_folder(root, split="train", limit=8, seed=3)
    assert list(again.ids) == list(ds.ids)
    other = load_image_folder(root, split="train", limit=8, seed=4)
    assert list(other.ids) != list(ds.ids)


def test_explicit_class_list_rejects_unknown_folder(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "pets", SPLIT_FILES)
    with pytest.raises(DataError, match=r"class folder 'dog' is not in the class list"):
        load_image_folder(root, split="train", classes=("cat", "eel"))


def test_cifar10_test_split_from_real_tar(data_root: Path) -> None:
    ds = load_dataset("cifar10", root=data_root, split="test")
    assert ds.images.shape == (10000, 3, 32, 32)
    assert ds.classes == (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    )  # fmt: skip
    assert (ds.class_counts() == 1000).all()
    assert ds.ids[0] == "test/airplane/0000.jpg"
    assert ds.name == "cifar10/test"
    # the JPEG copy keeps CIFAR-10's channel means (README: 0.491, 0.482, 0.447)
    means = ds.images.mean(axis=(0, 2, 3)) / 255
    np.testing.assert_allclose(means, [0.491, 0.482, 0.447], atol=0.01)


@pytest.mark.slow
def test_cifar10_full_train_split_from_real_tar(data_root: Path) -> None:
    ds = load_dataset("cifar10", root=data_root, split="train")
    assert ds.images.shape == (50000, 3, 32, 32)
    assert (ds.class_counts() == 5000).all()
