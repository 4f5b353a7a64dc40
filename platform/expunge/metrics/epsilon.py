"""Per-example epsilon and the forget score of the NeurIPS 2023 Machine Unlearning Challenge.

Triantafillou et al., "Are we making progress in unlearning? Findings from the first NeurIPS
unlearning competition" (2024); evaluation code ``google-deepmind/unlearning_evaluation``
(``metric.py``). Inputs are the signals of E forget-set examples under M unlearned models (the method
applied to M independently trained originals) and under M models retrained without the forget set
(the challenge used M = 512 and LiRA's logit-scaled confidence,
:func:`expunge.metrics.signals.logit_scaled_confidence`).

Per example, the two groups of M signals are two samples from "unlearned" and "retrained"
distributions; epsilon is the strongest (ε, δ)-style distinguishability any simple decision rule
achieves between them:

1. positive group = the one with the larger median (ties: unlearned);
2. if (smaller range)/(larger range) < 0.01, one group is nearly a point: ε = cap (50);
3. rules: single thresholds t on a grid over [min, max] of both groups, 100 per unit (predict positive
   iff signal >= t); double thresholds (l, r), predicting the *peakier* (smaller-range) group iff
   l <= signal <= r, with r on a 100-per-unit grid over [min_pk + w − 2, max_pk + 2] and, for each r,
   400 values of l over [r − w − 2, r − w + 2] (w = the smaller range);
4. per rule, with δ = 1e-5: FPR = FNR = 0 → ε = ∞; exactly one of FPR, FNR = 0 → rule discarded
   (too few samples to tell); otherwise
   ε = max(0, log(1 − δ − FPR) − log FNR, log(1 − δ − FNR) − log FPR)
   (a term whose log argument is negative is ignored); the example's ε is the max over the
   surviving rules, clipped to [0, cap].

Forget score: buckets of width 0.5 from 0 worth 1, 1/2, 1/4, ... points, the last ending at
ceil(log(M − 1)); an example earns the points of the first bucket whose upper edge exceeds its ε
(0 beyond the last), and forget_score = Σ points / E. Final challenge score = forget_score ×
(RA_u / RA_r) × (TA_u / TA_r).

Differences from the released code, on purpose:

* rates are counted by binary search in each group's sorted signals (the same grids, the same
  inclusive/exclusive comparisons) instead of a dense models × rules comparison per example; counts
  are exact integers, so TPR + FNR = 1 exactly (the reference averages float32 indicators);
* ``assert thr_eps, ...`` on a multi-element numpy array raises ValueError for essentially every
  non-degenerate example; the intent, a non-empty check, is implemented (``on_no_rule``);
* both groups constant (0/0 in the range ratio, which the reference lets through to an empty or
  all-discarded rule set): ε = cap if the two constants differ (perfectly separable), 0 if equal;
* no CUDA (the reference moves everything to the GPU unconditionally).
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np

__all__ = [
    "per_example_epsilon",
    "forget_score",
    "forget_score_from_signals",
    "challenge_score",
    "DELTA",
    "EPSILON_CAP",
]

DELTA = 1e-5
EPSILON_CAP = 50.0
NUM_THRESHOLDS_PER_UNIT = 100
_BUFFER = 2.0


def _single_threshold_counts(pos: np.ndarray, neg: np.ndarray, per_unit: int) -> tuple[np.ndarray, np.ndarray]:
    """(#pos >= t, #neg >= t) for the single-threshold grid; pos and neg sorted ascending."""
    lo = min(pos[0], neg[0])
    hi = max(pos[-1], neg[-1])
    num = int(math.ceil((hi - lo) * per_unit))
    t = np.linspace(lo, hi, num)
    tp = pos.size - np.searchsorted(pos, t, side="left")
    fp = neg.size - np.searchsorted(neg, t, side="left")
    return tp, fp


def _double_threshold_counts(pos: np.ndarray, neg: np.ndarray, per_unit: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(#peaky in [l, r], #other in [l, r]) over the (l, r) grid; returns swapped=True when the
    original negative group is the peakier one (it then plays the positive role in these rules)."""
    pos_diff = pos[-1] - pos[0]
    neg_diff = neg[-1] - neg[0]
    width = neg_diff if pos_diff > neg_diff else pos_diff
    swapped = bool(pos_diff >= neg_diff)  # the reference swaps on >=, so equal ranges swap
    peaky, other = (neg, pos) if swapped else (pos, neg)
    lo = peaky[0] + width - _BUFFER
    hi = peaky[-1] + _BUFFER
    right = np.linspace(lo, hi, int(math.ceil((hi - lo) * per_unit)))
    n_left = int(math.ceil(2 * _BUFFER * per_unit))
    left = np.linspace(right - width - _BUFFER, right - width + _BUFFER, n_left, axis=1)  # [R, L]
    r = np.broadcast_to(right[:, None], left.shape)

    def inside(sorted_vals: np.ndarray) -> np.ndarray:
        # #{l <= v <= r}; an empty interval (l > r) counts 0
        c = np.searchsorted(sorted_vals, r, side="right") - np.searchsorted(sorted_vals, left, side="left")
        return np.maximum(c, 0).ravel()

    return inside(peaky), inside(other), swapped


def _rule_epsilons(tp: np.ndarray, fp: np.ndarray, n_pos: int, n_neg: int, delta: float) -> np.ndarray:
    """Epsilon per rule from counts; nan marks a discarded rule, inf perfect separation."""
    fnr = (n_pos - tp) / n_pos
    fpr = fp / n_neg
    perfect = (fp == 0) & (tp == n_pos)
    one_zero = (fpr == 0) ^ (fnr == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(1.0 - delta - fpr) - np.log(fnr)
        b = np.log(1.0 - delta - fnr) - np.log(fpr)
    eps = np.clip(np.fmax(a, b), 0.0, None)  # fmax ignores a nan term (log of a negative number)
    eps = np.where(one_zero, np.nan, eps)
    return np.where(perfect, np.inf, eps)


def _example_epsilon(
    pos: np.ndarray, neg: np.ndarray, delta: float, cap: float, per_unit: int
) -> float:
    pos_diff = pos[-1] - pos[0]
    neg_diff = neg[-1] - neg[0]
    largest, smallest = max(pos_diff, neg_diff), min(pos_diff, neg_diff)
    if largest == 0:
        return cap if pos[0] != neg[0] else 0.0
    if smallest / largest < 0.01:
        return cap
    tp_s, fp_s = _single_threshold_counts(pos, neg, per_unit)
    eps_s = _rule_epsilons(tp_s, fp_s, pos.size, neg.size, delta)
    tp_d, fp_d, swapped = _double_threshold_counts(pos, neg, per_unit)
    n_p, n_n = (neg.size, pos.size) if swapped else (pos.size, neg.size)
    eps_d = _rule_epsilons(tp_d, fp_d, n_p, n_n, delta)
    eps = np.concatenate([eps_d, eps_s])
    eps = eps[~np.isnan(eps)]
    if eps.size == 0:
        return float("nan")
    return float(np.clip(eps.max(), 0.0, cap))


def per_example_epsilon(
    unlearned: np.ndarray,
    retrained: np.ndarray,
    *,
    delta: float = DELTA,
    cap: float = EPSILON_CAP,
    thresholds_per_unit: int = NUM_THRESHOLDS_PER_UNIT,
    on_no_rule: Literal["raise", "nan"] = "raise",
) -> np.ndarray:
    """Per-example epsilon (module docstring) from ``unlearned`` [M_u, E] and ``retrained`` [M_r, E]
    signals (one row per model). Returns [E] float64 in [0, cap].

    ``on_no_rule``: what to do when every rule of an example is discarded (the reference's intended
    non-empty assertion): ``"raise"`` a ValueError naming the example, or return ``nan`` for it.
    """
    if on_no_rule not in ("raise", "nan"):
        raise ValueError(f"on_no_rule must be 'raise' or 'nan', got {on_no_rule!r}")
    u = np.asarray(unlearned, dtype=np.float64)
    r = np.asarray(retrained, dtype=np.float64)
    if u.ndim != 2 or r.ndim != 2 or u.shape[1] != r.shape[1]:
        raise ValueError(f"need unlearned [M, E] and retrained [M, E], got {u.shape} and {r.shape}")
    if u.shape[0] < 2 or r.shape[0] < 2:
        raise ValueError("need at least two models per group")
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(r))):
        raise ValueError("signals must be finite")
    retrain_is_positive = np.median(r, axis=0) > np.median(u, axis=0)
    u_sorted, r_sorted = np.sort(u, axis=0), np.sort(r, axis=0)
    out = np.empty(u.shape[1])
    for i in range(u.shape[1]):
        pos, neg = (r_sorted[:, i], u_sorted[:, i]) if retrain_is_positive[i] else (u_sorted[:, i], r_sorted[:, i])
        out[i] = _example_epsilon(pos, neg, delta, cap, thresholds_per_unit)
        if np.isnan(out[i]) and on_no_rule == "raise":
            raise ValueError(f"example {i}: every decision rule was discarded (no usable threshold)")
    return out


def forget_score(eps: np.ndarray, n_models: int) -> float:
    """Bucketed forget score: Σ_e points(ε_e) / E with points 2^{−⌊2ε⌋} for ε below the last bucket
    edge ceil(log(M − 1)) and 0 beyond (or for nan). ``n_models`` = M, the models per group."""
    if n_models < 2:
        raise ValueError("n_models must be >= 2")
    e = np.asarray(eps, dtype=np.float64).ravel()
    if e.size == 0:
        raise ValueError("no examples")
    max_epsilon = math.ceil(math.log(n_models - 1))
    n_buckets = int(2 * max_epsilon)  # buckets [0, .5), [.5, 1), ... ending at max_epsilon
    with np.errstate(invalid="ignore"):
        idx = np.floor(np.maximum(e, 0.0) * 2.0)  # first bucket whose upper edge exceeds ε
        ok = np.isfinite(idx) & (idx < n_buckets)
    points = np.where(ok, np.exp2(-np.where(ok, idx, 0.0)), 0.0)
    return float(points.sum() / e.size)


def forget_score_from_signals(unlearned: np.ndarray, retrained: np.ndarray, **kwargs) -> float:
    """:func:`forget_score` of :func:`per_example_epsilon`, with M = the number of unlearned models."""
    eps = per_example_epsilon(unlearned, retrained, **kwargs)
    return forget_score(eps, np.asarray(unlearned).shape[0])


def challenge_score(
    forget_score: float,
    ra_u: float | np.ndarray,
    ra_r: float | np.ndarray,
    ta_u: float | np.ndarray,
    ta_r: float | np.ndarray,
) -> float:
    """Final challenge score F × (RA_u / RA_r) × (TA_u / TA_r); arrays of per-model accuracies are
    averaged over models first (retain accuracy RA and test accuracy TA, unlearned vs retrained)."""
    m = lambda v: float(np.mean(v))  # noqa: E731
    return float(forget_score) * (m(ra_u) / m(ra_r)) * (m(ta_u) / m(ta_r))
