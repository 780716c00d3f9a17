"""Materialised subsets: index, symlinks, copies; originals never touched."""

from __future__ import annotations

import csv
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from thresher.data import from_arrays, load_dataset, load_image_folder
from thresher.errors import ConfigError, RunError
from thresher.store.materialise import materialise


def png_bytes(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (value, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


FILES = {
    f"train/{c}/{c}{i}.png": png_bytes(10 * i + j) for j, c in enumerate("ab") for i in range(3)
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_symlinks_point_at_the_originals(folder: Path, tmp_path: Path) -> None:
    ds = load_image_folder(folder, split="train")
    before = digest(folder)
    keep = ["train/a/a0.png", "train/b/b2.png"]
    rep = materialise(ds, keep, tmp_path / "out", mode="symlink")
    assert rep.count == 2
    links = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.png"))
    assert [str(p) for p in links] == ["a/a0.png", "b/b2.png"]
    assert (tmp_path / "out" / "a" / "a0.png").is_symlink()
    assert (tmp_path / "out" / "a" / "a0.png").resolve() == (folder / keep[0]).resolve()
    assert digest(folder) == before


def test_copies_from_a_directory_and_from_an_archive_are_byte_identical(
    folder: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "images.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for rel, data in FILES.items():
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    keep = ["train/a/a1.png", "train/b/b0.png", "train/b/b1.png"]
    for name, src in (("dir", folder), ("tar", archive)):
        ds = load_image_folder(src, split="train")
        materialise(ds, keep, tmp_path / name, mode="copy")
        got = {
            str(p.relative_to(tmp_path / name)): p.read_bytes()
            for p in (tmp_path / name).rglob("*.png")
        }
        assert got == {
            "a/a1.png": FILES[keep[0]],
            "b/b0.png": FILES[keep[1]],
            "b/b1.png": FILES[keep[2]],
        }
    with pytest.raises(ConfigError, match="no separate image files"):
        materialise(load_image_folder(archive, split="train"), keep, tmp_path / "l", mode="symlink")


def test_pixels_without_files_are_written_as_pngs_that_load_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 1, 5, 5), dtype=np.uint8)
    ds = from_arrays(images, np.array([0, 1, 0, 1, 0, 1]), classes=("zero", "one"), name="arr")
    keep = ds.ids[[1, 4]]
    materialise(ds, keep, tmp_path / "png", mode="copy")
    back = load_image_folder(tmp_path / "png", split=None)
    assert back.classes == ("one", "zero")
    pixels = {tuple(img.ravel()) for img in back.images}
    assert pixels == {tuple(images[1].ravel()), tuple(images[4].ravel())}


def test_index_lists_ids_labels_and_files(folder: Path, tmp_path: Path, data_root: Path) -> None:
    ds = load_image_folder(folder, split="train")
    materialise(ds, ["train/b/b1.png"], tmp_path / "idx.csv", mode="index")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "idx.csv").read_text())))
    assert rows == [
        {"id": "train/b/b1.png", "label": "1", "class": "b", "file": str(folder / "train/b/b1.png")}
    ]
    mnist = load_dataset("mnist", root=data_root, split="test")
    materialise(mnist, mnist.ids[:3], tmp_path / "m.csv", mode="index")
    assert len(list(csv.DictReader(io.StringIO((tmp_path / "m.csv").read_text())))) == 3


def test_refuses_non_empty_output_and_output_inside_the_data(folder: Path, tmp_path: Path) -> None:
    ds = load_image_folder(folder, split="train")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("keep me")
    with pytest.raises(RunError, match="not empty"):
        materialise(ds, ["train/a/a0.png"], tmp_path / "busy", mode="copy")
    assert (tmp_path / "busy" / "x").read_text() == "keep me"
    with pytest.raises(RunError, match="inside the data set"):
        materialise(ds, ["train/a/a0.png"], folder / "export", mode="copy")
    assert not (folder / "export").exists()
