"""Download the named data sets for users who are online: resumable, verified, atomic.

Each file streams into ``<final>.part``; an existing ``.part`` resumes with an HTTP Range
request (a server that ignores Range answers 200 and the download restarts). Only a verified
file is renamed to its final name; a file that fails verification is deleted. Archives (CIFAR)
are then unpacked into the root, refusing any member outside it and any link.

A mirror (``base_url=`` or ``$THRESHER_MIRROR``) holds ``<name>/<file>`` for each data set,
e.g. ``<mirror>/mnist/train-images-idx3-ubyte.gz``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from thresher.data.checksums import ARCHIVE_MD5, IDX_SHA256, file_digest, sha256_bytes
from thresher.errors import FetchError
from thresher.progress import enabled as progress_enabled

MIRROR_ENV = "THRESHER_MIRROR"
_CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set as published.

    Attributes:
        filename: the name on the server (and on a mirror, under ``<name>/``).
        url: the canonical download address.
        target: where it is stored, relative to the data root.
        sha256: SHA-256 of the decompressed content (gzip files) or of the file itself.
        md5: MD5 of the file itself (the only checksum published for the CIFAR tarballs).
        extract_to: for archives, the folder (relative to the root) the archive unpacks to.
        members: files that must exist in ``extract_to`` after unpacking.
    """

    filename: str
    url: str
    target: str
    sha256: str | None = None
    md5: str | None = None
    extract_to: str | None = None
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch` did: paths relative to ``root``."""

    name: str
    root: Path
    downloaded: tuple[str, ...]
    present: tuple[str, ...]
    extracted: tuple[str, ...]


def _idx_files(name: str, base: str) -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(
            filename=f"{stem}.gz",
            url=f"{base}{stem}.gz",
            target=f"{name}/{stem}.gz",
            sha256=IDX_SHA256[(name, stem)],
        )
        for (ds, stem) in IDX_SHA256
        if ds == name
    )


_KRIZ = "https://www.cs.toronto.edu/~kriz/"
SOURCES: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": _idx_files("mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    "fashion-mnist": _idx_files(
        "fashion-mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    ),
    "cifar10": (
        RemoteFile(
            filename="cifar-10-python.tar.gz",
            url=f"{_KRIZ}cifar-10-python.tar.gz",
            target="cifar-10-python.tar.gz",
            md5=ARCHIVE_MD5["cifar-10-python.tar.gz"],
            extract_to="cifar-10-batches-py",
            members=(*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"),
        ),
    ),
    "cifar100": (
        RemoteFile(
            filename="cifar-100-python.tar.gz",
            url=f"{_KRIZ}cifar-100-python.tar.gz",
            target="cifar-100-python.tar.gz",
            md5=ARCHIVE_MD5["cifar-100-python.tar.gz"],
            extract_to="cifar-100-python",
            members=("train", "test", "meta"),
        ),
    ),
}
"""Data set name -> its published files. ``digits`` ships inside scikit-learn."""
BUNDLED = ("digits",)


# --- verification ---------------------------------------------------------------------------
def _mismatch(path: Path, remote: RemoteFile) -> str | None:
    """``None`` when ``path`` verifies, else what is wrong with it."""
    if remote.md5 is not None:
        actual = file_digest(path, algorithm="md5")
        if actual != remote.md5:
            return f"MD5 mismatch (expected {remote.md5}, got {actual})"
    if remote.sha256 is not None:
        if remote.filename.endswith(".gz"):
            try:
                actual = sha256_bytes(gzip.decompress(path.read_bytes()))
            except (EOFError, OSError, zlib.error) as err:
                return f"not a complete gzip file ({err})"
        else:
            actual = file_digest(path)
        if actual != remote.sha256:
            return f"SHA-256 mismatch (expected {remote.sha256}, got {actual})"
    return None


# --- download ---------------------------------------------------------------------------------
def _bar(total: int | None, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=None if progress_enabled() else True,
        leave=False,
    )


def _open(url: str, *, offset: int, timeout: float) -> Any:
    from thresher import __version__

    headers = {"User-Agent": f"thresher/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    host = urlsplit(url).netloc or url
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and offset:
            return None  # the .part is as long as the file or longer: start over
        raise FetchError(
            f"download of {url} failed: HTTP {err.code} {err.reason}; check the address or the "
            f"mirror (--base-url / {MIRROR_ENV}) and retry later"
        ) from err
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise FetchError(
            f"cannot reach {host} ({reason}); check the network connection, or use a mirror "
            f"(--base-url / {MIRROR_ENV}) or copy the files into the data root by hand"
        ) from err


def _chunks(response: Any, url: str, part: Path) -> Iterator[bytes]:
    while True:
        try:
            chunk = response.read(_CHUNK)
        except (OSError, ValueError) as err:  # reset, timeout, IncompleteRead
            raise FetchError(
                f"download of {url} was interrupted after {part.stat().st_size} bytes ({err}); "
                "run the same command again to resume"
            ) from err
        if not chunk:
            return
        yield chunk


def download(url: str, part: Path, *, timeout: float = 60.0) -> None:
    """Download ``url`` into ``part``, resuming from its current length when it exists."""
    part.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, offset=offset, timeout=timeout)
    if response is None:
        part.unlink()
        offset = 0
        response = _open(url, offset=0, timeout=timeout)
    with response:
        resumed = False
        if offset and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            resumed = content_range.startswith(f"bytes {offset}-")
            if not resumed:  # a range we did not ask for: start over without trusting it
                response.close()
                part.unlink()
                download(url, part, timeout=timeout)
                return
        start = offset if resumed else 0
        length = response.headers.get("Content-Length")
        total = int(length) + start if length and length.isdigit() else None
        with open(part, "ab" if resumed else "wb") as fh, _bar(total, part.name) as bar:
            bar.update(start)
            for chunk in _chunks(response, url, part):
                fh.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise FetchError(
            f"download of {url} stopped at {size} of {total} bytes; run the same command again "
            "to resume"
        )


# --- extraction -------------------------------------------------------------------------------
def safe_extract(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` into ``dest``: regular files and folders only, all inside ``dest``."""
    dest_resolved = dest.resolve()
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                posix = PurePosixPath(member.name)
                target = (dest / member.name).resolve()
                if (
                    posix.is_absolute()
                    or ".." in posix.parts
                    or not target.is_relative_to(dest_resolved)
                ):
                    raise FetchError(
                        f"{archive}: member {member.name!r} points outside the target folder; "
                        "refusing to unpack it: the archive is not the published one"
                    )
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.isfile():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    handle = tar.extractfile(member)
                    if handle is None:
                        continue
                    with open(target, "wb") as out:
                        shutil.copyfileobj(handle, out)
                else:
                    raise FetchError(
                        f"{archive}: member {member.name!r} is a link or special file; refusing "
                        "to unpack it: the archive is not the published one"
                    )
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise FetchError(f"cannot unpack {archive} ({err}); delete it and fetch again") from err


def _extract(archive: Path, root: Path, remote: RemoteFile) -> None:
    assert remote.extract_to is not None
    final = root / remote.extract_to
    staging = Path(tempfile.mkdtemp(prefix=".thresher-extract-", dir=root))
    try:
        safe_extract(archive, staging)
        unpacked = staging / remote.extract_to
        missing = [m for m in remote.members if not (unpacked / m).is_file()]
        if missing:
            raise FetchError(
                f"{archive} unpacked without {remote.extract_to}/{missing[0]}; the archive is "
                "not the published one: delete it and fetch again"
            )
        if final.exists():  # only with force: swap the old copy out, then drop it
            old = staging / ".old"
            os.replace(final, old)
        os.replace(unpacked, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- entry point ------------------------------------------------------------------------------
def _complete(root: Path, remote: RemoteFile) -> bool:
    if remote.extract_to is None:
        return False
    return all((root / remote.extract_to / m).is_file() for m in remote.members)


def fetch(
    name: str,
    *,
    root: str | os.PathLike[str],
    base_url: str | None = None,
    force: bool = False,
    sources: Mapping[str, tuple[RemoteFile, ...]] | None = None,
    timeout: float = 60.0,
) -> FetchResult:
    """Download data set ``name`` into ``root`` (created if needed) and verify it.

    Parameters:
        name: ``mnist``, ``fashion-mnist``, ``cifar10`` or ``cifar100`` (``digits`` ships with
            scikit-learn: nothing to do).
        root: the data root that :func:`~thresher.data.load_dataset` reads.
        base_url: a mirror holding ``<name>/<file>``; default ``$THRESHER_MIRROR``, else the
            canonical addresses.
        force: download again even when verified files are present.
        sources: the table of published files (default :data:`SOURCES`).
        timeout: seconds to wait for the server at each step.

    Returns:
        :class:`FetchResult` (files already present and verified are not downloaded again).

    Raises:
        FetchError: unknown name, HTTP error, unreachable host, checksum mismatch (the bad
            download is deleted), or an existing file that fails verification.
    """
    table = SOURCES if sources is None else sources
    target_root = Path(root).expanduser()
    if name in BUNDLED and name not in table:
        return FetchResult(name, target_root, (), (), ())
    if name not in table:
        valid = ", ".join(sorted([*table, *BUNDLED]))
        raise FetchError(f"no download source for {name!r}; fetchable data sets: {valid}")
    mirror = base_url if base_url is not None else os.environ.get(MIRROR_ENV) or None
    try:
        target_root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FetchError(
            f"cannot create data root {target_root}: {err.strerror or err}; choose a writable "
            "folder"
        ) from err
    downloaded: list[str] = []
    present: list[str] = []
    extracted: list[str] = []
    for remote in table[name]:
        final = target_root / remote.target
        if not force and _complete(target_root, remote):
            present.append(str(remote.extract_to))
            continue
        if final.exists() and not force:
            problem = _mismatch(final, remote)
            if problem is not None:
                raise FetchError(
                    f"{final} is already there but fails verification: {problem}; delete it "
                    "or fetch with --force"
                )
            present.append(remote.target)
        else:
            url = f"{mirror.rstrip('/')}/{name}/{remote.filename}" if mirror else remote.url
            part = final.with_name(final.name + ".part")
            download(url, part, timeout=timeout)
            problem = _mismatch(part, remote)
            if problem is not None:
                part.unlink(missing_ok=True)
                raise FetchError(
                    f"{url}: downloaded file fails verification: {problem}; the bad file was "
                    "deleted: retry (or use another mirror)"
                )
            os.replace(part, final)
            downloaded.append(remote.target)
        if remote.extract_to is not None:
            _extract(final, target_root, remote)
            extracted.append(remote.extract_to)
    return FetchResult(name, target_root, tuple(downloaded), tuple(present), tuple(extracted))
