"""ROC summaries, bootstrap intervals and correlations for membership / unlearning inference.

BinUI (binary unlearning inference, the IAM paper's protocol): scores oriented "higher = positive";
the IAM protocol takes *retained* samples as positives with the membership score, so TPR at low FPR
means "detect retained at a low false-retained rate" and TNR at low FNR means "detect unlearned".
ScoreUI (graded unlearning): :func:`spearman` (the headline) and :func:`pearson` between scores and
the ground-truth degree of membership.
"""
from __future__ import annotations

import warnings
from typing import Callable, Literal, Sequence

import numpy as np
from scipy import stats

__all__ = ["roc_curve_fast", "auc_score", "binary_report", "bootstrap_ci", "spearman", "pearson"]

DEFAULT_RATES: tuple[float, ...] = (1e-1, 1e-2, 1e-3)


def _check_binary(scores: np.ndarray, is_positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(is_positive).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} differ in length")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError("need at least one positive and one negative")
    return s, y


def roc_curve_fast(scores: np.ndarray, is_positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve by one sort: (fpr, tpr, thresholds), predicting positive when score >= threshold.

    Tied scores form a single point (as in ``sklearn.metrics.roc_curve`` with
    ``drop_intermediate=False``); the curve starts at (0, 0) with threshold +inf and ends at (1, 1).
    O(n log n).
    """
    s, y = _check_binary(scores, is_positive)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # last index of every run of equal scores: one ROC point per distinct threshold
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    tpr = np.r_[0.0, tps / y.sum()]
    fpr = np.r_[0.0, fps / (~y).sum()]
    thresholds = np.r_[np.inf, s_sorted[last]]
    return fpr, tpr, thresholds


def auc_score(scores: np.ndarray, is_positive: np.ndarray) -> float:
    """ROC AUC = P(score_pos > score_neg) + ½ P(tie) (trapezoid over the tie-collapsed ROC)."""
    fpr, tpr, _ = roc_curve_fast(scores, is_positive)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def binary_report(
    scores: np.ndarray, is_positive: np.ndarray, rates: Sequence[float] = DEFAULT_RATES
) -> dict[str, float]:
    """AUC, TPR at FPR <= r and TNR at FNR <= r for each r in ``rates``, and the best balanced accuracy.

    Low-rate operating points are read conservatively from the ROC's achievable points (no
    interpolation): TPR@FPR=r is the largest TPR among thresholds with FPR <= r, TNR@FNR=r the largest
    TNR = 1 − FPR among thresholds with FNR = 1 − TPR <= r. (The IAM code interpolates with
    ``np.interp``, which can credit a TPR no threshold achieves; the LLM benchmark takes the nearest
    point, which can exceed the FPR budget.) Balanced accuracy = max over thresholds of
    (TPR + TNR)/2 = 1 − (FPR + FNR)/2.

    Keys: ``auc``, ``tpr@fpr=<r>``, ``tnr@fnr=<r>`` (r formatted with ``:g``, e.g. ``tpr@fpr=0.01``),
    ``balanced_accuracy``, ``n_pos``, ``n_neg``.
    """
    s, y = _check_binary(scores, is_positive)
    fpr, tpr, _ = roc_curve_fast(s, y)
    out: dict[str, float] = {"auc": float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))}
    fnr, tnr = 1.0 - tpr, 1.0 - fpr
    for r in rates:
        # (0, 0) and (1, 1) are always on the curve, so both maxima are over non-empty sets
        out[f"tpr@fpr={r:g}"] = float(tpr[fpr <= r].max())
        out[f"tnr@fnr={r:g}"] = float(tnr[fnr <= r].max())
    out["balanced_accuracy"] = float(np.max(1.0 - (fpr + fnr) / 2.0))
    out["n_pos"] = float(y.sum())
    out["n_neg"] = float((~y).sum())
    return out


def bootstrap_ci(
    scores: np.ndarray,
    labels: np.ndarray,
    stat_fn: Callable[[np.ndarray, np.ndarray], float] = auc_score,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    class_balanced: bool = True,
    class_size: Literal["own", "min"] = "own",
) -> dict[str, float]:
    """Percentile bootstrap interval of ``stat_fn(scores, labels)``.

    ``class_balanced=True`` resamples positives and negatives separately (with replacement), so every
    replicate keeps both classes — ``class_size="own"`` draws each class at its own size (a stratified
    bootstrap, class proportions fixed), ``"min"`` draws min(n_pos, n_neg) from each (the IAM LLM
    fork's class-balanced bootstrap; the statistic is then that of a balanced set).
    ``class_balanced=False`` resamples all n points jointly; replicates with a single class are
    redrawn.

    Returns ``{"estimate": stat on the full data, "low", "high": the (1 ± level)/2 percentiles,
    "std": bootstrap standard deviation, "n_boot"}``.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError("scores and labels differ in length")
    if not 0.0 < level < 1.0:
        raise ValueError("level must be in (0, 1)")
    if class_size not in ("own", "min"):
        raise ValueError(f"class_size must be 'own' or 'min', got {class_size!r}")
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("need at least one positive and one negative")
    rng = np.random.default_rng(seed)
    stats_ = np.empty(n_boot)
    for b in range(n_boot):
        if class_balanced:
            n_p, n_n = (pos.size, neg.size) if class_size == "own" else (min(pos.size, neg.size),) * 2
            idx = np.concatenate([rng.choice(pos, n_p), rng.choice(neg, n_n)])
        else:
            while True:
                idx = rng.integers(0, s.size, s.size)
                if 0 < y[idx].sum() < s.size:
                    break
        stats_[b] = stat_fn(s[idx], y[idx])
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats_, [tail, 1.0 - tail])
    return {"estimate": float(stat_fn(s, y)), "low": float(lo), "high": float(hi),
            "std": float(stats_.std(ddof=1)) if n_boot > 1 else 0.0, "n_boot": float(n_boot)}


def _corr(fn, x: np.ndarray, y: np.ndarray) -> float:
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError("inputs differ in length")
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")  # undefined for constant input; scipy would warn and return nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(a, b)[0])


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (ScoreUI headline metric); nan for constant input."""
    return _corr(stats.spearmanr, x, y)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; nan for constant input."""
    return _corr(stats.pearsonr, x, y)
