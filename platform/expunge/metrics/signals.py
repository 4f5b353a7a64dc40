"""Per-sample signals that membership / unlearning inference attacks read from a model's logits.

Every function takes ``logits`` of shape ``[N, C]`` (any float dtype, computed in float64) and, where
the signal is about the true class, integer ``labels`` of shape ``[N]``; it returns a float64 array of
shape ``[N]`` (or ``[N, C]`` for :func:`softmax`). Nothing here knows about models or data loaders.

Signals and where they are used in the audit suite:

* :func:`true_class_prob` — p_y, the model confidence; IAM maps it through the bounded Gumbel map
  (:func:`expunge.metrics.iam.bounded_gumbel_map`), RMIA can use it directly.
* :func:`logit_scaled_confidence` — φ = log p_y − log Σ_{j≠y} p_j, LiRA's signal (Carlini et al.,
  S&P 2022) and the signal of the NeurIPS 2023 unlearning challenge's per-example epsilon.
* :func:`taylor_soft_margin` — the RMIA signal of the reference code (Zarifzadeh et al., ICML 2024).
* :func:`entropy`, :func:`modified_entropy` — the metric-based attacks of Song & Mittal (USENIX
  Security 2021).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "softmax",
    "log_softmax",
    "true_class_prob",
    "logit_scaled_confidence",
    "entropy",
    "modified_entropy",
    "taylor_soft_margin",
]


def _check(logits: np.ndarray, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits must be [N, C], got shape {z.shape}")
    if labels is None:
        return z, None
    y = np.asarray(labels)
    if y.shape != (z.shape[0],):
        raise ValueError(f"labels must be [N] = [{z.shape[0]}], got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError("labels must be integers")
    if len(y) and (y.min() < 0 or y.max() >= z.shape[1]):
        raise ValueError("labels out of range for the number of classes")
    return z, y.astype(np.intp)


def _logsumexp(z: np.ndarray, axis: int = -1) -> np.ndarray:
    # Max-subtracted so exp never overflows; rows that are all -inf give -inf (no nan).
    m = np.max(z, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True)) + m
    return np.squeeze(out, axis=axis)


def _logsumexp_excluding(z: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """log Σ_{j ≠ idx_i} exp(z_ij) per row, exact (the excluded entry is masked, not subtracted)."""
    rows = np.arange(z.shape[0])
    masked = z.copy()
    masked[rows, idx] = -np.inf
    return _logsumexp(masked, axis=1)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, max-subtracted: p_ij = exp(z_ij − max_k z_ik) / Σ_j exp(·)."""
    z, _ = _check(logits)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64: log p_ij = z_ij − log Σ_k exp(z_ik); finite for finite logits."""
    z, _ = _check(logits)
    return z - _logsumexp(z, axis=1)[:, None]


def true_class_prob(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Model confidence p_θ(x) = softmax(f_θ(x))[y] (float64)."""
    z, y = _check(logits, labels)
    return np.exp(log_softmax(z)[np.arange(len(y)), y])


def logit_scaled_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LiRA's logit-scaled confidence φ = log p_y − log Σ_{j≠y} p_j  (= log(p_y / (1 − p_y))).

    Carlini et al., "Membership Inference Attacks From First Principles", S&P 2022; also the signal of
    the NeurIPS 2023 unlearning challenge. The softmax normaliser cancels, so

        φ = z_y − log Σ_{j≠y} exp(z_j),

    computed here with a max-subtracted log-sum-exp over the *other* classes. This is exact and finite
    for any finite logits (e.g. ±1000 gives ±2000 in the two-class case).

    Equivalence with the reference code (``carlini_logit`` / ``compute_logit_scaled_confidence``),
    which computes p in float64 and then ``log(p_y + 1e-45) − log(Σ_{j≠y} p_j + 1e-45)``: the two agree
    to float rounding whenever neither probability underflows, i.e. |φ| below roughly 100. Beyond that
    the reference saturates near ±103.6 (= −log 1e-45). The form here keeps ordering information there
    too, so it ranks samples at least as finely.

    Needs at least two classes (with one class the "other" mass is empty and φ = +inf).
    """
    z, y = _check(logits, labels)
    if z.shape[1] < 2:
        raise ValueError("logit_scaled_confidence needs at least two classes")
    return z[np.arange(len(y)), y] - _logsumexp_excluding(z, y)


def entropy(logits: np.ndarray) -> np.ndarray:
    """Prediction entropy H(p) = −Σ_j p_j log p_j (nats), from a stable log-softmax.

    Song & Mittal, "Systematic Evaluation of Privacy Risks of Machine Learning Models", USENIX
    Security 2021 (the "entropy" metric attack; lower entropy suggests a member).
    """
    logp = log_softmax(logits)
    # p = exp(logp) can underflow to 0 while logp stays finite, so 0·finite = 0: no 0·log 0 = nan.
    return -np.sum(np.exp(logp) * logp, axis=1) + 0.0  # + 0.0 turns −0.0 into 0.0


def _log1m_probs(z: np.ndarray, logp: np.ndarray) -> np.ndarray:
    """log(1 − p_ij) for every class, accurate also when p_ij → 1."""
    p = np.exp(logp)
    with np.errstate(divide="ignore"):
        out = np.log1p(-p)
    # log1p(−p) loses all precision when p ≈ 1; only the arg-max class can have p > 1/2, and for it
    # 1 − p = Σ_{j≠i} p_j is evaluated exactly as a log-sum-exp over the other classes.
    top = np.argmax(z, axis=1)
    rows = np.arange(z.shape[0])
    lse = _logsumexp(z, axis=1)
    out[rows, top] = _logsumexp_excluding(z, top) - lse
    return out


def modified_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Song & Mittal's modified entropy (m-entropy), USENIX Security 2021, Eq. (5):

        Mentr(p, y) = −(1 − p_y) log p_y − Σ_{j≠y} p_j log(1 − p_j).

    It is 0 for a perfectly confident correct prediction and grows both with uncertainty and with
    confident *wrong* predictions (unlike the plain entropy). Lower = more member-like.

    All logs come from log-softmax / log-sum-exp, so no probability clipping is needed: their code
    clips with log(max(p, 1e-30)), which caps each term near 69; the form here is exact for any
    finite logits.
    """
    z, y = _check(logits, labels)
    if z.shape[1] < 2:
        raise ValueError("modified_entropy needs at least two classes")
    rows = np.arange(len(y))
    logp = log_softmax(z)
    log1m = _log1m_probs(z, logp)
    p = np.exp(logp)
    true_term = -np.exp(log1m[rows, y]) * logp[rows, y]
    other = -p * log1m
    other[rows, y] = 0.0
    return true_term + other.sum(axis=1)


def _taylor(u: np.ndarray, n: int) -> np.ndarray:
    # t_n(u) = Σ_{i=0}^{n−1} u^i / i!, the same truncation as the reference ``get_taylor(x, n)``.
    out = np.ones_like(u)
    power = np.ones_like(u)
    for i in range(1, n):
        power = power * u
        out = out + power / math.factorial(i)
    return out


def taylor_soft_margin(
    logits: np.ndarray,
    labels: np.ndarray,
    m: float = 0.6,
    n: int = 4,
    temperature: float = 1.0,
) -> np.ndarray:
    """RMIA's Taylor-softmax signal with a soft margin on the true class.

    With u_j = z_j / T and the order-(n−1) Taylor expansion of exp, t(u) = Σ_{i=0}^{n−1} u^i / i!
    (n = 4: t(u) = 1 + u + u²/2 + u³/6),

        sig(x, y) = t(u_y − m) / ( Σ_{j≠y} t(u_j) + t(u_y − m) ).

    Source: ml_privacy_meter ``research/2024_rmia/main.py`` (``sm_taylor_softmax_relative``) and its
    port in the IAM repository (``rmia.py::convert_signals``, ``'taylor-soft-margin'``), used for
    Zarifzadeh et al., "Low-Cost High-Power Membership Inference Attacks", ICML 2024. Defaults of
    the reference configs: m = 0.6, n = 4, T = 2 (CIFAR-10, CINIC-10, Purchase) or T = 1 (CIFAR-100).

    Notes, as in the reference: the Taylor polynomial is not shift-invariant, so the logits are *not*
    max-subtracted. For even n, t has odd degree and becomes negative for small u (n = 4: u < −1.596),
    so the signal can leave [0, 1] for strongly negative logits; the RMIA scores in
    :mod:`expunge.metrics.rmia` handle ratios of either sign.
    """
    z, y = _check(logits, labels)
    if n < 1:
        raise ValueError("n must be >= 1")
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    rows = np.arange(len(y))
    u = z / temperature
    t = _taylor(u, n)
    t_true_margin = _taylor(u[rows, y] - m, n)
    # Masked sum rather than "total − t_y": no cancellation when t_y dominates.
    t_others = t.copy()
    t_others[rows, y] = 0.0
    others = t_others.sum(axis=1)
    return t_true_margin / (others + t_true_margin)
