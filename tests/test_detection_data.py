"""Detection data: the ragged-box data set, canvases of real digits, YOLO and COCO on disk."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from thresher.data import load_dataset
from thresher.data.detection import DetectionDataset, make_canvases
from thresher.data.detection_io import _yaml_names, load_coco, load_yolo, write_coco, write_yolo
from thresher.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def digits(data_root: Path) -> object:
    return load_dataset("mnist", root=data_root, split="test", limit=400)


@pytest.fixture(scope="module")
def canvases(digits: object) -> DetectionDataset:
    return make_canvases(digits, count=60, seed=3)  # type: ignore[arg-type]


def _tiny(**over: object) -> DetectionDataset:
    kw: dict[str, object] = {
        "images": np.zeros((2, 1, 10, 20), np.uint8),
        "labels": None,
        "ids": np.array(["a", "b"]),
        "classes": ("cat", "dog"),
        "boxes": np.array([[1, 1, 5, 5], [2, 3, 19, 9], [0, 0, 20, 10]], np.float32),
        "box_labels": np.array([0, 1, 1]),
        "box_offsets": np.array([0, 2, 3]),
    }
    kw.update(over)
    return DetectionDataset(**kw)  # type: ignore[arg-type]


# --- the data set type -------------------------------------------------------------------
def test_boxes_travel_with_their_images_through_take_and_limit() -> None:
    ds = _tiny()
    sub = ds.take([1, 0])
    assert sub.ids.tolist() == ["b", "a"]
    assert sub.targets(0)[0].tolist() == [[0, 0, 20, 10]]
    assert sub.targets(1)[1].tolist() == [0, 1]
    assert sub.box_offsets.tolist() == [0, 1, 3]
    assert isinstance(ds.subset(["b"]), DetectionDataset)
    assert ds.boxes_per_image().tolist() == [2, 1]
    assert ds.box_class_counts().tolist() == [1, 2]


def test_the_fingerprint_sees_the_boxes() -> None:
    moved = np.array([[1, 1, 5, 6], [2, 3, 19, 9], [0, 0, 20, 10]], np.float32)
    assert _tiny().fingerprint() == _tiny().fingerprint()
    assert _tiny().fingerprint() != _tiny(boxes=moved).fingerprint()
    relabelled = _tiny(box_labels=np.array([1, 1, 1]))
    assert _tiny().fingerprint() != relabelled.fingerprint()


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"boxes": np.array([[1, 1, 5, 5], [2, 3, 25, 9], [0, 0, 20, 10]], np.float32)},
         r"image a has box \[2.0, 3.0, 25.0, 9.0\].*outside its 20x10"),
        ({"boxes": np.array([[5, 1, 5, 5], [2, 3, 19, 9], [0, 0, 20, 10]], np.float32)},
         "empty or outside"),
        ({"box_labels": np.array([0, 2, 1])}, "image a has a box of class 2.*2 classes"),
        ({"box_offsets": np.array([0, 3, 2])}, "must rise from 0"),
        ({"box_offsets": np.array([0, 3])}, "3 integers"),
        ({"labels": np.array([0, 1])}, "boxes, not image labels"),
        ({"classes": ()}, "name the box classes"),
    ],
)  # fmt: skip
def test_bad_boxes_are_refused_naming_the_image(over: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        _tiny(**over)


# --- canvases of real digits -------------------------------------------------------------
def test_canvas_boxes_are_tight_and_classes_are_the_digits(
    canvases: DetectionDataset, digits: object
) -> None:
    assert canvases.images.shape == (60, 1, 64, 64)
    assert canvases.classes == digits.classes  # type: ignore[attr-defined]
    per = canvases.boxes_per_image()
    assert per.min() >= 1
    assert per.max() <= 3
    single = np.flatnonzero(per == 1)
    assert single.size > 5
    for i in single:  # one object: its box is the bounding box of the bright pixels
        (box,), _ = canvases.targets(int(i))
        on = canvases.images[i, 0] > 48
        rows, cols = np.flatnonzero(on.any(1)), np.flatnonzero(on.any(0))
        assert box.tolist() == [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]


def test_canvases_are_seeded(digits: object) -> None:
    a = make_canvases(digits, count=8, seed=5)  # type: ignore[arg-type]
    b = make_canvases(digits, count=8, seed=5)  # type: ignore[arg-type]
    c = make_canvases(digits, count=8, seed=6)  # type: ignore[arg-type]
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_canvas_settings_are_checked(digits: object) -> None:
    with pytest.raises(ConfigError, match="must fit the 32 px canvas"):
        make_canvases(digits, count=2, canvas=32)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="objects must be"):
        make_canvases(digits, count=2, objects=(2, 1))  # type: ignore[arg-type]
    cifar_like = load_dataset("digits", split="train")  # 8x8 grey: fine, but count 0 is not
    with pytest.raises(ConfigError, match="count"):
        make_canvases(cifar_like, count=0)


def test_the_named_detection_set_loads_both_splits(data_root: Path) -> None:
    train = load_dataset("mnist-detection", root=data_root, split="train", limit=50)
    assert isinstance(train, DetectionDataset)
    assert len(train) == 50
    again = load_dataset("mnist-detection", root=data_root, split="train", limit=50)
    assert train.fingerprint() == again.fingerprint()
    test = load_dataset("mnist-detection", root=data_root, split="test")
    assert len(test) == 500
    assert not set(test.ids) - {f"{i:06d}" for i in range(500)}


# --- YOLO and COCO ------------------------------------------------------------------------
def test_yolo_and_coco_round_trip(canvases: DetectionDataset, tmp_path: Path) -> None:
    write_yolo(canvases, tmp_path / "yolo", split="train")
    write_coco(canvases, tmp_path / "coco", split="train")
    for path, tol in ((tmp_path / "yolo", 1e-3), (tmp_path / "coco", 1e-3)):
        back = load_dataset(path)
        assert isinstance(back, DetectionDataset)
        assert back.ids.tolist() == canvases.ids.tolist()
        assert np.array_equal(back.images, canvases.images)
        assert np.array_equal(back.box_offsets, canvases.box_offsets)
        assert np.array_equal(back.box_labels, canvases.box_labels)
        assert np.abs(back.boxes - canvases.boxes).max() < tol
        assert back.classes == canvases.classes
    assert _yaml_names((tmp_path / "yolo" / "data.yaml").read_text()) == list(canvases.classes)
    with pytest.raises(DataError, match="already exists"):
        write_yolo(canvases, tmp_path / "yolo", split="train")


def test_yolo_images_of_another_size_are_resized_with_their_boxes(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "y"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "classes.txt").write_text("sign\n")
    Image.new("RGB", (40, 20), (255, 0, 0)).save(root / "images" / "train" / "a.png")
    Image.new("RGB", (80, 40), (0, 255, 0)).save(root / "images" / "train" / "b.jpg")
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (root / "labels" / "train" / "b.txt").write_text("")  # no objects
    ds = load_yolo(root, split="train")
    assert ds.images.shape == (2, 3, 20, 40)
    assert ds.targets(0)[0].tolist() == [[10, 5, 30, 15]]
    assert ds.targets(1)[0].shape == (0, 4)
    assert ds.channels == 3


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("0 0.5 0.5 0.5", r"a.txt:1: expected 5 numbers"),
        ("0 0.5 0.5 0.5 0.5 0.1", r"a.txt:1: expected 5 numbers"),
        ("x 0.5 0.5 0.5 0.5", r"a.txt:1: expected `class cx cy w h`"),
        ("3 0.5 0.5 0.5 0.5", r"a.txt:1: class 3 is not one of the 2 classes"),
        ("0 0.9 0.5 0.5 0.5", r"a.txt:1: box .* outside \[0, 1\]"),
        ("0 0.5 0.5 0 0.5", "empty or outside"),
    ],
)
def test_bad_yolo_labels_name_the_file_and_line(tmp_path: Path, label: str, message: str) -> None:
    from PIL import Image

    root = tmp_path / "y"
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "data.yaml").write_text("path: .\nnames: [stop, yield]\n")
    Image.new("L", (16, 16)).save(root / "images" / "val" / "a.png")
    (root / "labels" / "val" / "a.txt").write_text(label + "\n")
    before = sorted(p.name for p in root.rglob("*"))
    with pytest.raises(DataError, match=message):
        load_yolo(root, split="val")
    assert sorted(p.name for p in root.rglob("*")) == before  # nothing written


def test_a_missing_yolo_label_file_or_class_list_is_named(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "y"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    Image.new("L", (16, 16)).save(root / "images" / "train" / "a.png")
    with pytest.raises(DataError, match=r"no class names; add classes\.txt"):
        load_yolo(root)
    (root / "classes.txt").write_text("x\n")
    with pytest.raises(DataError, match=r"a.txt is missing for image a.png.*an empty one"):
        load_yolo(root)


def test_yaml_names_in_every_yolo_spelling() -> None:
    assert _yaml_names("names: ['a', \"b\"]\n") == ["a", "b"]
    assert _yaml_names("nc: 2\nnames:\n  0: a\n  1: b c\ntrain: x\n") == ["a", "b c"]
    assert _yaml_names("names:\n  - a\n  - b\n") == ["a", "b"]
    assert _yaml_names("nc: 2\n") == []


def _coco(tmp_path: Path, **edit: object) -> Path:
    from PIL import Image

    root = tmp_path / "c"
    (root / "images" / "train").mkdir(parents=True)
    (root / "annotations").mkdir()
    Image.new("L", (30, 20)).save(root / "images" / "train" / "p.png")
    doc: dict[str, object] = {
        "images": [{"id": 7, "file_name": "p.png", "width": 30, "height": 20}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 5, "bbox": [3, 4, 10, 6]}],
        "categories": [{"id": 9, "name": "b"}, {"id": 5, "name": "a"}],
    }
    doc.update(edit)
    (root / "annotations" / "instances_train.json").write_text(json.dumps(doc))
    return root


def test_coco_categories_in_id_order_and_pixel_boxes(tmp_path: Path) -> None:
    ds = load_coco(_coco(tmp_path))
    assert ds.classes == ("a", "b")
    assert ds.targets(0)[0].tolist() == [[3, 4, 13, 10]]
    assert ds.targets(0)[1].tolist() == [0]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"annotations": [{"id": 1, "image_id": 7, "category_id": 4, "bbox": [3, 4, 10, 6]}]},
         "annotation 1 has category 4, not in `categories`"),
        ({"annotations": [{"id": 2, "image_id": 8, "category_id": 5, "bbox": [3, 4, 10, 6]}]},
         "annotation 2 refers to image 8"),
        ({"annotations": [{"id": 3, "image_id": 7, "category_id": 5, "bbox": [25, 4, 10, 6]}]},
         r"annotation 3: bbox .* outside its 30x20 image p.png"),
        ({"images": [{"id": 7, "file_name": "q.png"}]}, "q.png is listed .* but missing"),
        ({"categories": []}, "names no categories"),
    ],
)  # fmt: skip
def test_bad_coco_entries_are_named(tmp_path: Path, edit: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_coco(_coco(tmp_path, **edit))


def test_the_cli_writes_both_formats_and_data_info_counts_boxes(
    cli: Callable[[list[str]], tuple[int, str, str]], data_root: Path, tmp_path: Path
) -> None:
    run = cli  # the in-process CLI
    code, text, err = run(["data", "detection", "--out", str(tmp_path / "d"), "--train", "12",
                           "--test", "4", "--root", str(data_root)])  # fmt: skip
    assert code == 0, err
    yolo = load_dataset(tmp_path / "d" / "yolo", split="train")
    coco = load_dataset(tmp_path / "d" / "coco", split="test")
    assert isinstance(yolo, DetectionDataset)
    assert len(yolo) == 12
    assert isinstance(coco, DetectionDataset)
    assert len(coco) == 4
    code, text, err = run(["data", "info", str(tmp_path / "d" / "yolo"), "--json"])
    assert code == 0, err
    info = json.loads(text)["train"]
    assert info["boxes"] == yolo.num_boxes == sum(info["counts"].values())
    code, _, err = run(["data", "detection", "--out", str(tmp_path / "d"), "--root",
                        str(data_root)])  # fmt: skip
    assert code != 0
    assert "already holds files; choose a new --out" in err
    code, _, err = run(["data", "detection", "--out", str(tmp_path / "e"), "--format", "voc"])
    assert code != 0
    assert "unknown format 'voc'" in err
    assert not (tmp_path / "e").exists()
