"""Membership (and unlearning) inference attacks on causal language models.

Every attack has two layers:

* a **pure function on arrays** (``*_score``) with the formula below, easy to check by hand;
* a registered **adapter** in :data:`ATTACKS` that pulls the arrays it needs out of
  :class:`AttackInputs` (cached per-token log-probabilities of the target, fit / IN and reference /
  OUT models, on the queries and on the population set).

Every score is oriented **higher = more member-like** (for an unlearning audit: more *retained*).
ℓ(x) is the per-sample mean token negative log-likelihood, p(x) = exp(−ℓ(x)) the geometric-mean token
probability; "the reference code" is ``computationalprivacy/mia_llms_benchmark`` and its IAM fork
(``Happy2Git/Unlearning_Inference_IAM/mia_llms_benchmark``).

========================  ======================================================  =========================
attack (registry name)    score                                                   source
========================  ======================================================  =========================
loss                      −ℓ_target                                               Yeom et al. 2018
zlib                      −ℓ_target / (|zlib(x)| / |x|)   (bytes / bytes)         Carlini et al. 2021
lowercase                 −ℓ_target(x) / ℓ_target(lower(x))                       Carlini et al. 2021
mink                      mean of the n_k lowest log p(x_t | x_<t)                Shi et al. 2024 (Min-K%)
minkpp                    mean of the n_k lowest (log p(x_t) − μ_t) / σ_t,        Zhang et al. 2024
                          μ_t, σ_t² probability-weighted moments of log p(·)      (Min-K%++)
minkpp_unweighted         as minkpp with the unweighted mean / std over the       reference code's variant
                          vocabulary
ratio                     −ℓ_target / mean_k ℓ_ref_k                              Carlini et al. 2021
lira_online               log N(φ_t; μ_in, σ²_in) − log N(φ_t; μ_out, σ²_out),    Carlini et al. 2022 (LiRA)
                          φ = log(p / (1 − p))
rmia_online               (1/Z) Σ_z 1[(p_t(x)/P(x)) / (p_t(z)/P(z)) > γ],         Zarifzadeh et al. 2024
                          P = mean over fit and reference models                  (RMIA)
iam_online                IAM-On membership S(x) on the bounded Gumbel map of p   Wang et al. 2025 (IAM)
========================  ======================================================  =========================

Min-K% / Min-K%++ token count: k (``k``, a fraction, default 0.2) selects n_k = max(1, int(k·L)) of a
sample's L scored tokens, int(k·L) truncating the float64 product as the references do
(``mia_llms_benchmark`` takes ``int(k / 100 * length)`` with k in percent, and 29 / 100 is the same
double as 0.29; the Min-K% paper's code takes ``int(len * ratio)``). So k = 0.29, L = 100 keeps 28
tokens (0.29 · 100 = 28.999999999999996 in floating point), as there. One difference remains: where
int(k·L) = 0 the ``mia_llms_benchmark`` code averages an empty slice (nan) while here one token is kept
(OpenUnlearning's Min-K% does the same, ``max(1, int(len · k))``). L is the number of scored tokens;
the reference's L in a right-padded batch also counts one padding target for every sequence shorter
than the batch's longest (see :mod:`expunge.llm.scoring`), which this does not reproduce.

Two more choices differ from the IAM fork (:func:`lira_online_score` and :func:`iam_online_score`
say more): LiRA-On with one model per side shares one pooled variance between IN and OUT, as the
vision LiRA's fixed variance does (the fork's σ = 1e-30 is not offered); IAM-On maps p = exp(−ℓ) and
interpolates OUT → fit by default (``orientation="consistent"``), and ``orientation="reference"``
gives the fork's mapping q = 1 − exp(−ℓ) interpolated fit → OUT, the setting of the IAM paper's
Table 6.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from expunge.errors import ExpungeError
from expunge.llm.scoring import TokenScores
from expunge.metrics.iam import bounded_gumbel_map, iam_online, iam_score
from expunge.metrics.lira import lira_online_with_reference
from expunge.metrics.rmia import rmia_online
from expunge.registry import Registry

ATTACKS: Registry = Registry("LLM attack")
#: the inputs an attack may need besides the target's scores on the queries
NEEDS = ("lower", "fit", "reference", "population")


# --- pure functions --------------------------------------------------------------------------
def zlib_entropy(texts: Sequence[str]) -> np.ndarray:
    """|zlib(x)| / |x| in bytes. (The reference divides by ``len(text)`` in characters; the two agree
    on ASCII text.)"""
    out = np.empty(len(texts))
    for i, t in enumerate(texts):
        b = t.encode("utf-8")
        out[i] = len(zlib.compress(b)) / max(len(b), 1)
    return out


def loss_score(nll: np.ndarray) -> np.ndarray:
    """−ℓ (Yeom et al., "Privacy Risk in Machine Learning", CSF 2018)."""
    return -np.asarray(nll, dtype=np.float64)


def zlib_score(nll: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """−ℓ / zlib entropy (Carlini et al., "Extracting Training Data from Large Language Models", 2021)."""
    return -np.asarray(nll, dtype=np.float64) / zlib_entropy(texts)


def lowercase_score(nll: np.ndarray, nll_lower: np.ndarray) -> np.ndarray:
    """−ℓ(x) / ℓ(lower(x)) (Carlini et al. 2021): a member's exact casing is likelier than its
    lowercased copy."""
    return -np.asarray(nll, dtype=np.float64) / np.asarray(nll_lower, dtype=np.float64)


def ratio_score(nll: np.ndarray, nll_refs: np.ndarray) -> np.ndarray:
    """−ℓ_target / mean_k ℓ_ref_k (reference-model calibration; ``nll_refs`` [K, N])."""
    refs = np.atleast_2d(np.asarray(nll_refs, dtype=np.float64))
    return -np.asarray(nll, dtype=np.float64) / refs.mean(axis=0)


def _lowest_k_mean(values: np.ndarray, offsets: np.ndarray, k: float) -> np.ndarray:
    """Per segment [offsets[i], offsets[i+1]): mean of the max(1, int(k·L)) smallest values (the
    references' count, module docstring)."""
    if not 0.0 < k <= 1.0:
        raise ExpungeError(f"k must be a fraction in (0, 1], got {k}")
    v = np.asarray(values, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    if np.any(lengths < 1):
        raise ExpungeError("every sample needs at least one scored token")
    seg = np.repeat(np.arange(len(lengths)), lengths)
    order = np.lexsort((v, seg))  # by segment, then value
    rank = np.arange(v.size) - offsets[seg[order]]
    # int(k·L) of the float64 product, as the references compute it (no rounding tolerance: with one,
    # k = 0.29 and L = 100 would keep 29 tokens where they keep 28)
    n_keep = np.maximum(1, (k * lengths.astype(np.float64)).astype(np.int64))
    keep = rank < n_keep[seg[order]]
    sums = np.bincount(seg[order][keep], weights=v[order][keep], minlength=len(lengths))
    return sums / n_keep


def mink_score(logp: np.ndarray, offsets: np.ndarray, k: float = 0.2) -> np.ndarray:
    """Min-K% Prob: mean of the n_k = max(1, int(k·L)) lowest token log-probabilities (Shi et al.,
    "Detecting Pretraining Data from Large Language Models", ICLR 2024; the count as in the
    references, module docstring)."""
    return _lowest_k_mean(logp, offsets, k)


def minkpp_score(logp: np.ndarray, mu: np.ndarray, var: np.ndarray, offsets: np.ndarray, k: float = 0.2,
                 eps: float = 1e-12) -> np.ndarray:
    """Min-K%++: z_t = (log p(x_t|x_<t) − μ_t) / σ_t, mean of the max(1, int(k·L)) lowest z_t (Zhang et al.,
    "Min-K%++: Improved Baseline for Detecting Pre-Training Data from LLMs", ICLR 2025).

    The paper's μ_t = E_{v∼p(·|x_<t)} log p(v|x_<t) and σ_t² = Var_{v∼p} log p(v|x_<t) are
    **probability-weighted** (pass :class:`~expunge.llm.scoring.TokenScores` ``mu``/``var``). The
    ``mia_llms_benchmark`` implementation uses the *unweighted* mean and std of the log-softmax over the
    vocabulary instead (``mu_u``/``var_u``, registered as ``minkpp_unweighted``). σ is floored at
    ``sqrt(eps)`` (a one-hot prediction has σ = 0).
    """
    z = (np.asarray(logp, np.float64) - np.asarray(mu, np.float64)) / np.sqrt(np.maximum(np.asarray(var, np.float64), eps))
    return _lowest_k_mean(z, offsets, k)


def logit_of_prob(nll: np.ndarray, floor: float = 1e-12) -> np.ndarray:
    """φ = log(p / (1 − p)) with p = exp(−ℓ), computed stably as −ℓ − log(−expm1(−ℓ)); ℓ is floored at
    ``floor`` so a perfectly predicted sample stays finite."""
    x = np.maximum(np.asarray(nll, dtype=np.float64), floor)
    return -x - np.log(-np.expm1(-x))


def lira_online_score(nll_target: np.ndarray, nll_fit: np.ndarray, nll_refs: np.ndarray,
                      var_floor: float = 1e-4, global_variance: bool = False) -> np.ndarray:
    """LiRA-On: Gaussians of φ over the IN (fit, [R, N]) and OUT (reference, [K, N]) models,
    score = log N(φ_t; μ_in, σ²_in) − log N(φ_t; μ_out, σ²_out), higher = more member.

    **One model per side** (R = K = 1, the IAM paper's LLM setting): neither side has a spread across
    models, so both share one variance, the pooled spread across samples

        σ² = ½ (Var_x φ_fit(x) + Var_x φ_ref(x))   (ddof 0, floored at ``var_floor``),

    and score = [(φ_t − μ_out)² − (φ_t − μ_in)²] / (2σ²) where μ_in ≥ μ_out, 0 where μ_in < μ_out
    (the monotone rule of :mod:`expunge.metrics.lira`, which for equal variances only sets that
    case). This is the rule of the vision LiRA's fixed-variance switch (``global_variance``: with
    fewer than 64 models one variance for all samples), with IN and OUT sharing it as the LiRA code's
    fixed variance does (``std_in = std_out = np.std(dat_in)``, the spread of all IN signals across
    samples and models). With a shared variance the score is affine in φ_t with a per-sample slope
    (μ_in − μ_out)/σ², so σ² only sets the scale: pooling both sides or taking the IN side's as the
    LiRA code does ranks identically. Each side's own spread across samples instead (the two can
    differ several-fold) would make the ranking depend on how varied the dataset is. (The IAM fork
    uses σ = 1e-30 with one model per side, which turns the test into "closer to IN than to OUT" and
    makes the score's scale meaningless.)

    **More models on a side**: :func:`expunge.metrics.lira.lira_online_with_reference`, per-sample
    variances over each side's models (``global_variance=False``, default) or one pooled variance per
    side (``True``); a side with one model borrows the other side's pooled variance.
    """
    fit = np.atleast_2d(np.asarray(nll_fit, dtype=np.float64))
    refs = np.atleast_2d(np.asarray(nll_refs, dtype=np.float64))
    phi_t, phi_in, phi_out = logit_of_prob(nll_target), logit_of_prob(fit), logit_of_prob(refs)
    if fit.shape[0] == 1 and refs.shape[0] == 1:
        var = max(0.5 * (float(phi_in.var()) + float(phi_out.var())), var_floor)
        mu_in, mu_out = phi_in[0], phi_out[0]
        lam = ((phi_t - mu_out) ** 2 - (phi_t - mu_in) ** 2) / (2.0 * var)
        return np.where(mu_in < mu_out, 0.0, lam)
    return lira_online_with_reference(phi_t, phi_in, phi_out, global_variance=global_variance, var_floor=var_floor)


def rmia_online_score(nll_target: np.ndarray, nll_fit: np.ndarray, nll_refs: np.ndarray,
                      pop_target: np.ndarray, pop_fit: np.ndarray, pop_refs: np.ndarray,
                      gamma: float = 2.0) -> np.ndarray:
    """RMIA-On on p = exp(−ℓ): Score(x) = fraction of population z with
    (p_t(x)/P(x)) / (p_t(z)/P(z)) > γ, P = trimmed mean over the fit and reference models
    (:func:`expunge.metrics.rmia.rmia_online`, sorted scoring, no N×Z matrix).

    The population's P(z) also averages the fit and reference models, as the IAM fork does; no model
    trained on the population, so P(z) is an all-OUT estimate (RMIA's pairwise test only needs
    P(z) to be on the same footing for every z). IN and OUT sides are balanced (tiled to equal rows).
    """
    f = lambda a: np.exp(-np.atleast_2d(np.asarray(a, dtype=np.float64)))  # noqa: E731
    return rmia_online(np.exp(-np.asarray(nll_target, np.float64)), f(nll_fit), f(nll_refs),
                       np.exp(-np.asarray(pop_target, np.float64)), f(pop_fit), f(pop_refs), gamma=gamma)


def iam_online_score(nll_target: np.ndarray, nll_fit: np.ndarray, nll_refs: np.ndarray, *, eps1: float = 0.1,
                     eps2: float = 1e-5, n_levels: int = 1000, weighting: str = "reference",
                     orientation: str = "consistent") -> np.ndarray:
    """IAM-On membership score S(x) ∈ [0, 1] (1 = as fitted as the fit model, 0 = like the OUT models).

    ``orientation="consistent"`` (default): the signal is the bounded Gumbel map s(p) = −log(ε1 −
    log(ε2 + p)) (normalised) of p = exp(−ℓ), which **rises with the sequence's likelihood**, like the
    computer-vision IAM's confidence. The interpolation runs from the OUT (reference) signals (α = 0)
    to the fit anchor (α = 1) over J = ``n_levels`` levels, with one pooled σ per level and level
    weights α_{j+1} (the reference's alignment), all through :func:`expunge.metrics.iam.iam_online`.
    With several fit models the anchor is their mean mapped signal.

    ``orientation="reference"``: the IAM fork's LLM code (``iam_llm_score.py::ip_ppl``), which the
    IAM paper's LLM numbers (Table 6) come from. It maps q = 1 − exp(−ℓ), which rises with the
    *loss*, interpolates m_j = g_fit + α_j (g_ref − g_fit) from fit (α = 0) to OUT (α = 1), keeps the
    α_{j+1} weights, so they emphasise the OUT end (the opposite of its computer-vision code), and
    returns 1 − Σ_j w_j F_j(x) (still higher = more member). Computed by
    :func:`expunge.metrics.iam.iam_score` on g(q) with the fit signal as the α = 0 end and the OUT
    signal as the α = 1 end (several models on a side enter as their mean mapped signal; the fork has
    one per side). Differences left: the fork adds 1e-9 to every σ_j (a zero σ is a point mass
    here), and uses the unnormalised map (S does not change under the normalisation, an increasing
    affine map).

    σ pooling (both orientations): each level's σ_j is pooled over **all** queries. The fork computes
    the score inside a ``datasets.map(batched=True)`` with ``batch_size: 64`` in its released and
    logged configurations, so its σ_j is pooled over each batch of 64 queries (the last batch
    smaller), and a sample's score depends on which 63 others share its batch; over all queries the
    score of a sample depends on the dataset only through the σ_j.

    Defaults ε1 = 0.1, ε2 = 1e-5, J = 1000 follow the LLM code.
    """
    fit = np.atleast_2d(np.asarray(nll_fit, dtype=np.float64))
    refs = np.atleast_2d(np.asarray(nll_refs, dtype=np.float64))
    if orientation == "reference":
        q = lambda a: -np.expm1(-np.asarray(a, dtype=np.float64))  # noqa: E731  (1 − exp(−ℓ))
        g = lambda a: bounded_gumbel_map(q(a), eps1, eps2)  # noqa: E731
        s = iam_score(g(nll_target), g(fit).mean(axis=0)[None, :], g(refs).mean(axis=0), n_levels=n_levels,
                      weighting=weighting).membership
        return 1.0 - s
    if orientation != "consistent":
        raise ExpungeError(f"IAM-On orientation must be 'consistent' or 'reference', got {orientation!r}")
    p = lambda a: np.exp(-np.asarray(a, dtype=np.float64))  # noqa: E731
    if fit.shape[0] == 1:
        return iam_online(p(nll_target), p(refs), p(fit[0]), eps1=eps1, eps2=eps2,
                          n_levels=n_levels, weighting=weighting).membership
    g = lambda a: bounded_gumbel_map(p(a), eps1, eps2)  # noqa: E731
    return iam_score(g(nll_target), g(refs), g(fit).mean(axis=0), n_levels=n_levels,
                     weighting=weighting).membership


# --- inputs and registry ---------------------------------------------------------------------
@dataclass
class AttackInputs:
    """Cached scores the attacks read. ``fit`` are IN models (trained on every query, e.g. the
    original model), ``refs`` OUT models (never saw the queries); ``pop_*`` the same models on the
    population set (RMIA)."""

    texts: Sequence[str]
    target: TokenScores
    target_lower: TokenScores | None = None
    fit: list[TokenScores] = field(default_factory=list)
    refs: list[TokenScores] = field(default_factory=list)
    pop_target: TokenScores | None = None
    pop_fit: list[TokenScores] = field(default_factory=list)
    pop_refs: list[TokenScores] = field(default_factory=list)

    def available(self) -> set[str]:
        have = set()
        if self.target_lower is not None:
            have.add("lower")
        if self.fit:
            have.add("fit")
        if self.refs:
            have.add("reference")
        if self.pop_target is not None and len(self.pop_fit) == len(self.fit) and len(self.pop_refs) == len(self.refs):
            have.add("population")
        return have


def _nll(many: list[TokenScores]) -> np.ndarray:
    return np.stack([s.nll() for s in many])


def register_attack(name: str, needs: Sequence[str] = (), **defaults: Any) -> Callable:
    """Register an adapter ``fn(inputs: AttackInputs, **params) -> [N] scores`` under ``name``; ``needs``
    lists the optional inputs (:data:`NEEDS`) it reads, ``defaults`` its parameters."""
    return ATTACKS.register_adapter(name, needs, NEEDS, defaults)


@register_attack("loss")
def loss(inp: AttackInputs) -> np.ndarray:
    """LOSS: −ℓ_target (Yeom et al. 2018)."""
    return loss_score(inp.target.nll())


@register_attack("zlib")
def zlib_attack(inp: AttackInputs) -> np.ndarray:
    """zlib: −ℓ_target / zlib entropy of the text (Carlini et al. 2021)."""
    return zlib_score(inp.target.nll(), inp.texts)


@register_attack("lowercase", needs=("lower",))
def lowercase(inp: AttackInputs) -> np.ndarray:
    """Lowercase: −ℓ(x) / ℓ(lower(x)) under the target (Carlini et al. 2021)."""
    return lowercase_score(inp.target.nll(), inp.target_lower.nll())


@register_attack("mink", k=0.2)
def mink(inp: AttackInputs, k: float = 0.2) -> np.ndarray:
    """Min-K% Prob: mean of the lowest k% token log-probs (Shi et al. 2024)."""
    return mink_score(inp.target.logp, inp.target.offsets, k)


@register_attack("minkpp", k=0.2)
def minkpp(inp: AttackInputs, k: float = 0.2) -> np.ndarray:
    """Min-K%++ with the paper's probability-weighted moments (Zhang et al. 2024)."""
    t = inp.target
    return minkpp_score(t.logp, t.mu, t.var, t.offsets, k)


@register_attack("minkpp_unweighted", k=0.2)
def minkpp_unweighted(inp: AttackInputs, k: float = 0.2) -> np.ndarray:
    """Min-K%++ with unweighted vocabulary moments, as mia_llms_benchmark implements it."""
    t = inp.target
    return minkpp_score(t.logp, t.mu_u, t.var_u, t.offsets, k)


@register_attack("ratio", needs=("reference",))
def ratio(inp: AttackInputs) -> np.ndarray:
    """Reference ratio: −ℓ_target / mean ℓ_reference (Carlini et al. 2021)."""
    return ratio_score(inp.target.nll(), _nll(inp.refs))


@register_attack("lira_online", needs=("fit", "reference"), var_floor=1e-4)
def lira_online(inp: AttackInputs, var_floor: float = 1e-4) -> np.ndarray:
    """LiRA-On: IN (fit) vs OUT (reference) Gaussians of the logit-scaled p (Carlini et al. 2022)."""
    return lira_online_score(inp.target.nll(), _nll(inp.fit), _nll(inp.refs), var_floor=var_floor)


@register_attack("rmia_online", needs=("fit", "reference", "population"), gamma=2.0)
def rmia_online_attack(inp: AttackInputs, gamma: float = 2.0) -> np.ndarray:
    """RMIA-On: pairwise likelihood-ratio test against a population set (Zarifzadeh et al. 2024)."""
    return rmia_online_score(inp.target.nll(), _nll(inp.fit), _nll(inp.refs), inp.pop_target.nll(),
                             _nll(inp.pop_fit), _nll(inp.pop_refs), gamma=gamma)


@register_attack("iam_online", needs=("fit", "reference"), n_levels=1000, eps1=0.1, eps2=1e-5,
                 orientation="consistent")
def iam_online_attack(inp: AttackInputs, n_levels: int = 1000, eps1: float = 0.1, eps2: float = 1e-5,
                      orientation: str = "consistent") -> np.ndarray:
    """IAM-On: interpolated fit/OUT Gumbel fits on the bounded Gumbel map (Wang et al. 2025);
    ``orientation="reference"`` reproduces the IAM fork's LLM mapping (its Table 6 setting)."""
    return iam_online_score(inp.target.nll(), _nll(inp.fit), _nll(inp.refs), eps1=eps1, eps2=eps2,
                            n_levels=n_levels, orientation=orientation)


def resolve_attacks(names: Sequence[str] | None, available: set[str], strict: bool) -> tuple[list[str], dict[str, str]]:
    """The attacks to run and, for the skipped ones, why. Unknown names are an error; with ``strict``
    (attacks named explicitly) a missing input is an error too, else the attack is skipped."""
    said = {"lower": "a lowercased pass", "fit": "a fit (IN) model", "reference": "a reference (OUT) model",
            "population": "a population set"}
    return ATTACKS.resolve_adapters(names, available, strict, said.__getitem__)


def run_attacks(inp: AttackInputs, names: Sequence[str], params: dict[str, dict[str, Any]] | None = None) -> dict[str, np.ndarray]:
    """``{name: scores [N]}`` for each named attack (inputs must be available)."""
    params = params or {}
    out = {}
    for n in names:
        fn = ATTACKS.get(n)
        kw = {**fn.defaults, **params.get(n, {})}
        s = np.asarray(fn(inp, **kw), dtype=np.float64)
        if s.shape != (len(inp.texts),):
            raise RuntimeError(f"attack {n} returned shape {s.shape}, expected ({len(inp.texts)},)")
        out[n] = s
    return out
