"""Training-set nearest adversaries forecast validation false positives (Algorithm 1, Fig. 5,
Table II of Dablain et al.), scored by KL divergence against Fisher's discriminant ratio (eq. 1)
and random distributions.

Definitions (the authors' code never computed Table II; docs/diagnostics.md explains them):

* Validation false positives of reference class R: ``V[R, A]`` = validation items of true class
  ``A != R`` that the model predicts as ``R``. ``P_R = V[R, :] / sum`` over ``A != R``.
* Nearest adversaries (NNB) of R: ``N[R, A]`` = over the training items of class R (or, with
  ``false_positives_only``, over the training items the model predicts as R but that belong to
  another class), the number of their K nearest training neighbours whose label is ``A != R``.
* Fisher's discriminant ratio of R and A: per feature ``(mu_R - mu_A)^2 / (var_R + var_A)``,
  averaged over the features whose pooled variance is non-zero; low = overlapping classes, so
  its forecast is ``Q_R(A) ∝ 1 / FDR(R, A)``.
* Weighting of the NNB forecast: ``"paper"`` uses the counts ``N[R, A]`` as they are;
  ``"class-prior"`` (the default) divides adversary class A's counts by A's training size and
  multiplies them by A's validation size, because a long-tailed training set puts head-class
  neighbours everywhere while a balanced validation set has as many items of each class to
  mistake. On a training set with the validation set's class proportions the two agree.
  Measured on CIFAR-10-LT (docs/diagnostics-results.md): random / NNB went from 1.84x to 9.5x
  (cross-entropy, 16 epochs) and from 0.96x to 3.96x (LDAM-DRW) on models that had not
  memorised their training set.
* Random: ``Q_R ~ Dirichlet(1, ..., 1)``, the KL divergence averaged over ``n_random`` draws.
  Its mean is ``sum_A P(A) log P(A) + H_{C-2}`` (harmonic number), at most ``H_{C-2}`` nats.
* ``KL(P_R || Q_R) = sum_A P_R(A) log(P_R(A) / Q_R(A))`` after adding ``eps`` to every entry of
  both and renormalising. Table II's entry for a method is the mean over the reference classes
  with at least one validation false positive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from thresher.diagnose._result import DiagnosticResult
from thresher.errors import ConfigError, DataError
from thresher.neighbours import nearest_neighbours
from thresher.validation import (
    check_class_sizes,
    check_embeddings,
    check_k,
    check_labels,
    check_several_classes,
    resolve_classes,
)

METHODS = ("nnb", "fdr", "random")
KLD_EPS = 1e-3
#: how the NNB counts become a forecast (module docstring); the first is the default
WEIGHTINGS = ("class-prior", "paper")
#: below this share of cross-class K-NN pairs the training neighbourhoods hardly overlap (a
#: memorised training set): the forecast then rests on a handful of pairs, and the summary says so
SEPARATED_SHARE = 0.02


def adversary_counts(
    labels: np.ndarray,
    neighbours: np.ndarray,
    *,
    num_classes: int,
    predictions: np.ndarray | None = None,
    false_positives_only: bool = False,
) -> np.ndarray:
    """``(C, C)`` int64 ``N[R, A]``: adversary-class neighbours of reference class R's items.

    With ``false_positives_only`` (Algorithm 1 read literally) the items of R are the training
    items predicted as R whose label is another class; it needs ``predictions``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if false_positives_only:
        if predictions is None:
            raise DataError("false_positives_only needs the model's predictions; pass them")
        pred = np.asarray(predictions, dtype=np.int64)
        rows = np.flatnonzero(pred != labels)
        reference = pred[rows]
    else:
        rows = np.arange(labels.size)
        reference = labels[rows]
    k = neighbours.shape[1]
    ref = np.repeat(reference, k)
    adv = labels[neighbours[rows]].ravel()
    keep = ref != adv
    pair = ref[keep] * num_classes + adv[keep]
    return np.bincount(pair, minlength=num_classes * num_classes).reshape(num_classes, -1)


def false_positive_counts(
    labels: np.ndarray, predictions: np.ndarray, *, num_classes: int
) -> np.ndarray:
    """``(C, C)`` int64 ``V[R, A]``: items of true class A predicted as R (diagonal 0)."""
    labels = np.asarray(labels, dtype=np.int64)
    pred = np.asarray(predictions, dtype=np.int64)
    wrong = pred != labels
    pair = pred[wrong] * num_classes + labels[wrong]
    return np.bincount(pair, minlength=num_classes * num_classes).reshape(num_classes, -1)


def fisher_ratio(values: np.ndarray, labels: np.ndarray, *, num_classes: int) -> np.ndarray:
    """``(C, C)`` Fisher's discriminant ratio (eq. 1) averaged over features; NaN on the
    diagonal and for absent classes.

    Per feature ``f``: ``(mu_i[f] - mu_k[f])^2 / (var_i[f] + var_k[f])`` (population variances);
    features with ``var_i + var_k == 0`` are left out of the mean (all features out: ``inf``
    when the means differ anywhere, else 0).
    """
    x = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    d = x.shape[1]
    mu = np.full((num_classes, d), np.nan)
    var = np.full((num_classes, d), np.nan)
    for c in range(num_classes):
        rows = x[labels == c]
        if rows.shape[0]:
            mu[c] = rows.mean(axis=0)
            var[c] = rows.var(axis=0)
    out = np.full((num_classes, num_classes), np.nan)
    for i in range(num_classes):
        for j in range(num_classes):
            if i == j or np.isnan(mu[i, 0]) or np.isnan(mu[j, 0]):
                continue
            num = (mu[i] - mu[j]) ** 2
            den = var[i] + var[j]
            ok = den > 0
            if ok.any():
                out[i, j] = float(np.mean(num[ok] / den[ok]))
            else:
                out[i, j] = np.inf if np.any(num > 0) else 0.0
    return out


def kl_divergence(p: np.ndarray, q: np.ndarray, *, eps: float = KLD_EPS) -> float:
    """``KL(p || q)`` in nats of two non-negative weight vectors, each normalised to sum to 1,
    smoothed by adding ``eps`` to every entry and normalised again.

    Normalising before smoothing makes the score independent of the vectors' units (counts,
    ``1 / FDR`` weights or probabilities get the same smoothing).
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 1 or p.size == 0:
        raise DataError(f"KL divergence needs two vectors of one length, got {p.shape}, {q.shape}")
    if np.any(p < 0) or np.any(q < 0) or not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise DataError("KL divergence needs finite non-negative weights; check the counts")
    if not eps > 0:
        raise ConfigError(f"eps must be > 0, got {eps!r}")
    p = _smoothed_share(p, eps)
    q = _smoothed_share(q, eps)
    return float(np.sum(p * np.log(p / q)))


def _smoothed_share(w: np.ndarray, eps: float) -> np.ndarray:
    total = w.sum()
    share = w / total if total > 0 else w
    return (share + eps) / (share + eps).sum()


def _fdr_forecast(fdr_row: np.ndarray) -> np.ndarray:
    """Forecast weights ``1 / FDR`` (overlap grows as the ratio falls); 0 where infinite."""
    with np.errstate(divide="ignore"):
        w = 1.0 / np.maximum(fdr_row, 1e-12)
    w[~np.isfinite(w)] = 0.0
    return w


@dataclass(frozen=True)
class AdversaryResult(DiagnosticResult):
    """Nearest adversaries against validation false positives (Table II).

    Attributes:
        k: neighbours per training item.
        classes: ``(C,)`` class names.
        false_positives_only: whether NNB counted around training false positives only.
        nnb_counts: ``(C, C)`` ``N[R, A]``, row = reference class (diagonal 0).
        validation_fp: ``(C, C)`` ``V[R, A]`` validation items of A predicted as R.
        fdr: ``(C, C)`` Fisher's discriminant ratio (NaN diagonal).
        kld: ``(3, C)`` KL divergence per method (rows :data:`METHODS`) and reference class;
            NaN for classes without validation false positives.
        eps: the smoothing added before the divergences.
        n_random: random draws averaged for the random baseline.
        weighting: how the counts became the NNB forecast (:data:`WEIGHTINGS`).
        nnb_forecast: ``(C, C)`` the NNB forecast weights (``nnb_counts`` under ``"paper"``).
        cross_class_share: share of the counted K-NN pairs whose neighbour is another class
            (``None`` in results stored before it was recorded).
    """

    k: int
    classes: tuple[str, ...]
    false_positives_only: bool
    nnb_counts: np.ndarray
    validation_fp: np.ndarray
    fdr: np.ndarray
    kld: np.ndarray
    eps: float
    n_random: int
    # (defaults: results stored before these fields existed were computed with raw counts)
    weighting: str = "paper"
    nnb_forecast: np.ndarray | None = None
    cross_class_share: float | None = None

    _int_arrays = ("nnb_counts", "validation_fp")
    _float_arrays = ("fdr", "kld", "nnb_forecast")

    @property
    def table_ii(self) -> dict[str, float]:
        """The paper's Table II row: mean KLD per method and the random : NNB factor."""
        row: dict[str, float] = {}
        for i, m in enumerate(METHODS):
            vals = self.kld[i][~np.isnan(self.kld[i])]
            row[m] = float(vals.mean()) if vals.size else float("nan")
        row["random_over_nnb"] = (
            row["random"] / row["nnb"] if row["nnb"] and not np.isnan(row["nnb"]) else float("nan")
        )
        return row

    @staticmethod
    def _share(counts: np.ndarray) -> np.ndarray:
        total = counts.sum(axis=1, keepdims=True).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, counts / np.where(total > 0, total, 1), np.nan)

    @property
    def nnb_share(self) -> np.ndarray:
        """``(C, C)`` the NNB forecast normalised per reference class (Fig. 5b)."""
        return self._share(self.nnb_counts if self.nnb_forecast is None else self.nnb_forecast)

    @property
    def validation_share(self) -> np.ndarray:
        """``(C, C)`` validation false positives normalised per reference class (Fig. 5a)."""
        return self._share(self.validation_fp)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"k": self.k, "weighting": self.weighting, "table_ii": self.table_ii}
        if self.cross_class_share is not None:
            out["cross_class_share"] = self.cross_class_share
            if self.cross_class_share < SEPARATED_SHARE:
                out["warning"] = (
                    f"only {100 * self.cross_class_share:.2f}% of the training K-NN pairs cross "
                    "classes: the training embeddings separate the classes (a model that fits "
                    "its training set), so the NNB forecast rests on few pairs; diagnose a "
                    "checkpoint from before the training accuracy saturates "
                    "(docs/diagnostics-results.md)"
                )
        return out

    def table(self) -> list[list[str]]:
        """Rows: reference class, validation FPs, KLD of NNB / FDR / random."""
        rows = [["reference class", "validation FPs", "NNB KLD", "FDR KLD", "random KLD"]]
        for c, name in enumerate(self.classes):
            rows.append(
                [name, str(int(self.validation_fp[c].sum()))]
                + ["-" if np.isnan(v) else f"{v:.4f}" for v in self.kld[:, c]]
            )
        t = self.table_ii
        rows.append(
            ["mean (Table II)", str(int(self.validation_fp.sum()))]
            + [f"{t[m]:.4f}" for m in METHODS]
        )
        return rows


def nearest_adversaries(
    values: np.ndarray,
    labels: np.ndarray | None,
    validation_labels: np.ndarray | None,
    validation_predictions: np.ndarray | None,
    *,
    predictions: np.ndarray | None = None,
    k: int = 5,
    classes: tuple[str, ...] | list[str] | None = None,
    neighbours: np.ndarray | None = None,
    false_positives_only: bool = False,
    n_random: int = 100,
    eps: float = KLD_EPS,
    seed: int = 0,
    threads: int | None = None,
    weighting: str = "class-prior",
) -> AdversaryResult:
    """Forecast each reference class's validation false positives from training neighbours.

    Parameters
    ----------
    values : ``(N, D)`` training feature embeddings.
    labels : ``(N,)`` training labels.
    validation_labels, validation_predictions : ``(M,)`` true and predicted classes of the
        validation (or test) split.
    predictions : ``(N,)`` training predictions (for ``false_positives_only``).
    k : neighbours per training item (self excluded).
    classes : class names.
    neighbours : precomputed ``(N, k)`` neighbour rows.
    n_random : Dirichlet draws for the random baseline.
    eps : smoothing of the KL divergence.
    seed : the random baseline's seed.
    weighting : ``"class-prior"`` (adversary counts re-weighted from the training to the
        validation class sizes) or ``"paper"`` (raw counts, Algorithm 1).

    Returns
    -------
    AdversaryResult
    """
    k = check_k(k)
    x = check_embeddings(values)
    n = x.shape[0]
    y = check_labels(labels, n=n, num_classes=len(classes) if classes else None)
    if validation_labels is None or validation_predictions is None:
        raise DataError(
            "nearest adversaries need the validation labels and predictions; "
            "use a labelled validation/test split"
        )
    m = np.asarray(validation_labels).shape[0] if np.ndim(validation_labels) else -1
    vy = check_labels(validation_labels, n=m, what="validation labels")
    vp = check_labels(validation_predictions, n=m, what="validation predictions")
    names = resolve_classes(np.concatenate([y, vy, vp]), classes)
    c = len(names)
    check_several_classes(y, what="nearest adversaries")
    check_class_sizes(y, names, k=k)
    if n_random < 1:
        raise ConfigError(f"n_random must be >= 1, got {n_random}")
    if weighting not in WEIGHTINGS:
        raise ConfigError(
            f"unknown NNB weighting {weighting!r}; use one of {', '.join(WEIGHTINGS)}"
        )
    pred = None
    if predictions is not None:
        pred = check_labels(predictions, n=n, what="predictions")
    if neighbours is None:
        neighbours = nearest_neighbours(x, k=k, threads=threads)
    elif neighbours.shape != (n, k):
        raise DataError(f"neighbours have shape {neighbours.shape}, expected ({n}, {k})")
    nnb = adversary_counts(
        y, neighbours, num_classes=c, predictions=pred, false_positives_only=false_positives_only
    )
    vfp = false_positive_counts(vy, vp, num_classes=c)
    forecast = nnb.astype(np.float64)
    if weighting == "class-prior":
        n_train = np.bincount(y, minlength=c).astype(np.float64)
        n_val = np.bincount(vy, minlength=c).astype(np.float64)
        # a class absent from training has no neighbours to count (its column is 0 already)
        forecast = forecast * np.divide(n_val, n_train, out=np.zeros(c), where=n_train > 0)
    counted_rows = (pred != y).sum() if false_positives_only and pred is not None else n
    cross = float(nnb.sum() / (counted_rows * k)) if counted_rows else 0.0
    fdr = fisher_ratio(x, y, num_classes=c)
    rng = np.random.default_rng(seed)
    kld = np.full((len(METHODS), c), np.nan)
    for r in range(c):
        others = np.array([a for a in range(c) if a != r])
        p = vfp[r, others]
        if p.sum() == 0:
            continue
        kld[0, r] = kl_divergence(p, forecast[r, others], eps=eps)
        kld[1, r] = kl_divergence(
            p, _fdr_forecast(np.nan_to_num(fdr[r, others], nan=np.inf)), eps=eps
        )
        draws = rng.dirichlet(np.ones(others.size), size=n_random)
        kld[2, r] = float(np.mean([kl_divergence(p, q, eps=eps) for q in draws]))
    return AdversaryResult(
        k=k,
        classes=names,
        false_positives_only=false_positives_only,
        nnb_counts=nnb,
        validation_fp=vfp,
        fdr=fdr,
        kld=kld,
        eps=float(eps),
        n_random=int(n_random),
        weighting=weighting,
        nnb_forecast=forecast,
        cross_class_share=cross,
    )
