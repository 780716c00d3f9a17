"""fetch() against a local HTTP server with Range support; never a real host."""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import socket
import struct
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from thresher.data import RemoteFile, fetch, load_dataset, load_idx
from thresher.errors import FetchError

# --- a small file server that understands Range --------------------------------------------


@dataclass
class ServerState:
    root: Path
    ignore_range: bool = False
    drop_after: int | None = None  # send only this many body bytes, then hang up
    requests: list[tuple[str, str | None]] = field(default_factory=list)


def make_handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean

        def do_GET(self) -> None:
            range_header = self.headers.get("Range")
            state.requests.append((self.path, range_header))
            path = state.root / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404, "Not Found")
                return
            data = path.read_bytes()
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header or "")
            if match and not state.ignore_range:
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else len(data) - 1
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = data[start : end + 1]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            else:
                body = data
                self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.drop_after is not None:
                self.wfile.write(body[: state.drop_after])
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, ServerState]]:
    state = ServerState(root=tmp_path / "mirror")
    state.root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# --- files in the real formats ----------------------------------------------------------------


def idx_gz(values: np.ndarray) -> tuple[bytes, str]:
    raw = bytes([0, 0, 8, values.ndim]) + struct.pack(f">{values.ndim}I", *values.shape)
    raw += values.astype(np.uint8).tobytes()
    return gzip.compress(raw), hashlib.sha256(raw).hexdigest()


@pytest.fixture
def idx_source(server: tuple[str, ServerState]) -> dict[str, tuple[RemoteFile, ...]]:
    """A tiny MNIST-format train split on the mirror and its sources table."""
    _, state = server
    rng = np.random.default_rng(0)
    files = []
    for stem, values in (
        ("train-images-idx3-ubyte", rng.integers(0, 256, (300, 6, 6))),
        ("train-labels-idx1-ubyte", rng.integers(0, 10, 300)),
    ):
        data, digest = idx_gz(values)
        (state.root / "tiny").mkdir(exist_ok=True)
        (state.root / "tiny" / f"{stem}.gz").write_bytes(data)
        files.append(
            RemoteFile(
                filename=f"{stem}.gz",
                url=f"http://example.invalid/{stem}.gz",  # never used: tests pass base_url
                target=f"tiny/{stem}.gz",
                sha256=digest,
            )
        )
    return {"tiny": tuple(files)}


def test_full_fetch_then_load(
    tmp_path: Path, server: tuple[str, ServerState], idx_source: dict
) -> None:
    base, state = server
    root = tmp_path / "data"
    result = fetch("tiny", root=root, base_url=base, sources=idx_source)
    assert result.downloaded == (
        "tiny/train-images-idx3-ubyte.gz",
        "tiny/train-labels-idx1-ubyte.gz",
    )
    assert [p for p, _ in state.requests] == [
        "/tiny/train-images-idx3-ubyte.gz",
        "/tiny/train-labels-idx1-ubyte.gz",
    ]
    assert not list(root.rglob("*.part"))
    ds = load_idx(root / "tiny", split="train")
    assert ds.images.shape == (300, 1, 6, 6)


def test_already_present_makes_no_request(
    tmp_path: Path, server: tuple[str, ServerState], idx_source: dict
) -> None:
    base, state = server
    fetch("tiny", root=tmp_path, base_url=base, sources=idx_source)
    state.requests.clear()
    again = fetch("tiny", root=tmp_path, base_url=base, sources=idx_source)
    assert state.requests == []
    assert again.downloaded == ()
    assert len(again.present) == 2


def test_resume_from_part_file_uses_range(
    tmp_path: Path, server: tuple[str, ServerState], idx_source: dict
) -> None:
    base, state = server
    original = (state.root / "tiny" / "train-images-idx3-ubyte.gz").read_bytes()
    part = tmp_path / "tiny" / "train-images-idx3-ubyte.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(original[:1000])
    fetch("tiny", root=tmp_path, base_url=base, sources=idx_source)
    assert ("/tiny/train-images-idx3-ubyte.gz", "bytes=1000-") in state.requests
    assert (tmp_path / "tiny" / "train-images-idx3-ubyte.gz").read_bytes() == original
    assert not part.exists()


def test_dropped_connection_keeps_part_and_next_run_resumes(
    tmp_path: Path, server: tuple[str, ServerState], idx_source: dict
) -> None:
    base, state = server
    state.drop_after = 700
    with pytest.raises(
        FetchError, match=r"stopped at 700 of \d+ bytes; run the same command again to resume"
    ):
        fetch("tiny", root=tmp_path, base_url=base, sources=idx_source)
    part = tmp_path / "tiny" / "train-images-idx3-ubyte.gz.part"
    assert part.stat().st_size == 700
    assert not (tmp_path / "tiny" / "train-images-idx3-ubyte.gz").exists()
    state.drop_after = None
    fetch("tiny", root=tmp_path, base_url=base, sources=idx_source)
    assert ("/tiny/train-images-idx3-ubyte.gz", "bytes=700-") in state.requests
    assert len(load_idx(tmp_path / "tiny", split="train")) == 300


def test_server_ignoring_range_restarts_download(
    tmp_path: Path, server: tuple[str, ServerState], idx_source: dict
) -> None:
    base, state = server
    state.ignore_range = True
    part = tmp_path / "tiny" / "train-images-idx3-ubyte.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes from another file")
    fetch("tiny", root=tmp_path, base_url=base, sources=idx_source)
    original = (state.root / "tiny" / "train-images-idx3-ubyte.gz").read_bytes()
    assert (tmp_path / "tiny" / "train-images-idx3-ubyte.gz").read_bytes() == original


def test_checksum_mismatch_deletes_download(
    tmp_path: Path, server: tuple[str, ServerState], idx_source: dict
) -> None:
    base, _ = server
    images, labels = idx_source["tiny"]
    bad = {"tiny": (RemoteFile(**{**images.__dict__, "sha256": "0" * 64}), labels)}
    with pytest.raises(FetchError, match=r"fails verification: SHA-256 mismatch \(expected 0{64}, "
                       r"got [0-9a-f]{64}\); the bad file was deleted: retry"):  # fmt: skip
        fetch("tiny", root=tmp_path, base_url=base, sources=bad)
    assert not (tmp_path / "tiny" / "train-images-idx3-ubyte.gz").exists()
    assert not list(tmp_path.rglob("*.part"))


def test_http_404(tmp_path: Path, server: tuple[str, ServerState], idx_source: dict) -> None:
    base, _ = server
    images, _labels = idx_source["tiny"]
    missing = {"tiny": (RemoteFile(**{**images.__dict__, "filename": "nope.gz"}),)}
    with pytest.raises(FetchError, match=r"nope.gz failed: HTTP 404 Not Found; check the address"):
        fetch("tiny", root=tmp_path, base_url=base, sources=missing)
    assert not (tmp_path / "tiny" / "train-images-idx3-ubyte.gz").exists()


def test_unreachable_host(tmp_path: Path, idx_source: dict) -> None:
    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError, match=r"cannot reach 127.0.0.1:\d+ .*check the network"):
        fetch("tiny", root=tmp_path, base_url=f"http://127.0.0.1:{port}", sources=idx_source)


def test_mirror_from_environment(
    tmp_path: Path,
    server: tuple[str, ServerState],
    idx_source: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, state = server
    monkeypatch.setenv("THRESHER_MIRROR", base + "/")
    fetch("tiny", root=tmp_path, sources=idx_source)
    assert len(state.requests) == 2


def test_corrupt_existing_file_is_reported_then_replaced_with_force(
    tmp_path: Path, server: tuple[str, ServerState], idx_source: dict
) -> None:
    base, _ = server
    target = tmp_path / "tiny" / "train-images-idx3-ubyte.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"junk")
    with pytest.raises(FetchError, match=r"already there but fails verification.*--force"):
        fetch("tiny", root=tmp_path, base_url=base, sources=idx_source)
    assert target.read_bytes() == b"junk"  # never silently replaced
    fetch("tiny", root=tmp_path, base_url=base, sources=idx_source, force=True)
    assert len(load_idx(tmp_path / "tiny", split="train")) == 300


def test_unknown_name_lists_fetchable(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match=r"no download source for 'imagenet'; fetchable data sets: "
                       r"cifar10, cifar100, digits, fashion-mnist, mnist"):  # fmt: skip
        fetch("imagenet", root=tmp_path)
    assert fetch("digits", root=tmp_path).downloaded == ()


# --- archives ------------------------------------------------------------------------------------


def tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def cifar_members() -> dict[str, bytes]:
    import pickle  # noqa: TID251 -- writes a synthetic CIFAR batch for the archive

    rng = np.random.default_rng(0)
    members = {}
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
            b"labels": [0, 1, 2, 3],
            b"filenames": [f"{name}_{i}.png".encode() for i in range(4)],
        }
        members[f"cifar-10-batches-py/{name}"] = pickle.dumps(batch, protocol=2)
    meta = {b"label_names": [f"class{i}".encode() for i in range(10)]}
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps(meta, protocol=2)
    return members


def archive_source(data: bytes, state: ServerState) -> dict[str, tuple[RemoteFile, ...]]:
    (state.root / "cifar10").mkdir(exist_ok=True)
    (state.root / "cifar10" / "cifar-10-python.tar.gz").write_bytes(data)
    remote = RemoteFile(
        filename="cifar-10-python.tar.gz",
        url="http://example.invalid/cifar-10-python.tar.gz",
        target="cifar-10-python.tar.gz",
        md5=hashlib.md5(data).hexdigest(),
        extract_to="cifar-10-batches-py",
        members=(*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"),
    )
    return {"cifar10": (remote,)}


def test_archive_is_verified_and_extracted(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    sources = archive_source(tar_gz(cifar_members()), state)
    root = tmp_path / "data"
    result = fetch("cifar10", root=root, base_url=base, sources=sources)
    assert result.extracted == ("cifar-10-batches-py",)
    ds = load_dataset("cifar10", root=root, split="test")
    assert len(ds) == 4
    assert ds.classes[1] == "class1"
    assert sorted(p.name for p in root.iterdir()) == [
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
    ]
    state.requests.clear()
    assert fetch("cifar10", root=root, base_url=base, sources=sources).present == (
        "cifar-10-batches-py",
    )
    assert state.requests == []


def test_archive_with_escaping_member_is_refused(
    tmp_path: Path, server: tuple[str, ServerState]
) -> None:
    base, state = server
    members = cifar_members()
    members["../escaped.txt"] = b"outside"
    sources = archive_source(tar_gz(members), state)
    root = tmp_path / "data"
    with pytest.raises(FetchError, match=r"member '../escaped.txt' points outside the target"):
        fetch("cifar10", root=root, base_url=base, sources=sources)
    assert not (tmp_path / "escaped.txt").exists()
    assert not (root / "cifar-10-batches-py").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".thresher-extract")]
