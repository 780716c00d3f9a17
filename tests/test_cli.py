"""The command line: every verb end to end on real data, and one-line errors for bad input."""

from __future__ import annotations

import functools
import gzip
import http.server
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

Cli = Callable[[list[str]], tuple[int, str, str]]  # the `cli` fixture (conftest.py)


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    text = " ".join(err.split())  # rich may wrap long lines on narrow terminals
    assert text.startswith("error: ")
    for fragment in fragments:
        assert fragment in text, text


def idx_bytes(values: np.ndarray, *, magic: bytes | None = None) -> bytes:
    head = magic or bytes([0, 0, 0x08, values.ndim])
    return head + struct.pack(f">{values.ndim}I", *values.shape) + values.tobytes()


def write_idx_folder(folder: Path, *, n_images: int = 10, n_labels: int = 10, **kw: bytes) -> Path:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n_images, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n_labels, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "t10k"):
        img = kw.get("images", idx_bytes(images))
        lab = kw.get("labels", idx_bytes(labels))
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(img))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(lab))
    return folder


# --- bad input: one line, exit 2, no traceback ------------------------------------------------
def test_unknown_dataset_lists_valid_names(cli: Cli) -> None:
    code, _, err = cli(["data", "info", "mnistt"])
    assert_one_line_error(code, err, "'mnistt'", "fashion-mnist", "digits")


def test_unknown_model_lists_valid_names(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli(["train", "digits", "--model", "lenet", "--out", str(tmp_path / "r")])
    assert_one_line_error(code, err, "unknown model 'lenet'", "mnist_lenet", "resnet20")
    assert not (tmp_path / "r").exists()  # nothing written for a refused command


def test_missing_data_root(cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("THRESHER_DATA", raising=False)
    code, _, err = cli(["data", "info", "mnist"])
    assert_one_line_error(code, err, "--root", "THRESHER_DATA")
    code, _, err = cli(["data", "info", "mnist", "--root", str(tmp_path / "nope")])
    assert_one_line_error(code, err, "does not exist")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"images": idx_bytes(np.zeros((10, 28, 28), np.uint8))[:-100]}, "truncated"),
        (
            {"images": idx_bytes(np.zeros((10, 28, 28), np.uint8), magic=b"\x01\x02\x08\x03")},
            "magic",
        ),
        ({"n_labels": 7}, "has 7 labels"),
    ],
)
def test_broken_idx_files(
    cli: Cli, tmp_path: Path, kwargs: dict[str, object], fragment: str
) -> None:
    folder = write_idx_folder(tmp_path / "digits-idx", **kwargs)  # type: ignore[arg-type]
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    code, _, err = cli(["data", "info", str(folder)])
    assert_one_line_error(code, err, fragment)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # user files untouched


def test_labels_out_of_range_name_the_sample(cli: Cli, tmp_path: Path) -> None:
    import pickle  # noqa: TID251  (writes a synthetic CIFAR batch; nothing is unpickled here)

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        labels = [3, 12, 0] if name == "data_batch_1" else [1, 2, 3]
        batch = {
            b"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8),
            b"labels": labels,
            b"filenames": [f"{name}_{i}.png".encode() for i in range(3)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [f"c{i}".encode() for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    code, _, err = cli(["data", "info", str(folder)])
    assert_one_line_error(code, err, "label 12", "data_batch_1_1.png", "out of range")


def test_corrupt_image_is_named_by_id(cli: Cli, tmp_path: Path) -> None:
    from PIL import Image

    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / split / cls / "ok.png")
    (tmp_path / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    code, _, err = cli(["data", "info", str(tmp_path)])
    assert_one_line_error(code, err, "train/dog/broken.png")


def test_unknown_layer_lists_valid_layers(cli: Cli, tiny_run: Path) -> None:
    code, _, err = cli(["embed", str(tiny_run), "--layer", "conv9"])
    assert_one_line_error(code, err, "'conv9'", "conv1", "flatten")


def test_debug_shows_the_traceback(cli: Cli) -> None:
    from thresher.errors import DataError

    with pytest.raises(DataError):
        cli(["--debug", "data", "info", "mnistt"])
    os.environ.pop("THRESHER_DEBUG", None)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["compare", "RUN", "--bogus"], "No such option: --bogus"),
        (["train", "digits", "--epochs", "many"], "Invalid value for '--epochs'"),
        (["filterr"], "No such command 'filterr'"),
    ],
)
def test_a_usage_error_is_a_message_not_a_traceback(cli: Cli, argv: list[str], says: str) -> None:
    code, _, err = cli(argv)
    assert code == 2
    assert "Traceback" not in err
    assert says in " ".join(err.split())  # rich wraps the box; compare the words
    assert "Usage:" in err  # with the command line to fix


def test_installed_script_prints_no_traceback(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("thresher")
    proc = subprocess.run(
        [str(exe), "train", "digits", "--model", "nope", "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "unknown model 'nope'" in proc.stderr


# --- the verbs end to end ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run: mnist_lenet trained for one epoch on 400 real digits."""
    from thresher.workflows.run import DataSpec
    from thresher.workflows.train import train_run

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train_run(out, data=DataSpec(name="digits", limit=400), model="mnist_lenet", epochs=1)
    return out


def test_train_writes_a_complete_run(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "digits", "--model", "mnist_lenet", "--out", str(out)]
    code, stdout, err = cli([*args, "--epochs", "2", "--limit", "300", "--json"])
    assert code == 0, err
    res = json.loads(stdout)
    assert res["train_size"] == 300
    assert res["test_size"] == 359  # the test split is never limited
    assert res["epochs"] == 2
    assert 0.3 < res["test_accuracy"] <= 1.0  # two epochs on 300 digits learn something
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["model"]["name"] == "mnist_lenet"
    assert manifest["config"]["recipe"]["batch_size"] == 64  # LRP-GUS Table 2 recipe
    assert set(manifest["inputs"]) == {"train", "test"}
    assert (out / "model.safetensors").is_file()
    assert (out / "train_history.parquet").is_file()
    # a second train into the same directory is refused, the first run is kept
    code, _, err = cli(args)
    assert_one_line_error(code, err, "not empty", "--overwrite")
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_train_is_deterministic(tmp_path: Path) -> None:
    from thresher.workflows.run import DataSpec
    from thresher.workflows.train import train_run

    a = train_run(
        tmp_path / "a", data=DataSpec(name="digits", limit=200), model="mnist_lenet", epochs=1
    )
    b = train_run(
        tmp_path / "b", data=DataSpec(name="digits", limit=200), model="mnist_lenet", epochs=1
    )
    assert a.test_accuracy == b.test_accuracy
    from safetensors.torch import load_file

    # tensors bit-identical (the header's key order is up to safetensors, so not the bytes)
    wa = load_file(str(tmp_path / "a" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    assert all(wa[k].equal(wb[k]) for k in wa)


def test_layers_of_a_model_name_and_of_a_run(cli: Cli, tiny_run: Path) -> None:
    code, stdout, _ = cli(["layers", "mnist_lenet", "--json"])
    assert code == 0
    layers = json.loads(stdout)
    shapes = {la["name"]: la["output_shape"] for la in layers["layers"]}
    assert shapes["conv1"] == [32, 26, 26]  # LRP-GUS Table 2
    assert shapes["pool2"] == [64, 5, 5]
    assert layers["default"] == "flatten"
    code, stdout, _ = cli(["layers", str(tiny_run)])
    assert code == 0
    assert "flatten (default)" in stdout


def test_embed_then_reuse_the_cache(cli: Cli, tiny_run: Path) -> None:
    code, stdout, err = cli(["embed", str(tiny_run), "--json"])
    assert code == 0, err
    info = json.loads(stdout)
    assert info["layer"] == "flatten"
    assert info["shape"] == [400, 1600]
    files = sorted(p.relative_to(tiny_run) for p in (tiny_run / "embeddings").rglob("*"))
    code, stdout, _ = cli(["embed", str(tiny_run), "--json"])
    assert json.loads(stdout) == info
    assert sorted(p.relative_to(tiny_run) for p in (tiny_run / "embeddings").rglob("*")) == files
    code, stdout, _ = cli(
        ["embed", str(tiny_run), "--layer", "pool1", "--pooling", "avgpool", "--json"]
    )
    assert json.loads(stdout)["shape"] == [400, 32]


def test_evaluate_a_subset_file(cli: Cli, tiny_run: Path, tmp_path: Path) -> None:
    from thresher.workflows.run import open_run, run_dataset

    ids = run_dataset(open_run(tiny_run), "train").ids[::2]
    subset = tmp_path / "half.csv"
    subset.write_text("id\n" + "\n".join(ids) + "\n")
    args = ["evaluate", str(tiny_run), "--subset", str(subset), "--seeds", "2", "--epochs", "1"]
    code, stdout, err = cli([*args, "--json"])
    assert code == 0, err
    res = json.loads(stdout)
    assert res["subset_size"] == 200
    assert res["compression"] == pytest.approx(0.5)
    assert res["seeds"] == [0, 1]
    assert len(res["f1_mean"]) == 10
    assert (tiny_run / "evaluate" / "half.parquet").is_file()
    bad = tmp_path / "bad.txt"
    bad.write_text("digits/9999\n")
    code, _, err = cli(["evaluate", str(tiny_run), "--subset", str(bad)])
    assert_one_line_error(code, err, "not in the data set")


def test_evaluate_versus_random_pairs_a_class_matched_random_subset(
    cli: Cli, tiny_run: Path, tmp_path: Path
) -> None:
    from thresher.workflows.evaluate import random_like
    from thresher.workflows.run import open_run, run_dataset

    train = run_dataset(open_run(tiny_run), "train")
    labels = np.asarray(train.labels)
    keep = np.flatnonzero(labels < 5)[:150]  # a subset with a skewed class mix
    subset = tmp_path / "skewed.txt"
    subset.write_text("\n".join(train.ids[keep]) + "\n")
    twin = random_like(open_run(tiny_run), train.ids[keep])
    pos = np.flatnonzero(np.isin(train.ids, twin))
    assert np.array_equal(
        np.bincount(labels[pos], minlength=10), np.bincount(labels[keep], minlength=10)
    )
    assert not np.array_equal(np.sort(pos), np.sort(keep))  # random, not the same images
    args = ["evaluate", str(tiny_run), "--subset", str(subset), "--seeds", "2", "--epochs", "1"]
    code, stdout, err = cli([*args, "--versus-random", "--json"])
    assert code == 0, err
    res = json.loads(stdout)
    diff = res["versus_random"]
    expected = np.mean(np.subtract(res["subset"]["accuracy"], res["random"]["accuracy"]))
    assert diff["mean"] == pytest.approx(expected)
    assert res["random"]["subset_size"] == res["subset"]["subset_size"] == 150
    code, stdout, err = cli([*args, "--versus-random"])
    assert code == 0, err
    assert "subset - random:" in stdout
    code, _, err = cli(["evaluate", str(tiny_run), "--versus-random"])
    assert_one_line_error(code, err, "--versus-random needs --subset FILE")


def test_models_lists_the_registry(cli: Cli) -> None:
    code, stdout, _ = cli(["models", "--json"])
    assert code == 0
    names = {m["name"] for m in json.loads(stdout)}
    assert {"mnist_lenet", "fmnist_cnn", "resnet20", "resnet32", "resnet56"} <= names


@pytest.fixture
def mirror(data_root: Path, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server serving a copy of the real MNIST files as a mirror."""
    site = tmp_path / "site"
    shutil.copytree(data_root / "mnist", site / "mnist")
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            requests.append(self.path)

    handler = functools.partial(Handler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requests
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_from_a_loopback_mirror_then_load(
    cli: Cli, tmp_path: Path, mirror: tuple[str, list[str]]
) -> None:
    url, requests = mirror
    root = tmp_path / "data"
    code, stdout, err = cli(["data", "fetch", "mnist", "--root", str(root), "--base-url", url])
    assert code == 0, err
    assert stdout.count("downloaded and verified") == 4
    code, stdout, err = cli(["data", "info", "mnist", "--root", str(root), "--json"])
    assert code == 0, err
    assert json.loads(stdout)["train"]["size"] == 60000
    n = len(requests)
    code, stdout, _ = cli(["data", "fetch", "mnist", "--root", str(root), "--base-url", url])
    assert code == 0
    assert stdout.count("already present") == 4
    assert len(requests) == n  # nothing downloaded again


def test_a_moved_run_finds_its_data_through_thresher_data(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from thresher.workflows.run import open_run, run_dataset

    moved = tmp_path / "moved"
    shutil.copytree(tiny_run, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    real_root = manifest["config"]["data"]["root"]
    manifest["config"]["data"]["root"] = str(tmp_path / "gone")  # the old machine's path
    (moved / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("THRESHER_DATA", str(real_root or tmp_path))
    from thresher.workflows.run import run_data_spec

    assert run_data_spec(open_run(moved)).root == str(Path(real_root or tmp_path).resolve())
    ds = run_dataset(open_run(moved), "train")
    assert len(ds) == 400  # found through THRESHER_DATA, fingerprint checked
    monkeypatch.delenv("THRESHER_DATA")
    assert run_data_spec(open_run(moved)).root == str(tmp_path / "gone")  # no fallback asked
