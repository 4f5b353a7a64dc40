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
from sklearn.metrics import auc, roc_curve

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


def _curve(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # labels as int8 {0, 1} (pos_label 1): measured ~15% faster in sklearn's label checks than bool
    return roc_curve(y.astype(np.int8), s, drop_intermediate=False)


def roc_curve_fast(scores: np.ndarray, is_positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Full ROC curve ``(fpr, tpr, thresholds)``, predicting positive when ``score >= threshold``.

    A checked wrapper of :func:`sklearn.metrics.roc_curve` with ``drop_intermediate=False``: one
    point per distinct score (tied scores form a single point), starting at (0, 0) with threshold
    ``+inf`` and ending at (1, 1). For threshold :math:`t`,

    .. math:: \mathrm{TPR}(t) = \frac{\#\{i: y_i = 1, s_i \ge t\}}{n_+}, \qquad
              \mathrm{FPR}(t) = \frac{\#\{i: y_i = 0, s_i \ge t\}}{n_-}.

    The full curve keeps every achievable operating point, which :func:`binary_report` needs to read
    TPR at a fixed FPR: dropping collinear points would lose the points inside the diagonal segments
    that runs of tied scores create. The name is kept for callers. A hand-written one-sort version
    is not kept: on 50,000 normal scores it took 6.2 ms (2.6 ms with scores rounded to 0.1) against
    7.1 ms (4.2 ms) for this wrapper, and returned bit-identical arrays; the difference does not
    matter where a curve is drawn or summarised.

    Parameters
    ----------
    scores : array_like
        Finite scores, higher = more likely positive.
    is_positive : array_like
        Labels, cast to bool; both classes must occur.

    Returns
    -------
    fpr, tpr, thresholds : ndarray
        Increasing FPR and TPR, decreasing thresholds (``thresholds[0] = inf``).

    Raises
    ------
    ValueError
        On a length mismatch, non-finite scores, or a single class.

    Examples
    --------
    >>> fpr, tpr, thr = roc_curve_fast([0.9, 0.8, 0.8, 0.1], [1, 1, 0, 0])
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0])
    """
    s, y = _check_binary(scores, is_positive)
    return _curve(s, y)


def auc_score(scores: np.ndarray, is_positive: np.ndarray) -> float:
    r"""ROC AUC: :func:`sklearn.metrics.auc` (trapezoid rule) over :func:`roc_curve_fast`'s curve.

    The area under the tie-collapsed ROC, equal to the Mann–Whitney statistic (Hanley & McNeil,
    1982, Radiology 143:29)

    .. math:: \mathrm{AUC} = P(S_+ > S_-) + \tfrac12 P(S_+ = S_-)
              = \frac{1}{n_+ n_-}\sum_{i: y_i=1}\sum_{j: y_j=0}
                \big([s_i > s_j] + \tfrac12 [s_i = s_j]\big).

    This is the computation inside :func:`sklearn.metrics.roc_auc_score`, except that it first drops
    collinear ROC points, which changes the sum's rounding only (at most 2.2e-16 apart over 2,000
    random inputs with ties). On the full curve the value is the plain trapezoid sum
    :math:`\sum_i (\mathrm{FPR}_i - \mathrm{FPR}_{i-1})(\mathrm{TPR}_i + \mathrm{TPR}_{i-1})/2`,
    equals ``binary_report(...)["auc"]`` exactly, and takes one sort: on 50,000 scores
    ``roc_auc_score`` took 12 ms per call against 8 ms here.

    Examples
    --------
    >>> auc_score([1.0, 1.0, 0.0], [1, 0, 0])  # one tie (1/2) and one win (1) over two pairs
    0.75
    """
    fpr, tpr, _ = roc_curve_fast(scores, is_positive)
    return float(auc(fpr, tpr))


def binary_report(
    scores: np.ndarray, is_positive: np.ndarray, rates: Sequence[float] = DEFAULT_RATES
) -> dict[str, float]:
    r"""AUC, TPR at FPR <= r and TNR at FNR <= r for each r in ``rates``, and the best balanced accuracy.

    The AUC is :func:`auc_score`. Low-rate operating points are read conservatively from the full ROC
    (:func:`roc_curve_fast`, i.e. ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``) at its
    achievable points, without interpolation:

    .. math:: \mathrm{TPR@FPR}{=}r = \max\{\mathrm{TPR}(t): \mathrm{FPR}(t) \le r\}, \qquad
              \mathrm{TNR@FNR}{=}r = \max\{1 - \mathrm{FPR}(t): 1 - \mathrm{TPR}(t) \le r\}.

    (The IAM code interpolates with ``np.interp``, which can credit a TPR no threshold achieves; the
    LLM benchmark takes the nearest point, which can exceed the FPR budget. Dropping collinear
    "intermediate" points would lose achievable points on the diagonal segments that ties create.)
    Balanced accuracy = max over thresholds of (TPR + TNR)/2 = 1 − (FPR + FNR)/2.

    Returns
    -------
    dict
        Keys ``auc``, ``tpr@fpr=<r>``, ``tnr@fnr=<r>`` (r formatted with ``:g``, e.g.
        ``tpr@fpr=0.01``), ``balanced_accuracy``, ``n_pos``, ``n_neg``.

    Examples
    --------
    >>> rep = binary_report([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0], rates=(0.1,))
    >>> rep["auc"], rep["tpr@fpr=0.1"], rep["balanced_accuracy"]
    (0.75, 0.5, 0.75)
    """
    s, y = _check_binary(scores, is_positive)
    fpr, tpr, _ = _curve(s, y)
    out: dict[str, float] = {"auc": float(auc(fpr, tpr))}
    fnr, tnr = 1.0 - tpr, 1.0 - fpr
    for r in rates:
        # (0, 0) and (1, 1) are always on the curve, so both maxima are over non-empty sets
        out[f"tpr@fpr={r:g}"] = float(tpr[fpr <= r].max())
        out[f"tnr@fnr={r:g}"] = float(tnr[fnr <= r].max())
    out["balanced_accuracy"] = float(np.max(1.0 - (fpr + fnr) / 2.0))
    out["n_pos"] = float(y.sum())
    out["n_neg"] = float((~y).sum())
    return out


_CHUNK_INDICES = 1 << 20  # resample indices drawn per block (8 MiB of int64), bounding memory at any n


def _resampled_aucs(codes: np.ndarray, n_codes: int, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    r"""AUC of every resample ``idx[b]`` at once (the same value as :func:`auc_score` up to rounding).

    ``codes`` ranks the distinct scores (``np.unique(..., return_inverse=True)``), so one sort serves
    every replicate: with :math:`w^\pm_{bk}` the number of positives / negatives of replicate
    :math:`b` at the :math:`k`-th smallest distinct score, the Mann–Whitney count gives

    .. math:: \mathrm{AUC}_b = \frac{\sum_k w^+_{bk}\,(\sum_{l<k} w^-_{bl} + \tfrac12 w^-_{bk})}
                                    {(\sum_k w^+_{bk})(\sum_k w^-_{bk})},

    computed as exact integer counts and one division. Kept hand-written for speed: neither
    ``sklearn.metrics`` nor ``scipy.stats`` (``mannwhitneyu``, ``rankdata``) evaluates many
    resamples without re-sorting each one. Measured per replicate, on normal scores, a block of
    replicates here against one :func:`auc_score` call per replicate: 0.065 ms against 0.80 ms at
    n = 2,000 and 1.3 ms against 6.8 ms at n = 50,000. The two agree to rounding (tested to 1e-12).
    """
    k = idx.shape[0]
    ids = codes[idx] + n_codes * np.arange(k)[:, None]
    lab = y[idx]
    w_pos = np.bincount(ids[lab], minlength=k * n_codes).reshape(k, n_codes)
    w_neg = np.bincount(ids[~lab], minlength=k * n_codes).reshape(k, n_codes)
    below = np.cumsum(w_neg, axis=1) - w_neg
    twice_u = np.einsum("ij,ij->i", w_pos, 2 * below + w_neg)
    return twice_u / (2.0 * w_pos.sum(axis=1) * w_neg.sum(axis=1))


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
    r"""Percentile bootstrap interval of ``stat_fn(scores, labels)`` (Efron & Tibshirani, 1993, ch. 13).

    With :math:`\hat\theta^*_1, \dots, \hat\theta^*_B` the statistic on :math:`B` = ``n_boot``
    resamples drawn with replacement, the interval is
    :math:`[q_{(1-\mathrm{level})/2},\ q_{(1+\mathrm{level})/2}]` of the :math:`\hat\theta^*_b`
    (``np.quantile``, linear interpolation).

    ``class_balanced=True`` resamples positives and negatives separately, so every replicate keeps
    both classes — ``class_size="own"`` draws each class at its own size (a stratified bootstrap,
    class proportions fixed), ``"min"`` draws min(n_pos, n_neg) from each (the IAM LLM fork's
    class-balanced bootstrap; the statistic is then that of a balanced set).
    ``class_balanced=False`` resamples all n points jointly; replicates with a single class are
    redrawn. Class-balanced replicates list their positives first.

    Method: vectorised resampling with NumPy. The indices of a block of replicates come from one
    ``Generator.integers`` call (at most 2**20 indices a block, bounding memory); positives and
    negatives (in joint mode: first draws and redraws) come from two independent streams spawned
    from ``seed``, so a given ``seed`` and ``n_boot`` give identical output on every call (and,
    unless a joint replicate is redrawn, the same output for any block size). A user ``stat_fn`` is
    evaluated once per replicate; the default :func:`auc_score` is evaluated for a whole block at
    once from one sort of the scores (see ``_resampled_aucs``), which makes the default interval
    several times faster than one :func:`auc_score` call per replicate (stratified, measured:
    0.07 s against 0.9 s at n = 2,000 with 1,000 replicates, 0.3 s against 1.5 s at n = 50,000 with
    200).
    ``scipy.stats.bootstrap`` is not used: it resamples every sample at its own size only (no
    ``"min"`` draw), cannot redraw single-class joint replicates, and without a vectorised
    statistic it runs the same per-replicate loop.

    Returns
    -------
    dict
        ``estimate`` (the statistic on the full data), ``low``, ``high`` (the percentiles above),
        ``std`` (bootstrap standard deviation, ``ddof=1``; 0 when ``n_boot == 1``), ``n_boot``.

    Raises
    ------
    ValueError
        On a length mismatch, ``level`` outside (0, 1), an unknown ``class_size``, ``n_boot < 1``
        or a single class.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = np.r_[np.ones(200, bool), np.zeros(200, bool)]
    >>> ci = bootstrap_ci(rng.normal(size=400) + y, y, n_boot=200, seed=1)
    >>> bool(ci["low"] < ci["estimate"] < ci["high"])
    True
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError("scores and labels differ in length")
    if not 0.0 < level < 1.0:
        raise ValueError("level must be in (0, 1)")
    if class_size not in ("own", "min"):
        raise ValueError(f"class_size must be 'own' or 'min', got {class_size!r}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("need at least one positive and one negative")
    estimate = float(stat_fn(s, y))  # also runs stat_fn's own input checks before any resampling
    fast_auc = stat_fn is auc_score
    if fast_auc:
        _, codes = np.unique(s, return_inverse=True)
        codes = codes.ravel()
        n_codes = int(codes.max()) + 1
    rng_pos, rng_neg = np.random.default_rng(seed).spawn(2)
    if class_balanced:
        n_p, n_n = (pos.size, neg.size) if class_size == "own" else (min(pos.size, neg.size),) * 2
        m = n_p + n_n
    else:
        m = s.size
    step = max(1, _CHUNK_INDICES // max(m, n_codes if fast_auc else 0))  # AUC path: [k, n_codes]
    stats_ = np.empty(n_boot)
    for b0 in range(0, n_boot, step):
        k = min(step, n_boot - b0)
        if class_balanced:
            idx = np.concatenate([pos[rng_pos.integers(0, pos.size, (k, n_p))],
                                  neg[rng_neg.integers(0, neg.size, (k, n_n))]], axis=1)
        else:
            idx = rng_pos.integers(0, m, (k, m))
            bad = np.arange(k)
            while bad.size:  # redraw single-class replicates, from the second stream
                n_pos = y[idx[bad]].sum(axis=1)
                bad = bad[(n_pos == 0) | (n_pos == m)]
                idx[bad] = rng_neg.integers(0, m, (bad.size, m))
        if fast_auc:
            stats_[b0:b0 + k] = _resampled_aucs(codes, n_codes, y, idx)
        else:
            for j, row in enumerate(idx):
                stats_[b0 + j] = stat_fn(s[row], y[row])
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats_, [tail, 1.0 - tail])
    return {"estimate": estimate, "low": float(lo), "high": float(hi),
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
