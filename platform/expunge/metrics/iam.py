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

Scoring functions (``scoring``), the ablation of the paper's Table 5 (CIFAR-100 BinUI AUC; the
reference's ``new_test_scores.py`` and ``interpolate_appro(type=...)``). Each turns the models'
true-class confidences into a membership score S(x) ∈ [0, 1], nondecreasing in the audited model's
confidence. Two use the audited model alone (no shadows, no interpolation, so IAM-On = IAM-Off):

* ``"probability"`` (Table 5 "Prob"): S(x) = p_u(x);
* ``"loss"`` (Table 5 "Loss"): S(x) = exp(−ℓ_u(x)) with the cross-entropy ℓ_u = −log p_u, so it
  equals "probability" (Table 5 reports 81.31 for both);

the other five keep the interpolation and the weights above and change the distribution fitted to
the interpolated responses m_kj(x) at each level, F_j(x) = F(s_u(x); level j), and the signal it is
fitted on (as Table 5 pairs them):

* ``"gumbel"`` (default, IAM itself): the Gumbel(right) fit above on the bounded Gumbel map;
* ``"gaussian"`` (Table 5 "Gauss"): Normal(μ_j(x), σ_j) on LiRA's logit-scaled confidence
  log(p / (1 − p));
* ``"beta"`` (Table 5 "Bayes"): the method-of-moments Beta(a, b) with mean μ_j(x) and variance σ_j²
  on the confidence p ∈ [0, 1];
* ``"ecdf"``: the empirical CDF of the K responses, (1/K) Σ_k 1[m_kj(x) <= s_u(x)], on p;
* ``"kde"``: a Gaussian-kernel density over the K responses with bandwidth σ_j, whose CDF is
  (1/K) Σ_k Φ((s_u(x) − m_kj(x)) / σ_j), on p.

The reference's ECDF, KDE and Beta runs pass the shadows' *logit-scaled* confidences with the
audited model's and the anchor's *probabilities*, mixing two scales (the likely cause of their
~64% AUC in Table 5); here every signal of a scoring is on one scale, so those rows are not
reproduced number for number.
"""
from __future__ import annotations

import typing
from typing import Callable, Literal, NamedTuple, Sequence

import numpy as np
from scipy import stats

__all__ = [
    "IAMResult",
    "SCORINGS",
    "bounded_gumbel_map",
    "check_scoring",
    "probability_score",
    "loss_score",
    "logit_confidence",
    "scoring_signal",
    "gumbel_level_cdf",
    "gaussian_level_cdf",
    "beta_level_cdf",
    "ecdf_level_cdf",
    "kde_level_cdf",
    "iam_score",
    "iam_online",
    "iam_offline",
    "iam_offline_anchor",
]

#: Euler–Mascheroni constant as truncated in the reference code (exact value 0.5772156649...); the
#: difference shifts every location by ~1.6e-5·β, kept for exact reproduction.
EULER_GAMMA_REF = 0.5772

Weighting = Literal["reference", "aligned", "uniform"]
Scoring = Literal["gumbel", "probability", "loss", "ecdf", "kde", "beta", "gaussian"]

#: the scoring functions of the paper's Table 5, the default (IAM's bounded Gumbel fit) first
SCORINGS: tuple[str, ...] = typing.get_args(Scoring)
#: scorings that read the audited model alone: no shadows, no anchor, no interpolation
REFERENCE_FREE: tuple[str, ...] = ("probability", "loss")
#: a confidence this close to 1 is 1 in float64 (the next double below 1 is 1 − 2⁻⁵³); the logit of
#: "gaussian" is capped there, so samples the other signals tie (p rounded to 1) tie on it too
_P_MAX = 1.0 - 2.0**-53
#: the smallest positive double that is not subnormal: the logit's floor for p underflowed to 0
_P_MIN = np.finfo(np.float64).tiny


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


def check_scoring(scoring: str) -> str:
    """``scoring`` if it is one of :data:`SCORINGS`, else a one-line ``ValueError`` listing them."""
    if scoring not in SCORINGS:
        raise ValueError(f"unknown IAM scoring {scoring!r} (valid: {', '.join(SCORINGS)})")
    return scoring


def _confidences(p: np.ndarray) -> np.ndarray:
    q = np.asarray(p, dtype=np.float64)
    if np.any((q < -1e-6) | (q > 1 + 1e-6)) or np.any(np.isnan(q)):
        raise ValueError("confidences must lie in [0, 1]")
    return np.clip(q, 0.0, 1.0)  # float32 softmax outputs can overshoot 1 by an ulp


def probability_score(p: np.ndarray) -> np.ndarray:
    """Table 5's "Prob" scoring: S(x) = p_u(x), the audited model's true-class confidence, used as
    the membership score directly (no shadows, no interpolation). Confidences within 1e-6 outside
    [0, 1] are clipped, anything further raises."""
    return _confidences(p)


def loss_score(loss: np.ndarray) -> np.ndarray:
    """Table 5's "Loss" scoring: S(x) = exp(−ℓ_u(x)) of the audited model's cross-entropy loss
    ℓ_u(x) >= 0 (higher loss, lower membership), clipped to [0, 1] (a loss rounded a hair below 0).

    For the cross-entropy exp(−ℓ) = p_y, the reference's ``model_confidence``, so this ranks exactly
    as :func:`probability_score` (Table 5 reports the same AUC, 81.31, for both)."""
    ell = np.asarray(loss, dtype=np.float64)
    if np.any(np.isnan(ell)) or np.any(ell < -1e-6):
        raise ValueError("losses must be >= 0")
    return np.clip(np.exp(-ell), 0.0, 1.0)


def logit_confidence(p: np.ndarray) -> np.ndarray:
    """LiRA's logit-scaled confidence φ = log(p / (1 − p)) of a confidence p ∈ [0, 1], the signal of
    Table 5's "Gauss" row (the reference's ``carlini_logit``).

    Computed from p, so it is finite only where float64 resolves p: p is clipped to
    [2.2e-308, 1 − 2⁻⁵³], i.e. φ ∈ [−708.4, 36.7]. Confidences that round to 1 (or to 0) tie here
    exactly as they tie on p and on the bounded Gumbel map."""
    q = np.clip(_confidences(p), _P_MIN, _P_MAX)
    return np.log(q) - np.log1p(-q)


def scoring_signal(p: np.ndarray, scoring: Scoring, eps1: float = 1e-2, eps2: float = 1e-5) -> np.ndarray:
    """The per-sample signal a scoring reads, from confidences p ∈ [0, 1]:

    * ``"gumbel"``: the bounded Gumbel map s(p) (:func:`bounded_gumbel_map`, ε1, ε2);
    * ``"gaussian"``: the logit-scaled confidence log(p / (1 − p)) (:func:`logit_confidence`);
    * ``"loss"``: the cross-entropy ℓ = −log p (+inf at p = 0);
    * ``"probability"``, ``"beta"``, ``"ecdf"``, ``"kde"``: p itself.

    Every signal but the loss increases with p (the orientation :func:`iam_score` needs)."""
    check_scoring(scoring)
    if scoring == "gumbel":
        return bounded_gumbel_map(p, eps1, eps2)
    if scoring == "gaussian":
        return logit_confidence(p)
    if scoring == "loss":
        with np.errstate(divide="ignore"):
            return -np.log(_confidences(p))
    return _confidences(p)


def _point_mass(x: np.ndarray, mu: np.ndarray, spread: np.ndarray, f: np.ndarray) -> np.ndarray:
    # zero spread: the fit is a point mass at μ and its CDF is the step 1[x >= μ], the limit of
    # every family here as the spread shrinks (the reference divides by zero there)
    return np.where(spread > 0, f, (x >= mu).astype(np.float64))


def gumbel_level_cdf(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Table 5's "Gumbel" (IAM's own) level distribution: the Gumbel(right) CDF with method-of-moments
    parameters from the level's mean ``mu`` and std ``sigma``,

        β = √6 σ / π,  loc = μ − 0.5772 β,  F(x) = exp(−exp(−(x − loc) / β)),

    (the reference's ``gumbel_r.cdf``); σ = 0 gives the point mass 1[x >= μ]."""
    beta = np.sqrt(6.0) * sigma / np.pi
    loc = mu - EULER_GAMMA_REF * beta
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        f = np.exp(-np.exp(-(x - loc) / beta))
    # β = 0: point mass at μ (the CDF's limit), instead of the reference's 0/0.
    return np.where(beta > 0, f, (x >= mu).astype(np.float64))


def gaussian_level_cdf(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Table 5's "Gauss" level distribution: F(x) = Φ((x − μ) / σ), the Normal CDF with the level's
    mean and std (``scipy.stats.norm``; the reference's ``type='norm'``); σ = 0 gives 1[x >= μ]."""
    x, mu, sigma = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (x, mu, sigma)))
    f = stats.norm.cdf(x, loc=mu, scale=np.where(sigma > 0, sigma, 1.0))
    return _point_mass(x, mu, sigma, f)


#: the Beta fit's floor for mean and moment factor (the reference's 1e-10 clamps)
_BETA_FLOOR = 1e-10


def beta_level_cdf(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Table 5's "Bayes" level distribution: the Beta CDF (``scipy.stats.beta``) with the level's mean
    μ and variance σ² by the method of moments (the reference's ``type='beta'``),

        m = clip(μ, 1e-10, 1 − 1e-10),  t = max(m (1 − m) / σ² − 1, 1e-10),  a = m t,  b = (1 − m) t.

    For a signal in [0, 1] (confidences). When σ² >= m (1 − m) no Beta has these moments and t is
    floored as in the reference (a U-shaped Beta with its mass near 0 and 1); σ = 0 gives 1[x >= μ]."""
    x, mu, sigma = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (x, mu, sigma)))
    m = np.clip(mu, _BETA_FLOOR, 1.0 - _BETA_FLOOR)
    var = np.where(sigma > 0, sigma**2, 1.0)
    t = np.maximum(m * (1.0 - m) / var - 1.0, _BETA_FLOOR)
    f = stats.beta.cdf(x, np.maximum(m * t, _BETA_FLOOR), np.maximum((1.0 - m) * t, _BETA_FLOOR))
    return _point_mass(x, mu, sigma, f)


def ecdf_level_cdf(x: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """Table 5's "ECDF" level distribution: the empirical CDF of the K interpolated responses
    m_k(x) of each sample, F(x) = (1/K) Σ_k 1[m_k(x) <= x] (the reference's ``type='ecdf'``; per
    sample, the value of ``scipy.stats.ecdf(m_·(x)).cdf`` at x). ``x`` [N], ``responses`` [K, N]."""
    r = np.asarray(responses, dtype=np.float64)
    return np.mean(r <= np.asarray(x, dtype=np.float64)[None], axis=0)


def kde_level_cdf(x: np.ndarray, responses: np.ndarray, bandwidth: np.ndarray | float) -> np.ndarray:
    """Table 5's "KDE" level distribution: the CDF of a Gaussian-kernel density over the K responses
    m_k(x) of each sample with bandwidth h (the level's σ, as the reference's ``type='kde'``),

        F(x) = (1/K) Σ_k Φ((x − m_k(x)) / h)     (Φ: ``scipy.stats.norm.cdf``);

    h = 0 gives the empirical CDF (:func:`ecdf_level_cdf`), its limit. ``x`` [N], ``responses``
    [K, N], ``bandwidth`` scalar or [N]."""
    r = np.asarray(responses, dtype=np.float64)
    xx = np.asarray(x, dtype=np.float64)[None]
    h = np.broadcast_to(np.asarray(bandwidth, dtype=np.float64), xx.shape)
    f = stats.norm.cdf((xx - r) / np.where(h > 0, h, 1.0)).mean(axis=0)
    return np.where(h[0] > 0, f, ecdf_level_cdf(xx[0], r))


#: scorings fitted per level from (μ_j, σ_j) alone; "ecdf" and "kde" read the K responses themselves
_PARAMETRIC: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "gumbel": gumbel_level_cdf, "gaussian": gaussian_level_cdf, "beta": beta_level_cdf}


def iam_score(
    s_unlearned: np.ndarray,
    s_shadows: np.ndarray,
    anchor: np.ndarray | float,
    *,
    n_levels: int = 100,
    weighting: Weighting = "reference",
    pooled_variance: bool = True,
    scoring: Scoring = "gumbel",
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
    scoring : one of :data:`SCORINGS` (Table 5), on signals already mapped by :func:`scoring_signal`:
        the distribution fitted at each level ("gumbel", default: :func:`gumbel_level_cdf`;
        "gaussian", "beta", "ecdf", "kde"), or a score of the unlearned model's signal alone
        ("probability": S = s_u; "loss": S = exp(−s_u), s_u the loss), which ignores the shadows,
        the anchor, ``n_levels`` and ``weighting``.

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
    check_scoring(scoring)
    if scoring in REFERENCE_FREE:
        direct = probability_score(su) if scoring == "probability" else loss_score(su)
        return IAMResult(direct, 1.0 - direct)
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
        if scoring in _PARAMETRIC:
            level = _PARAMETRIC[scoring](su, mu, sigma)
        else:  # ECDF and KDE read the K interpolated responses of the level, [K, N]
            responses = sk + (f - sk) * alpha
            level = (ecdf_level_cdf(su, responses) if scoring == "ecdf"
                     else kde_level_cdf(su, responses, sigma))
        score += w * level
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
    scoring: Scoring = "gumbel",
) -> IAMResult:
    """IAM-On from true-class confidences: the anchor is the original model, f(x) = s(p_{θ_o}(x)).

    ``p_unlearned`` [N], ``p_shadows`` [K, N], ``p_original`` [N] are p_y of the unlearned model, the
    shadow OUT models and the original model on the queried training samples. ``scoring`` (Table 5)
    picks the signal s (:func:`scoring_signal`) and the level distribution (:func:`iam_score`).
    """
    g = lambda p: scoring_signal(p, check_scoring(scoring), eps1, eps2)  # noqa: E731
    return iam_score(g(p_unlearned), g(p_shadows), g(p_original), n_levels=n_levels,
                     weighting=weighting, pooled_variance=pooled_variance, scoring=scoring)


def iam_offline_anchor(
    shadow_train_conf: Sequence[np.ndarray] | np.ndarray, eps1: float = 1e-2, eps2: float = 1e-5,
    scoring: Scoring = "gumbel",
) -> float:
    """IAM-Off's constant anchor c = (1/K) Σ_k mean_{x' ∈ D_k} s(p_{θ_k}(x')).

    ``shadow_train_conf``: for each shadow k, p_y of shadow k on its own training samples (a list of
    1-D arrays, possibly of different lengths, or a [K, M] array). The mean of per-shadow means, as in
    the reference, not the pooled mean. s is the signal of ``scoring`` (:func:`scoring_signal`; the
    bounded Gumbel map by default, the mean confidence or mean logit for the other scorings, as the
    reference's Table 5 runs build their offline anchors).
    """
    rows = list(shadow_train_conf) if not isinstance(shadow_train_conf, np.ndarray) else (
        [shadow_train_conf] if shadow_train_conf.ndim == 1 else list(shadow_train_conf))
    if not rows or any(np.asarray(r).size == 0 for r in rows):
        raise ValueError("need at least one non-empty array of shadow training confidences")
    return float(np.mean([scoring_signal(np.asarray(r), scoring, eps1, eps2).mean() for r in rows]))


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
    scoring: Scoring = "gumbel",
) -> IAMResult:
    """IAM-Off from true-class confidences: the anchor is the constant :func:`iam_offline_anchor`
    of the shadows' confidences on their own training data; no original model is queried.
    ``scoring`` as in :func:`iam_online`."""
    check_scoring(scoring)
    c = iam_offline_anchor(shadow_train_conf, eps1, eps2, scoring)
    g = lambda p: scoring_signal(p, scoring, eps1, eps2)  # noqa: E731
    return iam_score(g(p_unlearned), g(p_shadows), c, n_levels=n_levels,
                     weighting=weighting, pooled_variance=pooled_variance, scoring=scoring)
