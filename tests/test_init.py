"""``thresher init``: runs from the user's own model and weights, or from precomputed embeddings,
with nothing trained; everything downstream that needs only what was given works."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from thresher.data import load_dataset

FACTORY = textwrap.dedent(
    """
    from torch import nn

    def make(num_classes, in_channels):
        return nn.Sequential(
            nn.Flatten(), nn.Linear(in_channels * 64, 24), nn.ReLU(), nn.Linear(24, num_classes)
        )

    def three_classes():
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    """
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", split="train"), load_dataset("digits", split="test")


@pytest.fixture
def user_model(tmp_path: Path, digits) -> tuple[Path, Path, torch.nn.Module]:
    """The user's factory in a file and a .pt checkpoint of a model they trained with it."""
    path = tmp_path / "user_nets.py"
    path.write_text(FACTORY)
    namespace: dict[str, object] = {}
    exec(FACTORY, namespace)  # the same code the user would import
    train, _ = digits
    torch.manual_seed(0)
    net = namespace["make"](10, 1)  # type: ignore[operator]
    x = torch.from_numpy(train.images).float() / 255
    y = torch.from_numpy(train.labels)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(40):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    weights = tmp_path / "trained.pt"
    torch.save({"state_dict": net.state_dict()}, weights)  # nested, as training scripts save
    return path, weights, net.eval()


def _forbid_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fit(*args: object, **kwargs: object) -> None:
        raise AssertionError("thresher init must not train")

    monkeypatch.setattr("thresher.train.trainer.fit", no_fit)
    monkeypatch.setattr("thresher.train.fit", no_fit)


def test_own_module_and_checkpoint_then_embed_and_filter(
    cli, tmp_path: Path, user_model, digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, weights, net = user_model
    _, test = digits
    _forbid_training(monkeypatch)
    run = tmp_path / "run"
    code, out, err = cli(
        ["init", str(run), "--data", "digits", "--model", f"{module}:make",
         "--weights", str(weights), "--json"]
    )  # fmt: skip
    assert code == 0, err
    res = json.loads(out)
    with torch.no_grad():
        expected = (
            net(torch.from_numpy(test.images).float() / 255).argmax(1).numpy() == test.labels
        ).mean()
    assert res["origin"] == "model"
    assert res["test_accuracy"] == pytest.approx(float(expected))  # the user's model, as is
    assert res["test_accuracy"] > 0.8
    code, out, err = cli(["embed", str(run), "--json"])
    assert code == 0, err
    emb = json.loads(out)
    assert emb["shape"] == [1438, 24]  # the input of the user's last Linear
    code, out, err = cli(["filter", str(run), "--json"])
    assert code == 0, err
    summary = json.loads(out)
    assert summary["counts"]["outlier"] > 0
    assert summary["counts"]["kept"] < 1438


def test_module_reference_is_found_from_the_current_folder(
    cli, tmp_path: Path, user_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, weights, _ = user_model
    monkeypatch.chdir(module.parent)
    monkeypatch.syspath_prepend(str(module.parent))
    run = tmp_path / "run"
    code, _, err = cli(
        ["init", str(run), "--data", "digits", "--model", "user_nets:make", "--weights",
         str(weights)]
    )  # fmt: skip
    assert code == 0, err
    from thresher.workflows.run import open_run, run_model

    model = run_model(open_run(run))  # rebuilt from the stored reference and weights
    state = torch.load(weights, weights_only=True)["state_dict"]
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name])


def test_registered_model_with_safetensors_keeps_its_predictions(tmp_path: Path, digits) -> None:
    from thresher.models import create_model
    from thresher.train import predict, save_checkpoint
    from thresher.workflows.init import init_model_run
    from thresher.workflows.run import DataSpec, open_run, run_model, run_transform

    torch.manual_seed(3)
    net = create_model("resnet20", num_classes=10, in_channels=1).eval()
    save_checkpoint(net, tmp_path / "w.safetensors")
    res = init_model_run(
        tmp_path / "run", data=DataSpec(name="digits"), model="resnet20",
        weights=tmp_path / "w.safetensors",
    )  # fmt: skip
    run = open_run(res.run_dir)
    _, test = digits
    before = predict(net, test, transform="resnet20")
    after = predict(run_model(run), test, transform=run_transform(run))
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)
    assert run.step("train")["epochs"] == 0


def test_size_mean_and_std_are_the_runs_transform(tmp_path: Path, user_model) -> None:
    from thresher.models import InputTransform
    from thresher.workflows.init import init_model_run
    from thresher.workflows.run import DataSpec, open_run, run_transform

    module, _, _ = user_model
    (module.parent / "conv_net.py").write_text(
        "from torch import nn\n"
        "def make(num_classes, in_channels):\n"
        "    return nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.AdaptiveAvgPool2d(1),"
        " nn.Flatten(), nn.Linear(4, num_classes))\n"
    )
    res = init_model_run(
        tmp_path / "run", data=DataSpec(name="digits"),
        model=f"{module.parent / 'conv_net.py'}:make", size=16, mean=(0.5,), std=(0.25,),
    )  # fmt: skip
    assert res.input_size == [16, 16]
    tf = run_transform(open_run(res.run_dir))
    assert tf == InputTransform(mean=(0.5,), std=(0.25,), size=(16, 16))
    assert tf(torch.zeros(1, 1, 8, 8, dtype=torch.uint8)).shape == (1, 1, 16, 16)


# --- from embeddings ----------------------------------------------------------------------------
@pytest.fixture
def embedding_files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    n = 300
    labels = np.repeat(["cat", "dog", "eel"], n // 3)
    centres = {c: rng.normal(0.0, 2.0, size=16) for c in ("cat", "dog", "eel")}
    values = np.stack([centres[c] + rng.normal(0.0, 0.5, size=16) for c in labels])
    values[7] = -3.0 * centres["cat"]  # a planted outlier: far from every class
    values = values.astype(np.float32)
    ids = np.asarray([f"img_{i:04d}" for i in range(n)])
    files = {
        "values": tmp_path / "emb.npy",
        "ids": tmp_path / "ids.txt",
        "labels": tmp_path / "labels.csv",
    }
    np.save(files["values"], values)
    files["ids"].write_text("\n".join(ids) + "\n")
    files["labels"].write_text(
        "id,label\n" + "".join(f"{i},{c}\n" for i, c in zip(ids, labels, strict=True))
    )
    import pyarrow as pa
    import pyarrow.parquet as pq

    files["parquet"] = tmp_path / "emb.parquet"
    pq.write_table(
        pa.table({"id": ids, "label": labels, "embedding": list(values)}), files["parquet"]
    )
    return files


def test_embeddings_run_filters_like_the_library(
    cli, tmp_path: Path, embedding_files: dict[str, Path]
) -> None:
    from thresher.filter import filter_dataset

    run = tmp_path / "run"
    code, out, err = cli(
        ["init", str(run), "--embeddings", str(embedding_files["values"]), "--ids",
         str(embedding_files["ids"]), "--labels", str(embedding_files["labels"]), "--json"]
    )  # fmt: skip
    assert code == 0, err
    res = json.loads(out)
    assert res["classes"] == ["cat", "dog", "eel"]
    assert res["embedding_dim"] == 16
    code, out, err = cli(["filter", str(run), "--json"])
    assert code == 0, err
    from thresher.workflows.filter import load_filter
    from thresher.workflows.run import open_run

    stored = load_filter(open_run(run))
    assert not stored.kept[7]
    assert stored.reason[7] == "outlier"  # the planted outlier
    values = np.load(embedding_files["values"])
    ids = np.asarray(embedding_files["ids"].read_text().split())
    direct = filter_dataset(values, ids=ids, labels=np.repeat([0, 1, 2], 100))
    np.testing.assert_array_equal(stored.kept, direct.kept)  # same answer as the library
    code, _, err = cli(["diagnose", str(run), "--only", "archetypes,top_features,density"])
    assert code == 0, err
    code, _, err = cli(["export", str(run), "--format", "txt", "--out", str(tmp_path / "k.txt")])
    assert code == 0, err
    assert len((tmp_path / "k.txt").read_text().split()) == int(stored.kept.sum())


def test_parquet_embeddings_carry_their_ids_and_labels(
    tmp_path: Path, embedding_files: dict[str, Path]
) -> None:
    from thresher.workflows.embed import embed_run
    from thresher.workflows.init import init_embeddings_run
    from thresher.workflows.run import open_run

    res = init_embeddings_run(tmp_path / "run", embeddings=embedding_files["parquet"])
    emb = embed_run(open_run(res.run_dir))
    np.testing.assert_array_equal(np.asarray(emb.values), np.load(embedding_files["values"]))
    assert emb.ids[0] == "img_0000"
    assert emb.labels is not None
    assert emb.labels[-1] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["thresher", "evaluate", "RUN", "--seeds", "1"], "needs the model"),
        (["thresher", "labels", "RUN"], "needs the model"),
        (["thresher", "embed", "RUN", "--layer", "fc"], "the model is needed"),
        (["thresher", "embed", "RUN", "--split", "test"], "the model is needed"),
        (["thresher", "filter", "RUN", "--baseline", "el2n", "--keep", "50"], "needs the model"),
        (["thresher", "export", "RUN", "--format", "folder", "--out", "OUT"], "--images DIR"),
    ],
)
def test_model_commands_say_an_embeddings_run_has_no_model(
    cli, tmp_path: Path, embedding_files: dict[str, Path], argv: list[str], message: str
) -> None:
    from thresher.workflows.init import init_embeddings_run

    run = tmp_path / "run"
    init_embeddings_run(
        run, embeddings=embedding_files["values"], ids=embedding_files["ids"],
        labels=embedding_files["labels"],
    )  # fmt: skip
    if argv[1] == "export":
        cli(["filter", str(run)])
    args = [a.replace("RUN", str(run)).replace("OUT", str(tmp_path / "out")) for a in argv[1:]]
    code, _, err = cli(args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_embeddings_with_their_image_folder(tmp_path: Path, digits) -> None:
    from PIL import Image

    from thresher.workflows.export import export_run
    from thresher.workflows.filter import FilterSettings, run_filter
    from thresher.workflows.init import init_embeddings_run
    from thresher.workflows.run import open_run, run_dataset

    train, _ = digits
    folder = tmp_path / "images"
    ids = []
    for k in range(60):
        label = int(train.labels[k])
        rel = f"{label}/{k:03d}.png"
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(train.images[k, 0]).save(folder / rel)
        ids.append(rel)
    order = np.random.default_rng(1).permutation(60)  # the user's row order, not the folder's
    values = train.images[:60].reshape(60, -1).astype(np.float32)[order]
    np.save(tmp_path / "e.npy", values)
    (tmp_path / "ids.txt").write_text("\n".join(np.asarray(ids)[order]))
    res = init_embeddings_run(
        tmp_path / "run", embeddings=tmp_path / "e.npy", ids=tmp_path / "ids.txt", images=folder
    )
    run = open_run(res.run_dir)
    ds = run_dataset(run)
    np.testing.assert_array_equal(ds.ids, np.asarray(ids)[order])  # rows match the embeddings
    np.testing.assert_array_equal(ds.images, train.images[:60][order])
    assert res.classes == list(ds.classes)  # labels from the class folders
    run_filter(run, FilterSettings(outliers=0.1, similar=0.1))
    report = export_run(run, fmt="folder", out=tmp_path / "kept")
    assert report["count"] == len(list((tmp_path / "kept").rglob("*.png")))


# --- bad input ---------------------------------------------------------------------------------
def _refused(cli, argv: list[str], run: Path, *needles: str) -> None:
    code, _, err = cli(argv)
    assert code == 2, err
    for needle in needles:
        assert needle in err
    assert "Traceback" not in err
    assert not run.exists()  # validated before the first write


def test_a_checkpoint_that_does_not_fit_the_model(cli, tmp_path: Path, user_model) -> None:
    module, _, _ = user_model
    wrong = tmp_path / "wrong.pt"
    torch.save({"0.weight": torch.zeros(3, 3)}, wrong)
    run = tmp_path / "run"
    _refused(
        cli, ["init", str(run), "--data", "digits", "--model", f"{module}:make", "--weights",
              str(wrong)], run, "wrong.pt",
    )  # fmt: skip


def test_a_model_whose_outputs_are_not_the_data_classes(cli, tmp_path: Path, user_model) -> None:
    module, _, _ = user_model
    run = tmp_path / "run"
    _refused(
        cli, ["init", str(run), "--data", "digits", "--model", f"{module}:three_classes"], run,
        "outputs 3 class scores", "10 classes",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("reference", "needle"),
    [
        ("no_such_module_xyz:make", "cannot import"),
        ("{module}:maek", "did you mean"),
        ("{folder}/missing.py:make", "no such file"),
    ],
)
def test_bad_model_references(cli, tmp_path: Path, user_model, reference: str, needle: str) -> None:
    module, _, _ = user_model
    run = tmp_path / "run"
    ref = reference.format(module=module, folder=module.parent)
    _refused(cli, ["init", str(run), "--data", "digits", "--model", ref], run, needle)


def test_embeddings_and_ids_of_different_lengths(
    cli, tmp_path: Path, embedding_files: dict[str, Path]
) -> None:
    short = tmp_path / "short.txt"
    short.write_text("\n".join(embedding_files["ids"].read_text().split()[:-1]))
    run = tmp_path / "run"
    _refused(
        cli, ["init", str(run), "--embeddings", str(embedding_files["values"]), "--ids",
              str(short)], run, "300 rows", "299",
    )  # fmt: skip


def test_duplicate_ids(cli, tmp_path: Path, embedding_files: dict[str, Path]) -> None:
    ids = embedding_files["ids"].read_text().split()
    ids[5] = ids[4]
    dup = tmp_path / "dup.txt"
    dup.write_text("\n".join(ids))
    run = tmp_path / "run"
    _refused(
        cli, ["init", str(run), "--embeddings", str(embedding_files["values"]), "--ids",
              str(dup)], run, "img_0004", "unique",
    )  # fmt: skip


def test_nan_rows_and_short_labels(cli, tmp_path: Path, embedding_files: dict[str, Path]) -> None:
    values = np.load(embedding_files["values"])
    values[11, 3] = np.nan
    bad = tmp_path / "nan.npy"
    np.save(bad, values)
    run = tmp_path / "run"
    _refused(
        cli, ["init", str(run), "--embeddings", str(bad), "--ids", str(embedding_files["ids"])],
        run, "img_0011", "NaN",
    )  # fmt: skip
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    _refused(
        cli, ["init", str(run), "--embeddings", str(embedding_files["values"]), "--ids",
              str(embedding_files["ids"]), "--labels", str(labels)], run, "2", "one label per",
    )  # fmt: skip


def test_ids_missing_from_the_image_folder(
    cli, tmp_path: Path, embedding_files: dict[str, Path]
) -> None:
    from PIL import Image

    folder = tmp_path / "images"
    (folder / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a" / "x.png")
    run = tmp_path / "run"
    _refused(
        cli, ["init", str(run), "--embeddings", str(embedding_files["values"]), "--ids",
              str(embedding_files["ids"]), "--images", str(folder)], run, "img_0000",
    )  # fmt: skip


def test_model_and_embeddings_are_exclusive(
    cli, tmp_path: Path, embedding_files: dict[str, Path]
) -> None:
    run = tmp_path / "run"
    _refused(cli, ["init", str(run)], run, "either --model")
    _refused(
        cli, ["init", str(run), "--model", "resnet20", "--embeddings",
              str(embedding_files["values"])], run, "exactly one",
    )  # fmt: skip
    _refused(cli, ["init", str(run), "--model", "resnet20"], run, "--data")
    _refused(
        cli, ["init", str(run), "--embeddings", str(embedding_files["values"]), "--weights",
              "w.pt"], run, "--weights go with --model",
    )  # fmt: skip


# --- from a FilterableInterface (the thesis's Appendix 2) ----------------------------------------
INTERFACE = textwrap.dedent(
    """
    import numpy as np
    import torch
    from torch import nn

    from thresher.data import load_dataset

    class Digits:
        classes = [str(d) for d in range(10)]

        def __init__(self):
            self.data = load_dataset("digits", split="train")
            torch.manual_seed(0)
            self.net = nn.Sequential(
                nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                nn.Linear(16, 10),
            )

        def get_model(self):
            return self.net

        def get_filterable_dataset(self):
            # model input, already normalised; args are the "file names"; labels as class names
            x = torch.from_numpy(self.data.images).float() / 255 * 2 - 1
            for a in range(0, len(x), 200):
                names = [f"digit_{i:04d}.png" for i in range(a, min(a + 200, len(x)))]
                yield x[a : a + 200], names, [str(v) for v in self.data.labels[a : a + 200]]

        def get_image(self, arg):
            row = int(arg[6:10])
            return self.data.images[row, 0]  # channels-last grey
    """
)


def test_a_filterable_interface_is_embedded_with_its_pictures(cli, tmp_path: Path, digits) -> None:
    path = tmp_path / "interface.py"
    path.write_text(INTERFACE)
    run = tmp_path / "run"
    code, out, err = cli(
        ["init", str(run), "--interface", f"{path}:Digits", "--layer", "3", "--size", "16",
         "--json"]
    )  # fmt: skip
    assert code == 0, err
    res = json.loads(out)
    assert res["train_size"] == 1438
    assert res["embedding_dim"] == 16  # the Flatten layer's output
    assert res["images"] == "get_image"
    from thresher.workflows.embed import embed_run
    from thresher.workflows.run import open_run, run_dataset

    emb = embed_run(open_run(run))
    train, _ = digits
    np.testing.assert_array_equal(emb.labels, train.labels)  # class names mapped to indices
    assert emb.ids[5] == "digit_0005.png"
    pictures = run_dataset(open_run(run))
    assert pictures.images.shape == (1438, 1, 16, 16)  # grey pictures stay grey
    code, _, err = cli(["filter", str(run)])
    assert code == 0, err
    code, _, err = cli(["export", str(run), "--format", "folder", "--out", str(tmp_path / "k")])
    assert code == 0, err
    assert len(list((tmp_path / "k").rglob("*.png"))) > 1000
    code, _, err = cli(["evaluate", str(run), "--seeds", "1"])
    assert code == 2
    assert "needs the model" in err


def test_a_bad_interface_is_refused_before_any_write(cli, tmp_path: Path) -> None:
    path = tmp_path / "bad_interface.py"
    path.write_text(
        INTERFACE.replace("yield x[a : a + 200], names, [", "yield x[a : a + 200], names[:-1], [")
        + "\nclass NoModel:\n    def get_filterable_dataset(self):\n        return []\n"
    )
    run = tmp_path / "run"
    _refused(cli, ["init", str(run), "--interface", f"{path}:Digits"], run, "199 items", "200")
    _refused(cli, ["init", str(run), "--interface", f"{path}:NoModel"], run, "get_model()")
    _refused(cli, ["init", str(run), "--interface", f"{path}:Digits", "--data", "digits"], run,
             "--data do not go with --interface")  # fmt: skip


def test_a_model_without_weights_is_the_same_for_the_same_seed(tmp_path: Path) -> None:
    from thresher.models.fingerprint import model_fingerprint
    from thresher.workflows.init import init_model_run
    from thresher.workflows.run import DataSpec, open_run, run_model

    prints = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        res = init_model_run(
            tmp_path / name, data=DataSpec(name="digits"), model="resnet20", seed=seed
        )
        prints.append(model_fingerprint(run_model(open_run(res.run_dir))))
    assert prints[0] == prints[1]
    assert prints[0] != prints[2]
