"""The memory-mapped pixel cache: image folders of any size and mixed shapes, decoded once,
resumable after a kill, unreadable files named; and what reads it (fingerprints, training)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from thresher.data.pixels import build_pixel_cache, decode_file, load_pixel_cache, scan_folder
from thresher.data.types import ImageDataset
from thresher.errors import ConfigError, DataError


def make_folder(root: Path, *, n: int = 40, seed: int = 0, split: str | None = None) -> Path:
    """Two classes of JPEGs and PNGs with mixed sizes and aspect ratios."""
    rng = np.random.default_rng(seed)
    base = root / split if split else root
    for k in range(n):
        cls = "cat" if k % 2 else "dog"
        (base / cls).mkdir(parents=True, exist_ok=True)
        w, h = (int(v) for v in rng.integers(24, 90, size=2))
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        ext = "png" if k % 5 == 0 else "jpg"
        Image.fromarray(pixels).save(base / cls / f"{k:04d}.{ext}")
    return root


def test_scan_lists_ids_labels_and_classes_without_decoding(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "f", n=10)
    scan = scan_folder(folder)
    assert scan.classes == ("cat", "dog")
    assert len(scan) == 10
    assert list(scan.ids) == sorted(scan.ids)
    assert all(
        scan.classes[label] == i.split("/")[0]
        for i, label in zip(scan.ids, scan.labels, strict=True)
    )


def test_shorter_side_then_centre_crop(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    pixels = np.zeros((20, 60, 3), np.uint8)
    pixels[:, 20:40] = 255  # a white square in the centre third
    Image.fromarray(pixels).save(path)
    out = decode_file(path, size=10, channels=3, resize="shorter-crop")
    assert out.shape == (3, 10, 10)
    # only the centre square is kept, scaled to 10 x 10 (bilinear blends the outer columns)
    assert out[:, :, 1:-1].min() == 255
    assert out.mean() > 240
    stretched = decode_file(path, size=10, channels=1, resize="stretch")
    assert stretched.shape == (1, 10, 10)
    assert stretched[0, :, 0].max() == 0  # the black left third is still there
    with pytest.raises(DataError, match="not 10x10"):
        decode_file(path, size=10, channels=3, resize="none")


def test_cache_holds_what_the_decoder_gives_and_reads_back_mapped(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "f", n=30)
    scan = scan_folder(folder)
    report = build_pixel_cache(scan, tmp_path / "cache", size=16, chunk=7, workers=2)
    assert report.images == 30
    assert report.decoded == 30
    ds = load_pixel_cache(tmp_path / "cache")
    assert isinstance(ds.images, np.memmap)
    assert ds.images.shape == (30, 3, 16, 16)
    for k in (0, 13, 29):
        expected = decode_file(folder / scan.files[k], size=16, channels=3, resize="shorter-crop")
        np.testing.assert_array_equal(ds.images[k], expected)
    np.testing.assert_array_equal(ds.ids, scan.ids)
    in_memory = ImageDataset(
        images=np.array(ds.images), labels=ds.labels, ids=ds.ids, classes=ds.classes
    )
    assert ds.fingerprint() == in_memory.fingerprint()  # the recorded one is the real one
    assert ds.subset(ds.ids[:5]).fingerprint() == in_memory.subset(ds.ids[:5]).fingerprint()


def test_an_interrupted_build_resumes_to_the_same_bytes(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "f", n=40)
    scan = scan_folder(folder)
    build_pixel_cache(scan, tmp_path / "whole", size=12, chunk=5, workers=1)

    def stop_after_three(k: int) -> None:
        if k == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_pixel_cache(
            scan, tmp_path / "cut", size=12, chunk=5, workers=1, after_chunk=stop_after_three
        )
    assert not (tmp_path / "cut" / "meta.json").exists()  # not complete: not loadable
    with pytest.raises(DataError, match="not a finished pixel cache"):
        load_pixel_cache(tmp_path / "cut")
    report = build_pixel_cache(scan, tmp_path / "cut", size=12, chunk=5, workers=1)
    assert report.resumed_chunks == 3
    assert report.decoded == 40 - 15
    np.testing.assert_array_equal(
        np.load(tmp_path / "cut" / "images.npy"), np.load(tmp_path / "whole" / "images.npy")
    )


def test_a_sigkill_during_the_build_resumes_to_the_same_bytes(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "f", n=60)
    script = textwrap.dedent(
        f"""
        import os, signal
        from thresher.data.pixels import build_pixel_cache, scan_folder

        def kill(k):
            if k == 4:
                os.kill(os.getpid(), signal.SIGKILL)

        build_pixel_cache(scan_folder({str(folder)!r}), {str(tmp_path / "cut")!r}, size=12,
                          chunk=6, workers=2, after_chunk=kill)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, check=False)
    assert proc.returncode == -signal.SIGKILL
    done = (tmp_path / "cut" / "done.txt").read_text().split()
    assert len(done) == 5
    report = build_pixel_cache(scan_folder(folder), tmp_path / "cut", size=12, chunk=6, workers=2)
    assert report.resumed_chunks == 5
    build_pixel_cache(scan_folder(folder), tmp_path / "whole", size=12, chunk=6, workers=2)
    np.testing.assert_array_equal(
        np.load(tmp_path / "cut" / "images.npy"), np.load(tmp_path / "whole" / "images.npy")
    )


def test_unreadable_files_are_named_then_skipped_without_decoding_again(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "f", n=20)
    (folder / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "dog" / "empty.png").write_bytes(b"")
    scan = scan_folder(folder)
    with pytest.raises(DataError, match=r"2 of 22 images .*cat/broken.jpg.*--on-error skip"):
        build_pixel_cache(scan, tmp_path / "cache", size=8, chunk=4)
    report = build_pixel_cache(scan, tmp_path / "cache", size=8, chunk=4, on_error="skip")
    assert report.decoded == 0  # the refused build's chunks were kept
    assert set(report.skipped) == {"cat/broken.jpg", "dog/empty.png"}
    ds = load_pixel_cache(tmp_path / "cache")
    assert len(ds) == 20
    assert "cat/broken.jpg" not in set(ds.ids)
    assert json.loads((tmp_path / "cache" / "bad.json").read_text()).keys() == set(report.skipped)
    kept = scan_folder(folder)
    row = list(kept.ids).index(ds.ids[-1])
    np.testing.assert_array_equal(
        ds.images[-1],
        decode_file(folder / kept.files[row], size=8, channels=3, resize="shorter-crop"),
    )


def test_a_changed_request_starts_over(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "f", n=10)
    build_pixel_cache(scan_folder(folder), tmp_path / "cache", size=8)
    report = build_pixel_cache(scan_folder(folder), tmp_path / "cache", size=10)
    assert report.decoded == 10
    assert load_pixel_cache(tmp_path / "cache").images.shape[-1] == 10


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"size": 0}, ConfigError, "--size"),
        ({"size": 8, "resize": "squash"}, ConfigError, "shorter-crop"),
        ({"size": 8, "on_error": "ignore"}, ConfigError, "refuse"),
        ({"size": 8, "channels": 2}, ConfigError, "1 or 3"),
    ],
)
def test_bad_requests_are_refused_before_any_write(
    tmp_path: Path, kwargs: dict, error: type, needle: str
) -> None:
    folder = make_folder(tmp_path / "f", n=4)
    with pytest.raises(error, match=needle):
        build_pixel_cache(scan_folder(folder), tmp_path / "cache", **kwargs)
    assert not (tmp_path / "cache").exists()


def test_archives_are_refused_with_the_fix(tmp_path: Path) -> None:
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(b"")
    with pytest.raises(DataError, match="extract it first"):
        scan_folder(archive)


def test_training_from_the_map_equals_training_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from thresher.train import fit, trainer

    folder = make_folder(tmp_path / "f", n=48)
    build_pixel_cache(scan_folder(folder), tmp_path / "cache", size=16)
    mapped = load_pixel_cache(tmp_path / "cache")
    in_memory = ImageDataset(
        images=np.array(mapped.images), labels=mapped.labels, ids=mapped.ids, classes=mapped.classes
    )
    kwargs = {"recipe": "cifar-small", "seed": 1, "device": "cpu", "precision": "fp32"}
    monkeypatch.setattr(trainer, "RESIDENT_LIMIT_BYTES", 0)  # force batch gathering
    a = fit("cifar_small", mapped, **kwargs)
    monkeypatch.setattr(trainer, "RESIDENT_LIMIT_BYTES", 1 << 40)
    b = fit("cifar_small", in_memory, **kwargs)
    for (name, x), (_, y) in zip(
        a.model.state_dict().items(), b.model.state_dict().items(), strict=True
    ):
        assert torch.equal(x, y), name


def test_init_on_an_image_folder_caches_pixels_in_the_run(cli, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "data", n=40, split="train")
    make_folder(tmp_path / "data", n=12, seed=1, split="test")
    run = tmp_path / "run"
    code, out, err = cli(
        [
            "init",
            str(run),
            "--data",
            str(folder),
            "--model",
            "cifar_small",
            "--size",
            "32",
            "--json",
        ]
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["train_size"] == 40
    assert res["test_size"] == 12
    assert res["test_accuracy"] is not None
    from thresher.workflows.run import open_run, run_dataset

    train = run_dataset(open_run(run))
    assert isinstance(train.images, np.memmap)
    assert train.images.shape == (40, 3, 32, 32)
    assert os.path.commonpath([train.source["pixel_cache"], str(run)]) == str(run)
    code, _, err = cli(["filter", str(run), "--outliers", "10", "--similar", "10"])
    assert code == 0, err
    code, _, err = cli(["export", str(run), "--format", "folder", "--out", str(tmp_path / "kept")])
    assert code == 0, err
    exported = sorted(p for p in (tmp_path / "kept").rglob("*") if p.is_file())
    assert exported
    source = folder / "train" / exported[0].parent.name / exported[0].name
    assert exported[0].read_bytes() == source.read_bytes()  # the original file, not re-encoded


def _rss_file_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) * 1024
    pytest.skip("no RssFile in /proc/self/status")


def test_reading_a_memory_map_does_not_keep_it_resident(tmp_path: Path) -> None:
    from thresher.data.types import release_mapped_pages

    big = np.lib.format.open_memmap(
        tmp_path / "a.npy", mode="w+", dtype=np.uint8, shape=(64, 1 << 20)
    )
    big[:] = 7
    big.flush()
    del big
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    before = _rss_file_bytes()
    assert int(mapped[:, ::4096].sum()) == 7 * 64 * 256  # touches every page
    assert _rss_file_bytes() - before > 48 << 20
    release_mapped_pages(mapped[3:5])  # a view releases its whole map
    assert _rss_file_bytes() - before < 16 << 20
    assert int(mapped[10, 0]) == 7  # still readable
    release_mapped_pages(np.zeros(3))  # in-memory arrays: nothing to do


def test_rows_of_a_map_are_read_without_mapping_them(tmp_path: Path) -> None:
    from thresher.data.types import read_rows

    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(5000, 3, 16, 16), dtype=np.uint8)
    np.save(tmp_path / "a.npy", data)
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    before = _rss_file_bytes()
    rows = rng.integers(0, 5000, size=700)
    np.testing.assert_array_equal(read_rows(mapped, rows), data[rows])
    np.testing.assert_array_equal(read_rows(mapped, slice(10, 900)), data[10:900])
    np.testing.assert_array_equal(read_rows(mapped, slice(10, 900, 7)), data[10:900:7])
    np.testing.assert_array_equal(read_rows(mapped, np.array([-1])), data[[-1]])
    assert _rss_file_bytes() - before < 1 << 20  # nothing of the map became resident
    np.testing.assert_array_equal(read_rows(mapped[100:200], [0, 5]), data[[100, 105]])  # a view
    np.testing.assert_array_equal(read_rows(data, rows), data[rows])  # in memory
    with pytest.raises(IndexError, match="out of bounds"):
        read_rows(mapped, np.array([5000]))


def test_the_filter_reads_a_mapped_pixel_cache_without_mapping_it(tmp_path: Path) -> None:
    from thresher.filter import filter_dataset

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(3000, 3, 32, 32), dtype=np.uint8)
    np.save(tmp_path / "p.npy", pixels)
    mapped = np.load(tmp_path / "p.npy", mmap_mode="r")
    values = rng.normal(size=(3000, 8)).astype(np.float32)
    same = filter_dataset(values, images=pixels, outliers=0.01, similar=0.01)  # loads libraries
    before = _rss_file_bytes()
    result = filter_dataset(values, images=mapped, outliers=0.01, similar=0.01)
    assert _rss_file_bytes() - before < 3 << 20  # the 9 MB map was read, not mapped
    np.testing.assert_array_equal(result.kept, same.kept)
