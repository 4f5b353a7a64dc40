"""RMIA: Robust Membership Inference Attack (Zarifzadeh, Liu, Lee & Shokri, "Low-Cost High-Power
Membership Inference Attacks", ICML 2024), as per-sample scores from precomputed signals.

Signals are positive-ish per-sample statistics such as p_y (:func:`~expunge.metrics.signals.true_class_prob`)
or the Taylor soft margin (:func:`~expunge.metrics.signals.taylor_soft_margin`, the reference code's
choice) of the audited (target) model and of reference models, on the queried samples x and on a
population set z (samples no one queries, e.g. the validation split):

    P(x)      = reference estimate of Pr(x) (see :func:`rmia_offline` / :func:`rmia_online`)
    ratio(x)  = sig_target(x) / P(x)
    LR(x, z)  = ratio(x) / ratio(z)
    Score(x)  = (1/Z) Σ_z 1[ LR(x, z) > γ ]                     (higher = more member)

The reference code (ml_privacy_meter ``research/2024_rmia/main.py`` and the IAM repository's port
``rmia.py``) materialises the N×Z matrix of LR (~9 GB at N = 50k, Z = 10k). Since LR(x, z) > γ is,
for ratio(z) > 0, the same as ratio(z) < ratio(x)/γ, the population ratios are sorted once and every
query is one binary search: O((N + Z) log Z) time and O(N + Z) memory, identical scores (up to float
rounding of exact ties between LR and γ). Negative ratios, which the Taylor signal can produce, are
handled by counting the positive and negative population ratios separately (the inequality flips).

The reference's augmentation majority vote (18 views, ml_privacy_meter) is not included; the IAM
port drops it too. Unlearning score = 1 − Score.

Online threshold: γ = 1 (the reference code uses γ = 2 online and offline; ml_privacy_meter's current
``modules/mia/attacks/rmia.py`` uses 1). In an unlearning audit the online references are the
original θ_o (IN for every training query) and K OUT shadows, tiled so both sides weigh half, and the
same models score the population z (the original is OUT for z: no model trains on the population).
For a target at or near the original,

    ratio(x) = p_θ(x) / ½(p_o(x) + p̄_sh(x)) < 2,    ratio(z) = p_θ(z) / ½(p_o(z) + p̄_sh(z)) ≈ 1,

and for a sample the original generalises to (p_o(x) ≈ p̄_sh(x)) ratio(x) ≈ 1. With γ = 2 the test
LR(x, z) > 2 then passes only for the population samples the target gets relatively wrong
(ratio(z) < ratio(x)/2): the score measures the target's error profile on z, not x's membership. It
is ~0 for everything (0.006 for the original's forget set in a digits audit) and, across checkpoints
between a retrain and the original, falls as the target nears the original, which makes RMIA's
ScoreUI correlation negative (−0.80 and −0.77 on 2 of 3 seeds in that audit). With γ = 1 the score
is the population quantile of ratio(x), Score(x) = F̂_z(ratio(x)), which is uniform for a non-member
x (exchangeable with the population under the same references) and rises with membership.

Measured on the memorising benchmark of ``tests/metrics/test_audit_fixes.py`` (digits, 10% flipped
training labels, an MLP fitting all of them, 4 shadows, checkpoints θ_t = (1 − t)·θ_retrain + t·θ_o,
seeds 0-4), γ = 2 → γ = 1:

* forget set of correctly labelled ("generalised") training samples: mean score of the original's
  forget set 0.08-0.15 → 0.60-0.67 (retain 0.09-0.14 → 0.61-0.67: its BinUI AUC 0.47-0.51);
  ScoreUI Spearman over the forget set −0.44, −0.67, −0.47, −0.30, −0.62 → 0.26, 0.27, 0.28, 0.31,
  0.27; Spearman of the *test* (never-member) scores with t, which should be 0: −0.49 to −0.68 →
  −0.04 to 0.04; retrain BinUI AUC 0.68-0.70 → 0.69-0.72. For the original, the medians of
  ratio(x) and of ratio(z) are both 1.00 and only 8-15% of (x, z) pairs have LR > 2;
* forget set of the flipped (memorised) samples: the original's forget score 0.66-0.72 → 1.00,
  ScoreUI 0.81-0.90 → 0.80-0.90, test-score Spearman 0.69-0.82 → −0.07 to 0.07; retrain BinUI AUC
  0.98-1.00 either way.

Replacing the original in the population's references by the paper's offline estimate of the IN
half, P(z) = (1 + a)/2 · mean_sh(z) + (1 − a)/2 (a = 0.3), was measured too and not adopted: at γ = 2
it leaves the collapse (the original's generalised forget score 0.11-0.22, ScoreUI −0.38, −0.62,
−0.25, −0.00, −0.46), and at γ = 1 it puts x and z on different footing, so never-member scores drift
with t (Spearman −0.03 to −0.09, and −0.13 to −0.25 on the memorised benchmark) and the generalised
ScoreUI drops to 0.16-0.20.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import trim_mean

__all__ = ["rmia_offline", "rmia_online", "rmia_score_from_ratios", "reference_mean"]


def reference_mean(ref_signals: np.ndarray, trim: float = 0.2) -> np.ndarray:
    """Per-sample trimmed mean over reference models (axis 0), ``scipy.stats.trim_mean`` with
    proportion ``trim`` cut from each end (int(trim · K) values; none for K < 5 at 0.2)."""
    r = np.asarray(ref_signals, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 1:
        raise ValueError(f"reference signals must be [K, N] with K >= 1, got {r.shape}")
    return np.asarray(trim_mean(r, proportiontocut=trim, axis=0), dtype=np.float64)


def rmia_score_from_ratios(ratio_x: np.ndarray, ratio_z: np.ndarray, gamma: float = 2.0) -> np.ndarray:
    """Score(x) = (1/Z) Σ_z 1[ratio_x / ratio_z > γ], by sorting and binary search (no N×Z matrix).

    For ratio_z > 0 the event is ratio_z < ratio_x / γ; for ratio_z < 0 it is ratio_z > ratio_x / γ;
    ratio_z = 0 gives LR = +inf (counted) when ratio_x > 0 and −inf or undefined (not counted)
    otherwise. γ must be positive. Time O((N + Z) log Z), memory O(N + Z).
    """
    rx = np.asarray(ratio_x, dtype=np.float64).ravel()
    rz = np.asarray(ratio_z, dtype=np.float64).ravel()
    if not (gamma > 0 and math.isfinite(gamma)):
        raise ValueError(f"gamma must be a positive finite number, got {gamma}")
    if rz.size == 0:
        raise ValueError("empty population")
    if not (np.all(np.isfinite(rx)) and np.all(np.isfinite(rz))):
        raise ValueError("ratios must be finite (a reference mean P of 0 gives an infinite ratio)")
    pos = np.sort(rz[rz > 0])
    neg = np.sort(rz[rz < 0])
    n_zero = int(np.sum(rz == 0))
    thr = rx / gamma
    count = np.searchsorted(pos, thr, side="left")  # #{z > 0 : ratio_z < ratio_x/γ}
    count = count + (neg.size - np.searchsorted(neg, thr, side="right"))  # #{z < 0 : ratio_z > ratio_x/γ}
    # The positive branch only counts z with 0 < ratio_z < thr, which needs thr > 0, i.e. rx > 0,
    # and the negative branch only z with thr < ratio_z < 0, which needs rx < 0: signs sort themselves.
    count = count + np.where(rx > 0, n_zero, 0)
    return count / rz.size


def _check_pair(sig: np.ndarray, refs: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(sig, dtype=np.float64)
    r = np.asarray(refs, dtype=np.float64)
    if s.ndim != 1 or r.ndim != 2 or r.shape[1] != s.shape[0]:
        raise ValueError(f"{name}: need target [N] and references [K, N], got {s.shape} and {r.shape}")
    return s, r


def rmia_offline(
    target_x: np.ndarray,
    ref_out_x: np.ndarray,
    target_z: np.ndarray,
    ref_out_z: np.ndarray,
    *,
    a: float = 0.3,
    gamma: float = 2.0,
    trim: float = 0.2,
) -> np.ndarray:
    """Offline RMIA (OUT reference models only).

    With only OUT models, Pr(x) is approximated from the OUT mean by the linear map of the RMIA paper
    (§ "offline"), exactly as the reference code does:

        P(x) = (1 + a)/2 · trimmed_mean_k sig_k(x) + (1 − a)/2,

    and likewise P(z). ``a`` ∈ [0, 1]: reference configs use a = 0.3 (ml_privacy_meter CIFAR-10),
    0.33 (IAM repo CIFAR-10/CINIC-10), 0.6 (CIFAR-100), 0.2 (Purchase); γ = 2; trim 0.2.

    Parameters: ``target_x`` [N] signal of the audited model on the queries, ``ref_out_x`` [K, N] of
    the K OUT models on them; ``target_z`` [Z], ``ref_out_z`` [K, Z] on the population.
    Returns Score(x) ∈ [0, 1], higher = more member.
    """
    sx, rx = _check_pair(target_x, ref_out_x, "rmia_offline(x)")
    sz, rz = _check_pair(target_z, ref_out_z, "rmia_offline(z)")
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"a must be in [0, 1], got {a}")
    px = (1.0 + a) / 2.0 * reference_mean(rx, trim) + (1.0 - a) / 2.0
    pz = (1.0 + a) / 2.0 * reference_mean(rz, trim) + (1.0 - a) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return rmia_score_from_ratios(sx / px, sz / pz, gamma)


def _balanced(ref_in: np.ndarray, ref_out: np.ndarray) -> np.ndarray:
    # Tile both sides to lcm(R, K) rows so IN and OUT weigh equally in the trimmed mean; with R = 1
    # this is the IAM port's "K copies of the original model's signal".
    r, k = ref_in.shape[0], ref_out.shape[0]
    lcm = r * k // math.gcd(r, k)
    return np.concatenate([np.tile(ref_in, (lcm // r, 1)), np.tile(ref_out, (lcm // k, 1))], axis=0)


def rmia_online(
    target_x: np.ndarray,
    ref_in_x: np.ndarray,
    ref_out_x: np.ndarray,
    target_z: np.ndarray,
    ref_in_z: np.ndarray,
    ref_out_z: np.ndarray,
    *,
    gamma: float = 1.0,
    trim: float = 0.2,
    balance: bool = True,
) -> np.ndarray:
    """Online RMIA (IN and OUT reference models): P(x) = trimmed mean over the IN and OUT reference
    signals together (no ``a`` scaling), P(z) likewise, then the γ-test against the population.

    ``ref_in_x`` [R, N]: models that trained on the queries (for unlearning audits, the original
    model, R = 1); ``ref_out_x`` [K, N]: models that did not (shadows). ``ref_in_z`` [R, Z] and
    ``ref_out_z`` [K, Z] are the same R + K models on the population. The IAM repository trains a
    model on the population for the R side; in an unlearning audit it is the original, which is OUT
    for z, so every z is scored by the same models as x and a never-member query is exchangeable with
    the population. With ``balance`` (default) both sides are tiled to lcm(R, K) rows so they weigh
    equally, which for R = 1 is the IAM port's K copies of the IN signal; without it the R + K rows
    are used as given.

    ``gamma`` defaults to 1, not the reference code's 2: with the original as the IN reference,
    ratio(x) < 2 for targets near it and the γ = 2 score collapses to ~0 and anti-correlates with
    membership across checkpoints (module docstring, with the measurements).
    Returns Score(x) ∈ [0, 1], higher = more member.
    """
    sx, rin_x = _check_pair(target_x, ref_in_x, "rmia_online(in, x)")
    _, rout_x = _check_pair(target_x, ref_out_x, "rmia_online(out, x)")
    sz, rin_z = _check_pair(target_z, ref_in_z, "rmia_online(in, z)")
    _, rout_z = _check_pair(target_z, ref_out_z, "rmia_online(out, z)")
    if balance:
        refs_x, refs_z = _balanced(rin_x, rout_x), _balanced(rin_z, rout_z)
    else:
        refs_x = np.concatenate([rin_x, rout_x], axis=0)
        refs_z = np.concatenate([rin_z, rout_z], axis=0)
    px, pz = reference_mean(refs_x, trim), reference_mean(refs_z, trim)
    with np.errstate(divide="ignore", invalid="ignore"):
        return rmia_score_from_ratios(sx / px, sz / pz, gamma)
