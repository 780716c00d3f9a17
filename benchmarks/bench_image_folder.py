"""A real image folder at scale: 200,000 JPEGs of mixed sizes around 224 px through
``thresher init`` (scan + pixel cache), ``embed`` (a small CNN) and ``filter`` (issue 17).

    .venv/bin/python benchmarks/bench_image_folder.py                    # 200,000 images
    .venv/bin/python benchmarks/bench_image_folder.py --images 20000     # a quick look
    .venv/bin/python benchmarks/bench_image_folder.py --kill-at 0.4      # + SIGKILL, resume

The folder is generated once (kept under --work, reused): the real CIFAR-10 images from
``$THRESHER_DATA`` scaled to random sizes of 192-256 px per side (so shapes and aspect ratios
mix, as in a photo folder), JPEG quality 90, ten class folders, plus the CIFAR-10 test split
the same way. Each stage runs as its own ``thresher`` process; the script prints per stage the
wall time, the peak resident memory (``ru_maxrss``, which counts the file pages of memory maps
the process has touched) and the peak anonymous memory (``RssAnon`` sampled every 0.2 s: what
the process holds itself, the number to compare with the machine's RAM).

Reference, in the same process on the same files: Pillow decoding the first ``--reference``
files one after another at full size (what ``load_image_folder`` does; it also keeps every file
and the whole decoded array in memory, which at 200,000 x 224 px is a 28 GiB allocation).

``--kill-at F`` kills the init process (SIGKILL) once a fraction F of the pixel cache is
written and the embed process once a fraction F of its parts are stored, runs each again (they
resume), and compares the resumed pixel cache and embeddings with an uninterrupted init and
embed of the same folder in a second run (sha256 of ``images.npy`` and ``values.npy``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
THRESHER = [str(Path(sys.executable).parent / "thresher")]


# --- the data --------------------------------------------------------------------------------
def _write_block(args: tuple[str, np.ndarray, np.ndarray, list[str], int, int]) -> int:
    from PIL import Image

    out, images, labels, classes, first, seed = args
    rng = np.random.default_rng(seed)
    for k, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        w, h = (int(v) for v in rng.integers(192, 257, size=2))
        im = Image.fromarray(pixels.transpose(1, 2, 0)).resize((w, h), Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        im.save(Path(out) / classes[int(label)] / f"{first + k:06d}.jpg", quality=90)
    return len(images)


def generate(folder: Path, n_train: int, data_root: str | None) -> None:
    from thresher.data import load_dataset

    marker = folder / f".complete-{n_train}"
    if marker.exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    jobs = []
    for split, n in (("train", n_train), ("test", 10_000)):
        src = load_dataset("cifar10", root=data_root, split=split)
        for c in src.classes:
            (folder / split / c).mkdir(parents=True, exist_ok=True)
        for a in range(0, n, 2000):
            rows = np.arange(a, min(a + 2000, n)) % len(src)
            jobs.append(
                (str(folder / split), src.images[rows], src.labels[rows], list(src.classes), a, a)
            )
    with ProcessPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        done = sum(pool.map(_write_block, jobs))
    marker.touch()
    print(f"generated {done} JPEGs in {time.perf_counter() - t0:.0f} s under {folder}")


# --- measuring one thresher process ----------------------------------------------------------
def measured(argv: list[str], *, kill_when: callable | None = None) -> dict[str, float]:
    """Run ``thresher ARGV``; wall time, peak RSS and peak anonymous RSS (sampled)."""
    env = {**os.environ, "THRESHER_PROGRESS": "0"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([*THRESHER, *argv], env=env, stdout=subprocess.PIPE, text=True)
    peak_anon = 0
    killed = False
    finished = threading.Event()

    def sample() -> None:
        nonlocal peak_anon, killed
        status = Path(f"/proc/{proc.pid}/status")
        while not finished.is_set():
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("RssAnon:"):
                        peak_anon = max(peak_anon, int(line.split()[1]) * 1024)
            except OSError:
                return
            if kill_when is not None and not killed and kill_when():
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    # wait4: this process's own peak RSS (getrusage(RUSAGE_CHILDREN) is a max over all)
    _, status, usage = os.wait4(proc.pid, 0)
    finished.set()
    watcher.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "seconds": time.perf_counter() - t0,
        "returncode": proc.returncode,
        "peak_rss_gib": usage.ru_maxrss / 2**20,
        "peak_anon_gib": peak_anon / 2**30,
        "stdout": stdout,
        "killed": killed,
    }


def reference_decode(folder: Path, count: int) -> float:
    """Images/s of serial full-size Pillow decoding (what load_image_folder does)."""
    from PIL import Image

    files = sorted((folder / "train").rglob("*.jpg"))[:count]
    t0 = time.perf_counter()
    for f in files:
        with Image.open(f) as im:
            np.asarray(im.convert("RGB"))
    return len(files) / (time.perf_counter() - t0)


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=64, help="pixel cache side (model input)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/thresher-bench-folder"))
    parser.add_argument("--reference", type=int, default=5000)
    parser.add_argument("--kill-at", type=float, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    data_root = os.environ.get("THRESHER_DATA", str(REPO.parent / "shared" / "data"))
    folder = args.work / f"jpegs-{args.images}"
    generate(folder, args.images, data_root)
    run = args.work / "run"
    shutil.rmtree(run, ignore_errors=True)
    init = ["init", str(run), "--data", str(folder), "--model", "cifar_small",
            "--size", str(args.size), "--json"]  # fmt: skip
    from thresher.device import cpu_model

    figures: dict[str, object] = {
        "images": args.images,
        "size": args.size,
        "cpus": len(os.sched_getaffinity(0)),
        "cpu": cpu_model(),
    }
    if args.kill_at is not None:
        cache = run / "pixels" / "train" / "done.txt"
        chunks = -(-args.images // 512)

        def cut() -> bool:
            try:
                return len(cache.read_text().split()) >= args.kill_at * chunks
            except OSError:
                return False

        killed = measured(init, kill_when=cut)
        print(f"init killed (SIGKILL) after {killed['seconds']:.1f} s: {killed['killed']}")
        figures["killed_after_seconds"] = killed["seconds"]
    stages = {}
    stages["init"] = measured(init)
    if args.kill_at is not None:  # the embedding too: killed once its parts pass the fraction
        n_parts = -(-args.images // 32_768)

        def embed_cut() -> bool:
            return len(list(run.glob("embeddings/*/parts/*.npz"))) >= args.kill_at * n_parts

        cut_embed = measured(["embed", str(run), "--json"], kill_when=embed_cut)
        print(f"embed killed (SIGKILL) after {cut_embed['seconds']:.1f} s: {cut_embed['killed']}")
        figures["embed_killed_after_seconds"] = cut_embed["seconds"]
    stages["embed"] = measured(["embed", str(run), "--json"])
    stages["filter"] = measured(["filter", str(run), "--json"])
    for name, res in stages.items():
        if res["returncode"] != 0:
            raise SystemExit(f"{name} failed with exit code {res['returncode']}")
    report = json.loads(stages["init"]["stdout"])
    n = report["train_size"] + (report["test_size"] or 0)
    meta = json.loads((run / "pixels" / "train" / "plan.json").read_text())
    if args.kill_at is not None:
        resumed = file_hash(run / "pixels" / "train" / "images.npy")
        clean = args.work / "clean"
        shutil.rmtree(clean, ignore_errors=True)
        whole = measured(["init", str(clean), "--data", str(folder), "--model", "cifar_small",
                          "--size", str(args.size), "--json"])  # fmt: skip
        figures["resumed_identical"] = resumed == file_hash(
            clean / "pixels" / "train" / "images.npy"
        )
        figures["uninterrupted_init"] = {k: whole[k] for k in ("seconds", "peak_anon_gib")}
        shutil.rmtree(clean, ignore_errors=True)
        # the resumed embeddings against an uninterrupted embed by the same model of the same run
        resumed_values = file_hash(next(run.glob("embeddings/*/values.npy")))
        aside = args.work / "embeddings-resumed"
        shutil.rmtree(aside, ignore_errors=True)
        shutil.move(str(run / "embeddings"), str(aside))
        measured(["embed", str(run), "--json"])
        figures["embedding_resumed_identical"] = resumed_values == file_hash(
            next(run.glob("embeddings/*/values.npy"))
        )
        shutil.rmtree(aside, ignore_errors=True)
        report = json.loads(whole["stdout"])  # the decode rate of the uninterrupted build
    caches = report["pixel_cache"].values()
    decode_rate = sum(c["decoded"] for c in caches) / sum(c["seconds"] for c in caches)
    ref_rate = reference_decode(folder, args.reference)
    figures.update(
        {
            "stages": {
                k: {kk: v[kk] for kk in ("seconds", "peak_anon_gib", "peak_rss_gib")}
                for k, v in stages.items()
            },
            "peak_rss_gib_any_stage": max(v["peak_rss_gib"] for v in stages.values()),
            # with --kill-at the timed init is the resumed one (it decodes only what is left)
            "init_images_per_second": None if args.kill_at else n / stages["init"]["seconds"],
            "pixel_cache_images_per_second": decode_rate,
            "reference_serial_decode_images_per_second": ref_rate,
            "plan": meta,
            "test_accuracy_untrained": report["test_accuracy"],
        }
    )
    print(f"{args.images:,} train + 10,000 test JPEGs, 192-256 px, cache at {args.size} px, "
          f"{figures['cpus']} CPUs ({figures['cpu']})")  # fmt: skip
    for name, res in stages.items():
        print(
            f"  {name:7s} {res['seconds']:8.1f} s   peak RSS {res['peak_rss_gib']:.2f} GiB "
            f"(anonymous {res['peak_anon_gib']:.2f} GiB)"
        )
    print(
        f"  peak RSS (incl. mapped file pages), any stage: {figures['peak_rss_gib_any_stage']:.2f} GiB"
    )
    print(
        f"  pixel cache (decode + resize + write, {figures['cpus']} threads): "
        f"{decode_rate:,.0f} images/s; reference serial full-size decode: {ref_rate:,.0f} "
        f"images/s; ratio {decode_rate / ref_rate:.2f}x"
    )
    if "embedding_resumed_identical" in figures:
        print(
            f"  SIGKILL during embed then resume: identical embeddings = "
            f"{figures['embedding_resumed_identical']}"
        )
    if "resumed_identical" in figures:
        print(
            f"  SIGKILL at {args.kill_at:.0%} then resume: identical cache = {figures['resumed_identical']}"
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
