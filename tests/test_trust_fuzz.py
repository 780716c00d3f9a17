"""Fuzzing the IDX and CIFAR readers (hypothesis): random bytes, mutated valid files and
mutated headers give a data set or a clean DataError, never any other exception.

The default suite runs ``FUZZ_EXAMPLES`` examples per test (fast); the ``slow``-marked deep
run repeats every target with ``DEEP_EXAMPLES``.
"""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thresher.data import load_cifar10, load_idx
from thresher.data.cifar import read_batch
from thresher.data.idx import parse_idx
from thresher.errors import DataError
from trust_helpers import cifar_batch, idx_bytes, pickle_bytes, write_cifar10_folder

FUZZ_EXAMPLES = 300
DEEP_EXAMPLES = 3000
FAST = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
DEEP = settings(max_examples=DEEP_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

RNG = np.random.default_rng(0)
IMAGES = idx_bytes(RNG.integers(0, 256, (3, 4, 5), dtype=np.uint8))
LABELS = idx_bytes(RNG.integers(0, 10, 3, dtype=np.uint8))
BATCHES = {p: pickle_bytes(cifar_batch(2, 9), protocol=p) for p in (2, 4)}


# --- mutations -----------------------------------------------------------------------------------
@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes], *, header: int | None = None) -> bytes:
    """A valid file with some bytes replaced, inserted or deleted, or cut short; ``header``
    confines the replacements to the first ``header`` bytes."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["set", "insert", "delete", "cut"]))
        top = min(len(data), header) if header else len(data)
        if not data or top == 0:
            break
        pos = draw(st.integers(0, top - 1))
        if kind == "set":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert" and header is None:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and header is None:
            del data[pos : pos + draw(st.integers(1, 8))]
        elif kind == "cut" and header is None:
            del data[pos:]
    return bytes(data)


@st.composite
def idx_headers(draw: st.DrawFn) -> bytes:
    """A syntactically plausible IDX header (any dtype code, 0-255 dims, any 32-bit sizes),
    followed by a few data bytes."""
    ndim = draw(st.integers(0, 255))
    dims = draw(st.lists(st.integers(0, 2**32 - 1), min_size=min(ndim, 8), max_size=min(ndim, 8)))
    head = bytes([0, 0, draw(st.integers(0, 255)), ndim])
    body = b"".join(d.to_bytes(4, "big") for d in dims)
    return head + body + draw(st.binary(max_size=64))


# --- targets: each returns normally or raises DataError ---------------------------------------------
def _idx_parse(data: bytes) -> None:
    try:
        values = parse_idx(data)
    except DataError:
        return
    # accepted: the header's shape and the byte count agree with what came back
    assert values.ndim == data[3]
    assert 4 + 4 * values.ndim + values.nbytes == len(data)


def _idx_files(images: bytes, labels: bytes, compress: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, blob in (
            ("train-images-idx3-ubyte", images),
            ("train-labels-idx1-ubyte", labels),
        ):
            if compress:
                (folder / f"{name}.gz").write_bytes(gzip.compress(blob, mtime=0))
            else:
                (folder / name).write_bytes(blob)
        try:
            ds = load_idx(folder, split="train")
        except DataError:
            return
        assert ds.images.ndim == 4
        assert len(ds.labels) == len(ds.images)  # type: ignore[arg-type]


_CIFAR_DIR = tempfile.TemporaryDirectory()
CIFAR = write_cifar10_folder(Path(_CIFAR_DIR.name) / "cifar-10-batches-py", n=2)


def _cifar_batch(blob: bytes) -> None:
    (CIFAR / "test_batch").write_bytes(blob)
    try:
        read_batch(CIFAR / "test_batch")
        ds = load_cifar10(CIFAR, split="test")
    except DataError:
        return
    assert ds.images.shape[1:] == (3, 32, 32)
    assert len(ds.labels) == len(ds.images)  # type: ignore[arg-type]


TARGETS: dict[str, tuple[Callable[..., None], st.SearchStrategy[tuple[object, ...]]]] = {
    "idx-random-bytes": (_idx_parse, st.tuples(st.binary(max_size=512))),
    "idx-mutated": (_idx_parse, st.tuples(mutated([IMAGES, LABELS]))),
    "idx-header": (_idx_parse, st.tuples(idx_headers())),
    "idx-header-mutated": (_idx_parse, st.tuples(mutated([IMAGES, LABELS], header=16))),
    "idx-files": (
        _idx_files,
        st.tuples(mutated([IMAGES]), mutated([LABELS]) | st.just(LABELS), st.booleans()),
    ),
    "cifar-random-bytes": (_cifar_batch, st.tuples(st.binary(max_size=512))),
    "cifar-mutated": (_cifar_batch, st.tuples(mutated(list(BATCHES.values())))),
}


def _fuzz(target: str, budget: settings) -> int:
    """Run ``target`` under ``budget``; returns how many examples it ran."""
    fn, strategy = TARGETS[target]
    ran = 0

    def one(args: tuple[object, ...]) -> None:
        nonlocal ran
        ran += 1
        fn(*args)

    budget(given(strategy)(one))()
    return ran


@pytest.mark.parametrize("target", list(TARGETS))
def test_reader_gives_data_or_a_clean_data_error(target: str) -> None:
    assert _fuzz(target, FAST) >= FUZZ_EXAMPLES


@pytest.mark.slow
@pytest.mark.parametrize("target", list(TARGETS))
def test_reader_survives_a_deep_fuzz(target: str) -> None:
    assert _fuzz(target, DEEP) >= DEEP_EXAMPLES
