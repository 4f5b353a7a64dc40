"""IAM: Interpolated Approximate Measurement of sample-level unlearning completeness.

Wang, Li, Xiang, Cao & Wang, "Towards Lifecycle Unlearning Commitment Management: Measuring
Sample-level Unlearning Completeness", USENIX Security 2025 (arXiv 2506.06112); reference code
``Happy2Git/Unlearning_Inference_IAM`` (``unlearning_lib/metrics/iam_score.py::interpolate_appro``).

For each queried training sample x, IAM compares the unlearned model's response with responses
interpolated between "generalisation" (shadow OUT models, which never saw x) and "fitting" (an anchor
that did fit x). Signals are the bounded Gumbel map of the true-class confidence,
s = :func:`bounded_gumbel_map` (p_y), of

* the unlearned model θ_u (the model under audit): s_u(x);
* K shadow OUT models: s_k(x), k = 1..K (K = 1 is the paper's default);
* the fitting anchor f(x): **IAM-On** f(x) = s(p_{θ_o}(x)), the original model; **IAM-Off** one
  constant c = (1/K) Σ_k mean_{x' ∈ D_k} s(p_{θ_k}(x')), the shadows' mean signal on their *own*
  training samples (no original model needed).

With α_j = j/(J − 1), j = 0..J−1 (J = 100 levels; J = 2 means no interpolation), for the levels
j = 0..J−2 (α = 1, the anchor itself, has zero spread and is dropped):

    m_kj(x) = s_k(x) + α_j (f(x) − s_k(x))                 interpolated response of shadow k
    μ_j(x)  = mean_k m_kj(x)
    σ_j     = std_{k,x} m_kj(x)                             ONE pooled std per level (ddof 0)
    β_j     = √6 σ_j / π,  loc_j(x) = μ_j(x) − 0.5772 β_j   Gumbel (right) method of moments
    F_j(x)  = exp(−exp(−(s_u(x) − loc_j(x)) / β_j))         Gumbel CDF of the unlearned model's signal
    S(x)    = Σ_j w_j F_j(x)        membership score in [0, 1] (1 = fully fitted, 0 = generalisation)
    U(x)    = 1 − S(x)              unlearning (completeness) score

Everything is affine in α_j, so the level statistics come from a handful of O(K·N) sums and each
level costs O(N): O(K·N + J·N) time and O(N) extra memory instead of the reference's J×K×N tensor
(same numbers up to float rounding). S is invariant to any increasing affine change of the signal
(μ, σ and s_u move together), which is why the normalisation of the Gumbel map does not change
scores, and why the reference's Purchase/Texas IAM-Off variant (ε1 = 0.1, ε2 = 1e-6 with the default
normalising constants) ranks like a properly normalised one.

Level weights (``weighting``):

* ``"reference"`` (default, reproduces the published numbers): w_j = α_{j+1} / Σ_{i=1}^{J−1} α_i,
  i.e. level j is weighted by the *next* level's α (the reference's alignment: level α = 0 gets the
  unnormalised weight α_1 = 1/(J − 1), i.e. 2/(J(J − 1)) after dividing by Σ α_i = J/2); the
  weights grow towards the fitting end;
* ``"aligned"``: w_j = α_j / Σ_{i=0}^{J−2} α_i, each level weighted by its own α (needs J >= 3,
  since α_0 = 0);
* ``"uniform"``: w_j = 1/(J − 1).

Orientation: the signal must increase with confidence (p_y, or exp(−loss) for language models) and
the interpolation always runs from OUT (α = 0) to the anchor (α = 1), so every weighting above puts
its mass where the computer-vision reference puts it. The reference's LLM variant
(``iam_llm_score.py``) instead maps q = 1 − exp(−ℓ), which rises with loss, interpolates anchor → OUT
and reuses the α_{j+1} weights, so its weights emphasise the **OUT** end — the opposite of the
computer-vision code. Here that inconsistency is fixed by construction: pass p = exp(−ℓ) for LLMs.

Degenerate levels: if σ_j = 0 (all interpolated responses equal), the Gumbel fit is a point mass and
F_j(x) = 1[s_u(x) >= μ_j(x)] (its limit); the reference divides by zero there.
"""
from __future__ import annotations

from typing import Literal, NamedTuple, Sequence

import numpy as np

__all__ = [
    "IAMResult",
    "bounded_gumbel_map",
    "iam_score",
    "iam_online",
    "iam_offline",
    "iam_offline_anchor",
]

#: Euler–Mascheroni constant as truncated in the reference code (exact value 0.5772156649...); the
#: difference shifts every location by ~1.6e-5·β, kept for exact reproduction.
EULER_GAMMA_REF = 0.5772

Weighting = Literal["reference", "aligned", "uniform"]


class IAMResult(NamedTuple):
    """``membership`` S(x) ∈ [0, 1] (1 = fully fitted) and ``unlearning`` = 1 − S(x)."""

    membership: np.ndarray
    unlearning: np.ndarray


def _raw_gumbel(p: np.ndarray, eps1: float, eps2: float) -> np.ndarray:
    return -np.log(eps1 - np.log(eps2 + p))


def bounded_gumbel_map(
    p: np.ndarray, eps1: float = 1e-2, eps2: float = 1e-5, normalize: bool = True
) -> np.ndarray:
    """IAM's bounded Gumbel map of a confidence p ∈ [0, 1]:

        r(p) = −log(ε1 − log(ε2 + p)),   s(p) = (r(p) − r(0)) / (r(1) − r(0)) ∈ [0, 1].

    The unbounded Gumbel map −log(−log p) sends p → 1 to +inf; ε1 bounds it (r(1) ≈ −log ε1) and ε2
    bounds p → 0. Defaults ε1 = 1e-2, ε2 = 1e-5 (the paper's best), r(1) ≈ 4.606, r(0) ≈ −2.444.
    Needs ε1 > log(1 + ε2) so the inner argument stays positive on [0, 1]; confidences within 1e-6
    outside [0, 1] (float32 rounding) are clipped, anything further raises. ``normalize=False`` returns
    r(p) (the LLM code's unnormalised form); IAM scores do not depend on the choice.
    """
    if not eps1 > np.log1p(eps2):
        raise ValueError("need eps1 > log(1 + eps2) for the map to be defined on [0, 1]")
    q = np.asarray(p, dtype=np.float64)
    if np.any((q < -1e-6) | (q > 1 + 1e-6)) or np.any(np.isnan(q)):
        raise ValueError("confidences must lie in [0, 1]")
    q = np.clip(q, 0.0, 1.0)  # float32 softmax outputs can overshoot 1 by an ulp
    r = _raw_gumbel(q, eps1, eps2)
    if not normalize:
        return r
    r0, r1 = _raw_gumbel(np.float64(0.0), eps1, eps2), _raw_gumbel(np.float64(1.0), eps1, eps2)
    return (r - r0) / (r1 - r0)


def _level_weights(alphas: np.ndarray, weighting: Weighting) -> np.ndarray:
    n_levels = len(alphas)
    if weighting == "reference":
        w = alphas[1:]  # level j (j = 0..J−2) weighted by α_{j+1}
    elif weighting == "aligned":
        if n_levels < 3:
            raise ValueError("'aligned' weighting needs n_levels >= 3 (alpha_0 = 0)")
        w = alphas[:-1]
    elif weighting == "uniform":
        w = np.ones(n_levels - 1)
    else:
        raise ValueError(f"unknown weighting {weighting!r}")
    return w / w.sum()


def _gumbel_cdf(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Gumbel(right) CDF with method-of-moments parameters from mean ``mu`` and std ``sigma``."""
    beta = np.sqrt(6.0) * sigma / np.pi
    loc = mu - EULER_GAMMA_REF * beta
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        f = np.exp(-np.exp(-(x - loc) / beta))
    # β = 0: point mass at μ (the CDF's limit), instead of the reference's 0/0.
    return np.where(beta > 0, f, (x >= mu).astype(np.float64))


def iam_score(
    s_unlearned: np.ndarray,
    s_shadows: np.ndarray,
    anchor: np.ndarray | float,
    *,
    n_levels: int = 100,
    weighting: Weighting = "reference",
    pooled_variance: bool = True,
) -> IAMResult:
    """IAM on already-mapped signals (module docstring for the formula).

    Parameters
    ----------
    s_unlearned : [N]
        s_u(x), the audited (unlearned) model's signal.
    s_shadows : [K, N]
        s_k(x) of K >= 1 shadow OUT models.
    anchor : [N] or scalar
        The fitting anchor f(x): the original model's signal (IAM-On) or the constant c (IAM-Off).
    n_levels : J >= 2 interpolation levels (α = 0 .. 1); J = 2 is "no interpolation".
    weighting : "reference" (default), "aligned" or "uniform"; see the module docstring.
    pooled_variance : True (the reference's ``fix_variance=True``, used in every reported run): one σ
        per level pooled over shadows and samples. False: per-sample σ over shadows,
        σ_j(x) = (1 − α_j)·std_k s_k(x) (forced True when K = 1, as in the reference).

    Returns
    -------
    IAMResult(membership=S [N] in [0, 1], unlearning=1 − S).
    """
    su = np.asarray(s_unlearned, dtype=np.float64)
    sk = np.asarray(s_shadows, dtype=np.float64)
    if su.ndim != 1 or sk.ndim != 2 or sk.shape[1] != su.shape[0] or sk.shape[0] < 1:
        raise ValueError(f"need s_unlearned [N] and s_shadows [K, N], got {su.shape} and {sk.shape}")
    f = np.broadcast_to(np.asarray(anchor, dtype=np.float64), su.shape)
    if n_levels < 2:
        raise ValueError("n_levels must be >= 2")
    k = sk.shape[0]
    alphas = np.linspace(0.0, 1.0, n_levels)
    weights = _level_weights(alphas, weighting)

    # Sums for the pooled variance of m = (1−α) s + α f over all (k, x) pairs, centred for accuracy:
    # Var_j = (1−α)² Var(s) + α² Var(f) + 2 α (1−α) Cov(s, f)   (f broadcast over the K shadows).
    s_bar = sk.mean(axis=0)  # mean over shadows, per sample
    s_c = sk - sk.mean()
    f_c = f - f.mean()
    var_s = float(np.mean(s_c**2))
    var_f = float(np.mean(f_c**2))
    cov_sf = float(np.mean(s_c.mean(axis=0) * f_c))
    sd_k = sk.std(axis=0)  # per-sample std over shadows (only for pooled_variance=False)
    pooled = pooled_variance or k == 1

    score = np.zeros_like(su)
    for alpha, w in zip(alphas[:-1], weights):
        mu = (1.0 - alpha) * s_bar + alpha * f
        if pooled:
            var = (1.0 - alpha) ** 2 * var_s + alpha**2 * var_f + 2.0 * alpha * (1.0 - alpha) * cov_sf
            sigma = np.full_like(su, np.sqrt(max(var, 0.0)))  # rounding can leave a tiny negative
        else:
            sigma = (1.0 - alpha) * sd_k
            sigma = np.where(sigma == 0, 1e-10, sigma)  # the reference's zero replacement
        score += w * _gumbel_cdf(su, mu, sigma)
    score = np.clip(score, 0.0, 1.0)
    return IAMResult(score, 1.0 - score)


def iam_online(
    p_unlearned: np.ndarray,
    p_shadows: np.ndarray,
    p_original: np.ndarray,
    *,
    eps1: float = 1e-2,
    eps2: float = 1e-5,
    n_levels: int = 100,
    weighting: Weighting = "reference",
    pooled_variance: bool = True,
) -> IAMResult:
    """IAM-On from true-class confidences: the anchor is the original model, f(x) = s(p_{θ_o}(x)).

    ``p_unlearned`` [N], ``p_shadows`` [K, N], ``p_original`` [N] are p_y of the unlearned model, the
    shadow OUT models and the original model on the queried training samples.
    """
    g = lambda p: bounded_gumbel_map(p, eps1, eps2)  # noqa: E731
    return iam_score(g(p_unlearned), g(p_shadows), g(p_original), n_levels=n_levels,
                     weighting=weighting, pooled_variance=pooled_variance)


def iam_offline_anchor(
    shadow_train_conf: Sequence[np.ndarray] | np.ndarray, eps1: float = 1e-2, eps2: float = 1e-5
) -> float:
    """IAM-Off's constant anchor c = (1/K) Σ_k mean_{x' ∈ D_k} s(p_{θ_k}(x')).

    ``shadow_train_conf``: for each shadow k, p_y of shadow k on its own training samples (a list of
    1-D arrays, possibly of different lengths, or a [K, M] array). The mean of per-shadow means, as in
    the reference, not the pooled mean.
    """
    rows = list(shadow_train_conf) if not isinstance(shadow_train_conf, np.ndarray) else (
        [shadow_train_conf] if shadow_train_conf.ndim == 1 else list(shadow_train_conf))
    if not rows or any(np.asarray(r).size == 0 for r in rows):
        raise ValueError("need at least one non-empty array of shadow training confidences")
    return float(np.mean([bounded_gumbel_map(np.asarray(r), eps1, eps2).mean() for r in rows]))


def iam_offline(
    p_unlearned: np.ndarray,
    p_shadows: np.ndarray,
    shadow_train_conf: Sequence[np.ndarray] | np.ndarray,
    *,
    eps1: float = 1e-2,
    eps2: float = 1e-5,
    n_levels: int = 100,
    weighting: Weighting = "reference",
    pooled_variance: bool = True,
) -> IAMResult:
    """IAM-Off from true-class confidences: the anchor is the constant :func:`iam_offline_anchor`
    of the shadows' confidences on their own training data; no original model is queried."""
    c = iam_offline_anchor(shadow_train_conf, eps1, eps2)
    g = lambda p: bounded_gumbel_map(p, eps1, eps2)  # noqa: E731
    return iam_score(g(p_unlearned), g(p_shadows), c, n_levels=n_levels,
                     weighting=weighting, pooled_variance=pooled_variance)
