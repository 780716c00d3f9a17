"""Label issues: which given labels are likely wrong (confident learning, via cleanlab).

Two steps, kept apart so that either can come from elsewhere:

1. :func:`cross_val_pred_probs` — out-of-sample class probabilities: the data are split into
   ``folds`` stratified folds and each fold is predicted by a model trained on the others
   (Thresher's own trainer), so no image is scored by a model that saw its label.
2. :func:`label_issues` — cleanlab's confident learning on those probabilities
   (``cleanlab.filter.find_label_issues`` for how many labels are wrong, ``cleanlab.rank.
   get_label_quality_scores`` for the ranking; the flagged ones are that many highest scores).

``method="ensemble"`` (the default) mixes the out-of-sample probabilities with those of a
k-nearest-neighbour vote in the model's embedding space (weight :data:`VOTE_WEIGHT`), then ranks
by cleanlab's self-confidence; ``method="cleanlab"`` hands the out-of-sample probabilities to
cleanlab as they are. Measured on planted flips (``docs/filtering.md``): on MNIST the mix finds
more random and confusable flips than cleanlab alone; on CIFAR-10 with a weak model it finds more
random flips and fewer confusable ones. Cleanlab's normalised margin did better on MNIST's
confusable flips but collapsed on CIFAR-10 (recall 0.18 against 0.36), so it is not the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thresher.errors import ConfigError, DataError

LABEL_METHODS = ("ensemble", "cleanlab")
# Share of the neighbour vote in the ensemble (0.25 and 0.5 measured alike; 0.25 lost less on
# CIFAR-10's confusable flips).
VOTE_WEIGHT = 0.25


@dataclass(frozen=True, eq=False)
class LabelIssues:
    """Per-sample label verdicts (cleanlab's schema, Thresher's names).

    Attributes:
        ids: ``(N,)`` sample ids.
        labels: ``(N,)`` the given labels.
        is_label_issue: ``(N,)`` bool: as many as cleanlab's confident learning finds wrong,
            the highest ``label_score`` first (ties by id).
        label_score: ``(N,)`` in ``[0, 1]``, higher = the given label is more likely wrong
            (``1 - label quality``).
        suggested_label: ``(N,)`` the most probable class under the probabilities used.
        params: method, folds, k and the counts.
    """

    ids: np.ndarray
    labels: np.ndarray
    is_label_issue: np.ndarray
    label_score: np.ndarray
    suggested_label: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def to_table(self) -> dict[str, list[Any]]:
        return {
            "id": self.ids.tolist(),
            "label": self.labels.tolist(),
            "is_label_issue": self.is_label_issue.tolist(),
            "label_score": self.label_score.tolist(),
            "suggested_label": self.suggested_label.tolist(),
        }

    @classmethod
    def from_table(cls, table: Any, params: dict[str, Any] | None = None) -> LabelIssues:
        cols = {name: table.column(name).to_pylist() for name in table.column_names}
        return cls(
            ids=np.asarray(cols["id"], dtype=str),
            labels=np.asarray(cols["label"], dtype=np.int64),
            is_label_issue=np.asarray(cols["is_label_issue"], dtype=bool),
            label_score=np.asarray(cols["label_score"], dtype=np.float64),
            suggested_label=np.asarray(cols["suggested_label"], dtype=np.int64),
            params=dict(params or {}),
        )

    def summary(self) -> str:
        n = len(self)
        bad = int(self.is_label_issue.sum())
        return f"label issues: {bad}/{n} ({100.0 * bad / max(n, 1):.1f}%) likely mislabelled"

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "summary": self.summary(),
            "count": int(self.is_label_issue.sum()),
        }


def knn_pred_probs(
    embeddings: np.ndarray, labels: np.ndarray, *, num_classes: int, k: int = 10, seed: int = 0
) -> np.ndarray:
    """``(N, K)`` class probabilities from the labels of each row's ``k`` nearest other rows
    (cosine), with add-0.1 smoothing. Out of sample: a row never votes for itself."""
    from thresher.neighbours import NeighbourIndex, normalise_rows

    n = embeddings.shape[0]
    k = min(k, n - 1)
    if k < 1:
        raise DataError("label issues need at least two samples")
    _, nb = NeighbourIndex(normalise_rows(embeddings), metric="cosine", seed=seed).knn(
        k, desc="label neighbours"
    )
    votes = np.zeros((n, num_classes), dtype=np.float64)
    ok = nb >= 0
    rows = np.repeat(np.arange(n), k).reshape(n, k)
    np.add.at(votes, (rows[ok], labels[nb[ok]]), 1.0)
    votes += 0.1
    return (votes / votes.sum(axis=1, keepdims=True)).astype(np.float32)


def label_issues(
    pred_probs: np.ndarray,
    labels: np.ndarray,
    *,
    ids: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
    method: str = "ensemble",
    k: int = 10,
    seed: int = 0,
) -> LabelIssues:
    """Flag and rank likely label errors.

    Parameters
    ----------
    pred_probs : ``(N, K)`` *out-of-sample* class probabilities (rows sum to 1), e.g. from
        :func:`cross_val_pred_probs`. In-sample probabilities hide the errors a model learnt.
    labels : ``(N,)`` int given labels in ``[0, K)``.
    ids : ``(N,)`` sample ids (default ``"0" .. "N-1"``).
    embeddings : ``(N, D)`` features for the ``ensemble`` method's neighbour vote.
    method : ``"ensemble"`` or ``"cleanlab"`` (see the module docs).
    k : neighbours of the vote.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    from thresher.filter.outliers import select_top

    if method not in LABEL_METHODS:
        raise ConfigError(
            f"unknown label-issue method {method!r} (valid: {', '.join(LABEL_METHODS)})"
        )
    probs = np.asarray(pred_probs, dtype=np.float64)
    if labels is None:
        raise DataError(
            "label issues need the given labels, and this data set has none; label it, or "
            "filter outliers and near-duplicates only"
        )
    y = np.asarray(labels)
    if probs.ndim != 2 or probs.shape[0] != y.shape[0]:
        raise DataError(
            f"pred_probs must be (N, K) with one row per label; got {probs.shape} for "
            f"{y.shape[0]} labels"
        )
    n, num_classes = probs.shape
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= num_classes:
        raise DataError(f"labels must be integers in [0, {num_classes}); got {y.dtype} values")
    if not np.isfinite(probs).all() or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise DataError("pred_probs rows must be finite and sum to 1 (apply softmax first)")
    counts = np.bincount(y, minlength=num_classes)
    if (counts > 0).sum() < 2:
        raise DataError("label issues need at least two classes with labelled samples")
    y = y.astype(np.int64)
    if method == "ensemble":
        if embeddings is None:
            raise ConfigError("method='ensemble' needs embeddings= (or use method='cleanlab')")
        if embeddings.shape[0] != n:
            raise DataError(f"{embeddings.shape[0]} embedding rows for {n} labels")
        vote = knn_pred_probs(embeddings, y, num_classes=num_classes, k=k, seed=seed)
        probs = (1.0 - VOTE_WEIGHT) * probs + VOTE_WEIGHT * vote
    rank_by = "self_confidence"
    probs = probs / probs.sum(axis=1, keepdims=True)
    quality = get_label_quality_scores(y, probs, method=rank_by)
    ids_arr = np.asarray(ids if ids is not None else np.arange(n).astype(str)).astype(str)
    score = np.clip(1.0 - np.asarray(quality, dtype=np.float64), 0.0, 1.0)
    # Confident learning says how many labels are wrong; the flagged ones are the highest
    # scores, so the verdict never contradicts the ranking (cleanlab's own set can leave a
    # top-ranked image unflagged when its class pair's estimated noise rate is zero).
    # cleanlab needs every class present in the labels it is given.
    if (counts > 0).all():
        how_many = int(np.asarray(find_label_issues(y, probs), dtype=bool).sum())
    else:
        how_many = int((quality < 0.5).sum())
    flagged = select_top(score, ids_arr, how_many)
    return LabelIssues(
        ids=ids_arr,
        labels=y,
        is_label_issue=flagged,
        label_score=score,
        suggested_label=probs.argmax(axis=1).astype(np.int64),
        params={
            "method": method,
            "rank_by": rank_by,
            "vote_weight": VOTE_WEIGHT if method == "ensemble" else 0.0,
            "k": int(k),
            "issues": int(flagged.sum()),
        },
    )


def cross_val_pred_probs(
    model: Any,
    data: Any,
    *,
    folds: int = 5,
    recipe: Any = None,
    seed: int = 0,
    device: str | None = None,
    transform: Any = None,
) -> np.ndarray:
    """``(N, K)`` out-of-sample softmax probabilities of ``data`` (a labelled ImageDataset)
    from ``folds`` models, each trained (Thresher's trainer, seed ``seed + fold``) on the
    other folds. Folds are stratified by label and fixed by ``seed``."""
    import torch

    from thresher.models import uses_test_time_flip
    from thresher.progress import track
    from thresher.train import fit, predict
    from thresher.train.trainer import resolve_transform

    labels = data.labels
    if labels is None:
        raise DataError(
            f"{data.name} has no labels; label issues need labelled data (filter outliers and "
            "near-duplicates only, or label it first)"
        )
    if not 2 <= folds <= len(data):
        raise ConfigError(f"folds must be between 2 and the number of samples, got {folds}")
    rng = np.random.default_rng(seed)
    fold = np.empty(len(data), dtype=np.int64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        fold[rng.permutation(rows)] = np.arange(rows.shape[0]) % folds
    tf = resolve_transform(model, transform)
    out = np.zeros((len(data), data.num_classes), dtype=np.float32)
    for f in track(range(folds), total=folds, desc="cross-validated training"):
        train_rows = np.flatnonzero(fold != f)
        test_rows = np.flatnonzero(fold == f)
        result = fit(
            model,
            data,
            recipe=recipe,
            seed=seed + f,
            device=device,
            transform=tf,
            indices=train_rows,
        )
        logits = predict(
            result.model,
            data.images[test_rows],
            transform=tf,
            device=device,
            precision=result.precision,
            test_time_flip=uses_test_time_flip(model),
        )
        out[test_rows] = torch.softmax(torch.from_numpy(logits).float(), dim=1).numpy()
    return out


__all__ = [
    "LABEL_METHODS",
    "LabelIssues",
    "cross_val_pred_probs",
    "knn_pred_probs",
    "label_issues",
]
