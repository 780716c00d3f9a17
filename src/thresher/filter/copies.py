"""Pixel-level copies: the same picture shifted, cropped, re-encoded, brightened or noised.

The thesis's near-duplicates are *semantic* (close in a layer's space). Users also expect
copies to be found, and a layer does not put them closest: on real MNIST with planted copies,
a 1-pixel shift left the copy's penultimate-layer neighbour ranking useless (recall 0.02 at the
planted share, ``docs/filtering.md``), because many distinct digits are closer in that space
than a shifted copy is to its original.

The second signal, measured there to find every such copy:

1. Candidate pairs: the ``k`` nearest neighbours of every image in three cheap spaces, each
   robust to a different change: an 8x8 mean-free thumbnail (noise, JPEG, brightness), the
   magnitude of the low 2D Fourier frequencies (shifts), and the model's embedding when given.
2. Each candidate pair is scored by its *aligned* normalised cross-correlation (grey, zero
   mean): the centre of one image (a ``max_shift`` margin cut off) slid over the other, each
   window normalised by its own energy, the best of every shift of up to ``max_shift``
   pixels (one FFT product gives them all) and of centre crops of either image (``crops``,
   resized back): tolerant to small translations and zooms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from thresher.data.types import read_rows
from thresher.device import as_tensor
from thresher.errors import ConfigError, DataError
from thresher.neighbours import NeighbourIndex, normalise_rows
from thresher.progress import track

# Measured on 5,000 real MNIST and CIFAR-10 images with planted copies (docs/filtering.md): the
# most similar *clean* pairs reached 0.983 (MNIST) and 0.978 (CIFAR-10); planted copies scored
# a median of 0.99-1.0. Pairs above this are removed as copies before semantic clustering.
DEFAULT_COPY_THRESHOLD = 0.98
DEFAULT_CROPS = (0.95, 0.9, 0.85)
_PAIR_BLOCK = 4096
# Copies are compared at most at this side: the threshold above was measured at 28-32 px, a
# copy stays a copy when both are pooled, and the aligned correlation's cost grows with the
# pixel count (64 px images took 4x as long for nothing the 32 px view misses).
WORKING_SIDE = 32


@dataclass(frozen=True)
class CopyScores:
    """Aligned pixel similarity of candidate pairs.

    Attributes:
        pairs: ``(P, 2)`` int64 row indices, ``i < j``, each pair once.
        similarity: ``(P,)`` float32 aligned normalised cross-correlation in ``[-1, 1]``.
        row_score: ``(N,)`` float32, each row's best pair similarity (0 without pairs).
        best_match: ``(N,)`` int64, the row that best pair names (``-1`` without pairs).
    """

    pairs: np.ndarray
    similarity: np.ndarray
    row_score: np.ndarray
    best_match: np.ndarray


def _thumbnails(x: torch.Tensor, size: int) -> np.ndarray:
    t = torch.nn.functional.adaptive_avg_pool2d(x, size).reshape(x.shape[0], -1).numpy()
    return normalise_rows(t - t.mean(axis=1, keepdims=True))


def _spectrum(x: torch.Tensor, size: int) -> np.ndarray:
    centred = x - x.mean(dim=(2, 3), keepdim=True)
    mag = torch.fft.rfft2(centred).abs()[:, :, :size, :size].reshape(x.shape[0], -1)
    return normalise_rows(np.log1p(mag.numpy()))


def _candidates(spaces: list[np.ndarray], k: int, seed: int) -> np.ndarray:
    n = spaces[0].shape[0]
    k = min(k, n - 1)
    parts = []
    for space in spaces:
        _, nb = NeighbourIndex(space, metric="cosine", seed=seed).knn(k, desc="copy candidates")
        pairs = np.stack([np.repeat(np.arange(n), k), nb.ravel()], axis=1)
        parts.append(pairs[pairs[:, 1] >= 0])
    pairs = np.sort(np.concatenate(parts), axis=1)
    pairs = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)
    return pairs.astype(np.int64)


def _views(x: torch.Tensor, crops: tuple[float, ...]) -> list[torch.Tensor]:
    """The grey image and each centre crop resized back, each ``(P, H, W)``, zero-mean."""
    h, w = x.shape[2:]
    grey = x.mean(dim=1, keepdim=True)
    views = [grey]
    for f in crops:
        ch, cw = max(1, round(f * h)), max(1, round(f * w))
        top, left = (h - ch) // 2, (w - cw) // 2
        crop = grey[:, :, top : top + ch, left : left + cw]
        views.append(
            torch.nn.functional.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)
        )
    return [v[:, 0] - v[:, 0].mean(dim=(1, 2), keepdim=True) for v in views]


class _Aligner:
    """Normalised cross-correlation of a centre template of one image slid over another.

    The template is the image without a ``shift``-pixel margin, so every tried translation
    (up to ``shift`` pixels each way) compares full windows: nothing is lost to padding, and
    each window of the other image is normalised by its own energy.
    """

    def __init__(self, h: int, w: int, shift: int) -> None:
        self.size, self.m = (h, w), shift
        self.th, self.tw = h - 2 * shift, w - 2 * shift
        mask = torch.zeros(h, w)
        mask[: self.th, : self.tw] = 1.0
        self.f_mask = torch.fft.rfft2(mask)

    def template(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.m
        t = torch.zeros_like(v)
        t[:, : self.th, : self.tw] = v[:, m : m + self.th, m : m + self.tw]
        norm = t.flatten(1).norm(dim=1).clamp_min(1e-6)
        return torch.fft.rfft2(t / norm[:, None, None]), norm

    def target(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        energy = torch.fft.irfft2(torch.fft.rfft2(v * v) * self.f_mask.conj(), s=self.size)
        return torch.fft.rfft2(v), energy[:, : 2 * self.m + 1, : 2 * self.m + 1]

    def best(
        self, tmpl: tuple[torch.Tensor, torch.Tensor], tgt: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        corr = torch.fft.irfft2(tgt[0] * tmpl[0].conj(), s=self.size)
        corr = corr[:, : 2 * self.m + 1, : 2 * self.m + 1]
        ncc = corr / tgt[1].clamp_min(1e-12).sqrt()
        return ncc.flatten(1).max(dim=1).values


def copy_scores(
    images: np.ndarray,
    *,
    embeddings: np.ndarray | None = None,
    k: int = 5,
    max_shift: int = 3,
    crops: tuple[float, ...] = DEFAULT_CROPS,
    seed: int = 0,
) -> CopyScores:
    """Aligned pixel similarity of each image's likely copies.

    Parameters
    ----------
    images : ``(N, C, H, W)`` uint8 (0-255) or float32 (0-1) pixels; sides above
        :data:`WORKING_SIDE` are area-pooled to it first (``max_shift`` is in those pixels).
    embeddings : ``(N, D)`` a model's features, a third candidate space (optional).
    k : candidate neighbours per image in each space.
    max_shift : the largest translation tolerated, in pixels.
    crops : centre-crop fractions tried on either image (zoom tolerance); ``()`` for none.
    seed : seeds the approximate neighbour index above 20k images.
    """
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        raise DataError(
            f"copy detection needs (N, C, H, W) images, got {getattr(images, 'shape', None)}"
        )
    n = images.shape[0]
    if embeddings is not None and embeddings.shape[0] != n:
        raise DataError(
            f"{n} images but {embeddings.shape[0]} embedding rows; pass the embeddings of "
            "these images, in order"
        )
    if k < 1 or max_shift < 0:
        raise ConfigError(f"k must be >= 1 and max_shift >= 0, got k={k}, max_shift={max_shift}")
    if any(not 0.0 < f < 1.0 for f in crops):
        raise ConfigError(f"crop fractions must lie in (0, 1), got {crops}")
    row_score = np.zeros(n, dtype=np.float32)
    best_match = np.full(n, -1, dtype=np.int64)
    if n < 2:
        empty = np.empty((0, 2), dtype=np.int64)
        return CopyScores(empty, np.empty(0, np.float32), row_score, best_match)
    scale = 255.0 if images.dtype == np.uint8 else 1.0

    h, w = images.shape[2:]
    if max(h, w) > WORKING_SIDE:  # pool large images down to where the threshold was measured
        factor = WORKING_SIDE / max(h, w)
        h, w = max(1, round(h * factor)), max(1, round(w * factor))

    def pixels(rows: np.ndarray | slice) -> torch.Tensor:
        # Float copies are made block by block: the stored (often uint8) array is never
        # duplicated whole, so memory stays that of the data set plus one block.
        x = as_tensor(read_rows(images, rows)).float() / scale
        if tuple(x.shape[2:]) != (h, w):
            x = torch.nn.functional.interpolate(x, size=(h, w), mode="area")
        return x

    thumbs, spectra = [], []
    for a in range(0, n, _PAIR_BLOCK):
        block = pixels(slice(a, a + _PAIR_BLOCK))
        thumbs.append(_thumbnails(block, min(8, h, w)))
        spectra.append(_spectrum(block, 6))
    spaces = [np.concatenate(thumbs), np.concatenate(spectra)]
    if embeddings is not None:
        spaces.append(normalise_rows(np.asarray(embeddings, dtype=np.float32)))
    pairs = _candidates(spaces, k, seed)
    shift = max(0, min(max_shift, (min(h, w) - 1) // 4))  # keep the template at least half
    aligner = _Aligner(h, w, shift)
    sim = np.empty(pairs.shape[0], dtype=np.float32)
    starts = range(0, pairs.shape[0], _PAIR_BLOCK)
    with torch.inference_mode():
        for s in track(starts, total=len(starts), desc="aligned copies"):
            blk = pairs[s : s + _PAIR_BLOCK]
            va = _views(pixels(blk[:, 0]), crops)
            vb = _views(pixels(blk[:, 1]), crops)
            a0 = aligner.template(va[0])
            b_targets = [aligner.target(v) for v in vb]
            best = aligner.best(a0, b_targets[0])
            for crop_a, target_b in zip(va[1:], b_targets[1:], strict=True):
                best = torch.maximum(best, aligner.best(a0, target_b))
                best = torch.maximum(best, aligner.best(aligner.template(crop_a), b_targets[0]))
            sim[s : s + blk.shape[0]] = best.numpy()
    sim = np.clip(sim, -1.0, 1.0)
    # Best pair per row, ties to the lower partner row (deterministic).
    for col, other in ((0, 1), (1, 0)):
        order = np.lexsort((pairs[:, other], sim))  # ascending: the last write wins
        rows, partners, vals = pairs[order, col], pairs[order, other], sim[order]
        better = vals >= row_score[rows]
        row_score[rows[better]] = vals[better]
        best_match[rows[better]] = partners[better]
    return CopyScores(pairs=pairs, similarity=sim, row_score=row_score, best_match=best_match)


def remove_copies(
    scores: CopyScores,
    rows: np.ndarray,
    ids: np.ndarray,
    *,
    budget: int,
    threshold: float = DEFAULT_COPY_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remove up to ``budget`` copies among ``rows``, most similar pairs first.

    Each pair above ``threshold`` with both members in ``rows`` joins the two groups; the
    member with the larger id goes, pointing at the one that stays (so an original with a
    lower id is kept; ties between groups resolve the same way on every run).

    Returns ``(removed_rows, representative_rows, similarity)``, each ``(R,)``.
    """
    if budget <= 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy(), np.empty(0, dtype=np.float32)
    inside = np.zeros(ids.shape[0], dtype=bool)
    inside[rows] = True
    ok = (scores.similarity >= threshold) & inside[scores.pairs[:, 0]] & inside[scores.pairs[:, 1]]
    pairs, sim = scores.pairs[ok], scores.similarity[ok]
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -sim))
    parent: dict[int, int] = {}

    def root(r: int) -> int:
        while r in parent:
            r = parent[r]
        return r

    removed: list[int] = []
    pair_sim: list[float] = []
    for p in order:
        if len(removed) >= budget:
            break
        a, b = root(int(pairs[p, 0])), root(int(pairs[p, 1]))
        if a == b:
            continue
        stay, go = (a, b) if ids[a] < ids[b] else (b, a)
        parent[go] = stay
        removed.append(go)
        pair_sim.append(float(sim[p]))
    gone = np.asarray(removed, dtype=np.int64)
    reps = np.asarray([root(r) for r in removed], dtype=np.int64)
    return gone, reps, np.asarray(pair_sim, dtype=np.float32)


__all__ = ["DEFAULT_COPY_THRESHOLD", "CopyScores", "copy_scores", "remove_copies"]
