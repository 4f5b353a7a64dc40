"""LiRA: the Likelihood Ratio Attack (Carlini et al., "Membership Inference Attacks From First
Principles", IEEE S&P 2022), as per-sample scores from precomputed signals.

Signals are LiRA's logit-scaled confidences φ (:func:`expunge.metrics.signals.logit_scaled_confidence`)
of the audited (target) model and of K reference ("shadow") models on the same N samples. For each
sample, the reference models' signals are summarised by a Gaussian (mean and variance over models);
the target's signal is scored against it. **Every score here is oriented "higher = more member"**;
an unlearning score is its negation (or 1 − score for scores in [0, 1]).

Variance estimation (shared by every function):

* per-sample variance over that sample's reference models, ddof = 0 (LiRA's ``np.std``);
* ``global_variance=True`` (LiRA's "fixed variance", recommended with few shadows) uses one variance
  for all samples: the *pooled within-sample* variance, Σ_n Σ_k (φ_kn − μ_n)² / Σ_n c_n over the
  samples with c_n ≥ 2 models;
* where a sample has fewer than 2 models (e.g. a single shadow, or a single IN reference model) there
  is no per-sample spread, and the pooled variance is used instead. If no sample has 2 models on that
  side, the online functions borrow the other side's pooled variance (LiRA finds IN and OUT spreads
  similar; its code shares one variance), else the variance of all that side's signals across samples
  (the LiRA code's ``np.std(dat)`` fixed variance), else ``var_floor``;
* every variance is floored at ``var_floor`` so identical shadow outputs never divide by zero.

With a single shared variance the ranking of the online score does not depend on its value, and with
K = 1 offline neither does the one-sided score's, so the fallbacks only set the scale there.

Augmented queries: pass ``target`` as [N, V] and the reference signals as [K, N, V] (V views of each
sample, the same views for every model). A Gaussian is fitted per (sample, view) and the per-view
scores (log-likelihoods, or log-likelihood ratios) are averaged over views, as the LiRA paper and code
do. Differences from the IAM repository's port: that port uses neither augmentations nor a global
variance, and takes σ = 0 (+1e-30) with one model per side, which turns the online score into a
distance comparison whose AUC no longer depends on the number of shadows; here the IN variance falls
back to the pooled estimate instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import log_ndtr

__all__ = ["lira_offline", "lira_online", "lira_online_with_reference"]

_LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass
class _Fit:
    mean: np.ndarray  # [N, V]
    var_local: np.ndarray  # [N, V], ddof 0
    count: np.ndarray  # [N]
    pooled: float  # within-sample pooled variance, nan if no sample has >= 2 models
    spread: float  # variance of all signals across samples and models, nan if < 2 values


def _as_views(target: np.ndarray, refs: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Target as [N, V] and references as [K, N, V] (V = 1 when no views are given)."""
    t = np.asarray(target, dtype=np.float64)
    r = np.asarray(refs, dtype=np.float64)
    if t.ndim == 1:
        if r.ndim != 2:
            raise ValueError(f"{name}: with target [N], reference signals must be [K, N], got {r.shape}")
        t, r = t[:, None], r[:, :, None]
    elif t.ndim == 2:
        if r.ndim != 3:
            raise ValueError(f"{name}: with target [N, V], reference signals must be [K, N, V], got {r.shape}")
    else:
        raise ValueError(f"{name}: target must be [N] or [N, V], got {t.shape}")
    if r.shape[1:] != t.shape:
        raise ValueError(f"{name}: reference signals {r.shape} do not match target {t.shape}")
    if r.shape[0] < 1:
        raise ValueError(f"{name}: need at least one reference model")
    return t, r


def _as_mask(mask: np.ndarray | None, k: int, n: int, name: str) -> np.ndarray:
    if mask is None:
        return np.ones((k, n), dtype=bool)
    m = np.asarray(mask)
    if m.shape != (k, n):
        raise ValueError(f"{name} must be [K, N] = [{k}, {n}], got {m.shape}")
    return m.astype(bool)


def _fit(refs: np.ndarray, mask: np.ndarray) -> _Fit:
    """Per-(sample, view) Gaussian over the models selected by ``mask`` [K, N]."""
    w = mask[:, :, None]
    count = mask.sum(axis=0)
    vals = np.where(w, refs, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = vals.sum(axis=0) / count[:, None]
        ss = np.where(w, (refs - mean[None]) ** 2, 0.0).sum(axis=0)
        var_local = ss / count[:, None]
    multi = count >= 2
    n_views = refs.shape[2]
    pooled = float(ss[multi].sum() / (count[multi].sum() * n_views)) if multi.any() else float("nan")
    all_vals = refs[np.broadcast_to(w, refs.shape)]
    spread = float(all_vals.var()) if all_vals.size >= 2 else float("nan")
    return _Fit(mean, var_local, count, pooled, spread)


def _variance(fit: _Fit, global_variance: bool, var_floor: float, other: _Fit | None = None) -> np.ndarray:
    """The fallback chain of the module docstring; returns [N, V] variances >= var_floor."""
    shared = fit.pooled
    if not np.isfinite(shared) and other is not None:
        shared = other.pooled
    if not np.isfinite(shared):
        shared = fit.spread
    if not np.isfinite(shared):
        shared = var_floor
    if global_variance:
        var = np.full_like(fit.mean, shared)
    else:
        var = np.where((fit.count >= 2)[:, None], fit.var_local, shared)
    return np.maximum(np.nan_to_num(var, nan=var_floor), var_floor)


def _log_normal_pdf(x: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    return -0.5 * (_LOG_2PI + np.log(var) + (x - mean) ** 2 / var)


def _finish(per_view: np.ndarray, valid: np.ndarray) -> np.ndarray:
    score = per_view.mean(axis=1)  # average over views (V = 1 without augmentation)
    return np.where(valid, score, np.nan)


def lira_offline(
    target: np.ndarray,
    out_signals: np.ndarray,
    out_mask: np.ndarray | None = None,
    *,
    global_variance: bool = False,
    var_floor: float = 1e-6,
    test: Literal["one_sided", "two_sided"] = "one_sided",
) -> np.ndarray:
    """Offline LiRA: score the target's signal against the OUT Gaussian N(μ_out(x), σ²_out(x)).

    Parameters
    ----------
    target : [N] or [N, V]
        Signal φ of the audited model (V augmented views optional).
    out_signals : [K, N] or [K, N, V]
        Signals of K reference models; ``out_mask[k, n]`` says whether model k is OUT for sample n
        (None = all OUT, the unlearning setting with shadows trained on disjoint data).
    global_variance, var_floor
        Variance estimation, see the module docstring.
    test
        ``"one_sided"`` (the LiRA paper's offline test, default): with z = (φ − μ_out)/σ_out,
        score = −log(1 − Φ(z)), the negative log p-value of "x is OUT" against larger φ. It ranks like
        the paper's Λ = Φ(z) but does not saturate at 1 in the far upper tail where members lie,
        so TPR at very low FPR keeps its resolution.
        ``"two_sided"``: score = −log N(φ; μ_out, σ²_out), "how unlikely under OUT" in either
        direction; the IAM repository's LiRA-Off for random forgetting (it returns U = log N).

    Returns
    -------
    [N] float64 scores, higher = more member; nan for samples with no OUT model.
    """
    t, r = _as_views(target, out_signals, "lira_offline")
    mask = _as_mask(out_mask, r.shape[0], r.shape[1], "out_mask")
    fit = _fit(r, mask)
    var = _variance(fit, global_variance, var_floor)
    if test == "one_sided":
        z = (t - fit.mean) / np.sqrt(var)
        per_view = -log_ndtr(-z)  # 1 − Φ(z) = Φ(−z); log_ndtr is accurate in both tails
    elif test == "two_sided":
        per_view = -_log_normal_pdf(t, fit.mean, var)
    else:
        raise ValueError(f"test must be 'one_sided' or 'two_sided', got {test!r}")
    return _finish(per_view, fit.count >= 1)


def _log_lr(t: np.ndarray, fin: _Fit, fout: _Fit, global_variance: bool, var_floor: float) -> np.ndarray:
    var_in = _variance(fin, global_variance, var_floor, other=fout)
    var_out = _variance(fout, global_variance, var_floor, other=fin)
    return _log_normal_pdf(t, fin.mean, var_in) - _log_normal_pdf(t, fout.mean, var_out)


def lira_online(
    target: np.ndarray,
    signals: np.ndarray,
    in_mask: np.ndarray,
    *,
    global_variance: bool = False,
    var_floor: float = 1e-6,
) -> np.ndarray:
    """Online LiRA: log-likelihood ratio of IN vs OUT Gaussians,

        score(x) = log N(φ; μ_in(x), σ²_in(x)) − log N(φ; μ_out(x), σ²_out(x)),

    averaged over views when V > 1. ``signals`` [K, N(, V)] are K reference models; ``in_mask[k, n]``
    is True where model k trained on sample n (IN) and False where it did not (OUT). Any number of
    models per side >= 1 works (see the variance fallbacks in the module docstring).

    Returns [N] float64, higher = more member; nan for samples lacking an IN or an OUT model.
    """
    t, r = _as_views(target, signals, "lira_online")
    mask = _as_mask(in_mask, r.shape[0], r.shape[1], "in_mask")
    fin, fout = _fit(r, mask), _fit(r, ~mask)
    per_view = _log_lr(t, fin, fout, global_variance, var_floor)
    return _finish(per_view, (fin.count >= 1) & (fout.count >= 1))


def lira_online_with_reference(
    target: np.ndarray,
    in_ref: np.ndarray,
    out_ref: np.ndarray,
    *,
    global_variance: bool = False,
    var_floor: float = 1e-6,
) -> np.ndarray:
    """Online LiRA with separately supplied IN references: ``in_ref`` [R, N(, V)] (models that trained
    on every queried sample) and ``out_ref`` [Q, N(, V)] (models that trained on none).

    For unlearning audits the original model is the natural single IN reference (R = 1; the IAM
    repository's "LiRA-On") and the pre-trained shadows are the OUT references. With R = 1 the IN
    variance is borrowed from the OUT side's pooled within-sample variance (module docstring) rather
    than the reference's point mass. Score = log N(φ; μ_in, σ²_in) − log N(φ; μ_out, σ²_out), higher =
    more member (i.e. still retained); the unlearning score is its negation.
    """
    t, rin = _as_views(target, in_ref, "lira_online_with_reference(in_ref)")
    _, rout = _as_views(target, out_ref, "lira_online_with_reference(out_ref)")
    fin = _fit(rin, np.ones(rin.shape[:2], dtype=bool))
    fout = _fit(rout, np.ones(rout.shape[:2], dtype=bool))
    per_view = _log_lr(t, fin, fout, global_variance, var_floor)
    return _finish(per_view, np.ones(t.shape[0], dtype=bool))
