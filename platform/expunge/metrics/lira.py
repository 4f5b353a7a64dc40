"""LiRA: the Likelihood Ratio Attack (Carlini et al., "Membership Inference Attacks From First
Principles", IEEE S&P 2022), as per-sample scores from precomputed signals.

Signals are LiRA's logit-scaled confidences φ (:func:`expunge.metrics.signals.logit_scaled_confidence`)
of the audited (target) model and of K reference ("shadow") models on the same N samples. For each
sample, the reference models' signals are summarised by a Gaussian (mean and variance over models);
the target's signal is scored against it. **Every score here is oriented "higher = more member"**;
an unlearning score is its negation (or 1 − score for scores in [0, 1]).

Variance estimation (shared by every function):

* ``global_variance=None`` (default, "auto"): LiRA's own guidance. Per-sample variances need many
  models; with fewer than :data:`PER_SAMPLE_VARIANCE_MIN_MODELS` = 64 reference models (the LiRA
  paper's threshold for switching to a fixed variance) one global variance is used, at or above it
  per-sample variances. The count K is every reference model passed (IN and OUT together, as the
  paper counts shadow models); ``True`` / ``False`` force either mode. (Always per-sample, LiRA with
  4 shadows scored lower than with 1: four OUT models give a noisy per-sample variance, while one
  model has no spread and falls back to the pooled variance);
* per-sample variance (``global_variance=False``) over that sample's reference models, ddof = 0
  (LiRA's ``np.std``);
* ``global_variance=True`` (LiRA's "fixed variance") uses one variance for all samples: the *pooled
  within-sample* variance, Σ_n Σ_k (φ_kn − μ_n)² / Σ_n c_n over the samples with c_n ≥ 2 models;
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

Monotone online test. LiRA's online score is the log-likelihood ratio of two Gaussians,

    Λ(φ) = log N(φ; μ_in, σ²_in) − log N(φ; μ_out, σ²_out),

a quadratic in φ whose φ² coefficient is ½(1/σ²_out − 1/σ²_in). With unequal variances it is not
monotone: when σ_in > σ_out it rises again below a vertex under μ_out, so a sample far *below both*
Gaussians (a forgotten class, p_y ≈ 0) scored as a strong member (on class forgetting the retrain
model got a LiRA BinUI AUC of 0.48 and a mean forget score of +252, against 1.00 for RMIA and IAM);
when σ_in < σ_out it falls again above a vertex over μ_in. Λ'(φ) = (φ − μ_out)/σ²_out + (μ_in − φ)/σ²_in
is ≥ 0 on [μ_out, μ_in] whatever the variances, so the default ``test="monotone"`` keeps Λ on the
interval where it increases and holds it constant beyond:

    φ_v   = (μ_out/σ²_out − μ_in/σ²_in) / (1/σ²_out − 1/σ²_in)        (the vertex of Λ)
    score = Λ(max(φ, φ_v))   if σ_in > σ_out    (φ_v ≤ μ_out: below it, the minimum of Λ)
            Λ(min(φ, φ_v))   if σ_in < σ_out    (φ_v ≥ μ_in: above it, the maximum of Λ)
            Λ(φ)             if σ_in = σ_out    (Λ is linear)
    score = 0 (likelihood ratio 1) where μ_in < μ_out: the references then show no rise of φ with
            training, and any φ-dependence would rank a *less* confident target as more member.

So the score is non-decreasing in φ for fixed Gaussians, a φ below μ_out never scores above φ = μ_out,
and it equals LiRA's Λ everywhere on [μ_out, μ_in] (on the whole line where σ_in = σ_out, e.g.
with the global variance, and μ_in ≥ μ_out). ``test="likelihood_ratio"`` gives the unmodified Λ of the
LiRA paper and code (and of the IAM port), for reproducing them. The offline one-sided score is
monotone by construction; its ``"two_sided"`` variant (the IAM port's random-forgetting LiRA-Off) is
not, on purpose.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import log_ndtr

from expunge.errors import ConfigError

__all__ = [
    "PER_SAMPLE_VARIANCE_MIN_MODELS",
    "lira_offline",
    "lira_online",
    "lira_online_with_reference",
    "uses_global_variance",
]

_LOG_2PI = float(np.log(2.0 * np.pi))

#: Fewest reference models for which ``global_variance=None`` ("auto") estimates per-sample variances;
#: below it one global ("fixed") variance is used. Carlini et al. (S&P 2022) find the fixed variance
#: better with fewer than 64 shadow models, per-example variances only paying off with more.
PER_SAMPLE_VARIANCE_MIN_MODELS = 64

OnlineTest = Literal["monotone", "likelihood_ratio"]


def uses_global_variance(global_variance: bool | None, n_models: int) -> bool:
    """Resolve the ``global_variance`` switch: ``None`` (auto) is True when ``n_models`` reference
    models are fewer than :data:`PER_SAMPLE_VARIANCE_MIN_MODELS` (64), False at or above it;
    ``True`` / ``False`` are returned as given."""
    if global_variance is None:
        return n_models < PER_SAMPLE_VARIANCE_MIN_MODELS
    if isinstance(global_variance, (bool, np.bool_)):
        return bool(global_variance)
    raise ConfigError(f"LiRA global_variance must be true, false or null (auto), got {global_variance!r}")


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
    global_variance: bool | None = None,
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
        Variance estimation, see the module docstring (None = auto: global below 64 models K).
    test
        ``"one_sided"`` (the LiRA paper's offline test, default): with z = (φ − μ_out)/σ_out,
        score = −log(1 − Φ(z)), the negative log p-value of "x is OUT" against larger φ, increasing
        in φ. It ranks like the paper's Λ = Φ(z) but does not saturate at 1 in the far upper tail
        where members lie, so TPR at very low FPR keeps its resolution.
        ``"two_sided"``: score = −log N(φ; μ_out, σ²_out), "how unlikely under OUT" in either
        direction; the IAM repository's LiRA-Off for random forgetting (it returns U = log N).

    Returns
    -------
    [N] float64 scores, higher = more member; nan for samples with no OUT model.
    """
    t, r = _as_views(target, out_signals, "lira_offline")
    mask = _as_mask(out_mask, r.shape[0], r.shape[1], "out_mask")
    fit = _fit(r, mask)
    var = _variance(fit, uses_global_variance(global_variance, r.shape[0]), var_floor)
    if test == "one_sided":
        z = (t - fit.mean) / np.sqrt(var)
        per_view = -log_ndtr(-z)  # 1 − Φ(z) = Φ(−z); log_ndtr is accurate in both tails
    elif test == "two_sided":
        per_view = -_log_normal_pdf(t, fit.mean, var)
    else:
        raise ValueError(f"test must be 'one_sided' or 'two_sided', got {test!r}")
    return _finish(per_view, fit.count >= 1)


def _monotone_log_lr(t: np.ndarray, mu_in: np.ndarray, var_in: np.ndarray, mu_out: np.ndarray,
                     var_out: np.ndarray) -> np.ndarray:
    """Λ(φ) held constant outside the interval where it increases (module docstring)."""
    w_in, w_out = 1.0 / var_in, 1.0 / var_out
    d = w_out - w_in  # 2 × the φ² coefficient of Λ
    c = mu_out * w_out - mu_in * w_in
    # Relative tolerance: for variances equal to ~12 digits the vertex lies ~1e12 σ away, and its
    # division would only add rounding noise to what is a linear Λ on any reachable φ.
    flat = np.abs(d) <= 1e-12 * (w_in + w_out)
    vertex = c / np.where(flat, 1.0, d)
    lo = np.where(~flat & (d > 0), vertex, -np.inf)
    hi = np.where(~flat & (d < 0), vertex, np.inf)
    phi = np.clip(t, lo, hi)
    lam = _log_normal_pdf(phi, mu_in, var_in) - _log_normal_pdf(phi, mu_out, var_out)
    return np.where(mu_in < mu_out, 0.0, lam)


def _log_lr(t: np.ndarray, fin: _Fit, fout: _Fit, global_variance: bool, var_floor: float,
            test: OnlineTest) -> np.ndarray:
    var_in = _variance(fin, global_variance, var_floor, other=fout)
    var_out = _variance(fout, global_variance, var_floor, other=fin)
    if test == "monotone":
        return _monotone_log_lr(t, fin.mean, var_in, fout.mean, var_out)
    if test == "likelihood_ratio":
        return _log_normal_pdf(t, fin.mean, var_in) - _log_normal_pdf(t, fout.mean, var_out)
    raise ConfigError(f"LiRA online test must be 'monotone' or 'likelihood_ratio', got {test!r}")


def lira_online(
    target: np.ndarray,
    signals: np.ndarray,
    in_mask: np.ndarray,
    *,
    global_variance: bool | None = None,
    var_floor: float = 1e-6,
    test: OnlineTest = "monotone",
) -> np.ndarray:
    """Online LiRA: log-likelihood ratio of IN vs OUT Gaussians,

        Λ(x) = log N(φ; μ_in(x), σ²_in(x)) − log N(φ; μ_out(x), σ²_out(x)),

    made monotone in φ by default (``test="monotone"``, module docstring; ``"likelihood_ratio"`` is
    the raw Λ), averaged over views when V > 1. ``signals`` [K, N(, V)] are K reference models;
    ``in_mask[k, n]`` is True where model k trained on sample n (IN) and False where it did not
    (OUT). Any number of models per side >= 1 works (see the variance fallbacks in the module
    docstring); ``global_variance=None`` uses the global variance when K < 64.

    Returns [N] float64, higher = more member; nan for samples lacking an IN or an OUT model.
    """
    t, r = _as_views(target, signals, "lira_online")
    mask = _as_mask(in_mask, r.shape[0], r.shape[1], "in_mask")
    fin, fout = _fit(r, mask), _fit(r, ~mask)
    per_view = _log_lr(t, fin, fout, uses_global_variance(global_variance, r.shape[0]), var_floor, test)
    return _finish(per_view, (fin.count >= 1) & (fout.count >= 1))


def lira_online_with_reference(
    target: np.ndarray,
    in_ref: np.ndarray,
    out_ref: np.ndarray,
    *,
    global_variance: bool | None = None,
    var_floor: float = 1e-6,
    test: OnlineTest = "monotone",
) -> np.ndarray:
    """Online LiRA with separately supplied IN references: ``in_ref`` [R, N(, V)] (models that trained
    on every queried sample) and ``out_ref`` [Q, N(, V)] (models that trained on none).

    For unlearning audits the original model is the natural single IN reference (R = 1; the IAM
    repository's "LiRA-On") and the pre-trained shadows are the OUT references. With R = 1 the IN
    variance is borrowed from the OUT side's pooled within-sample variance (module docstring) rather
    than the reference's point mass. Score = Λ = log N(φ; μ_in, σ²_in) − log N(φ; μ_out, σ²_out),
    made monotone in φ unless ``test="likelihood_ratio"`` (module docstring); higher = more member
    (i.e. still retained), the unlearning score is its negation. ``global_variance=None`` uses the
    global variance when R + Q < 64.
    """
    t, rin = _as_views(target, in_ref, "lira_online_with_reference(in_ref)")
    _, rout = _as_views(target, out_ref, "lira_online_with_reference(out_ref)")
    fin = _fit(rin, np.ones(rin.shape[:2], dtype=bool))
    fout = _fit(rout, np.ones(rout.shape[:2], dtype=bool))
    use_global = uses_global_variance(global_variance, rin.shape[0] + rout.shape[0])
    per_view = _log_lr(t, fin, fout, use_global, var_floor, test)
    return _finish(per_view, np.ones(t.shape[0], dtype=bool))
