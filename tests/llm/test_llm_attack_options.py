"""The attack choices checked against the reference code: Min-K%'s token count, LiRA-On's shared
variance with one model per side, and IAM-On's reference orientation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from expunge.errors import ExpungeError
from expunge.llm import attacks as A
from expunge.llm.scoring import TokenScores
from expunge.metrics.iam import iam_online
from expunge.metrics.lira import lira_online_with_reference


def _nll_of_logit(phi):
    """ℓ such that log(p / (1 − p)) = φ for p = exp(−ℓ)."""
    return np.log1p(np.exp(-np.asarray(phi, dtype=np.float64)))


def test_mink_counts_tokens_as_the_references_int_of_k_times_length():
    logp = -np.arange(1.0, 101.0)  # L = 100, the lowest are -100, -99, ...
    offsets = np.array([0, 100])
    # 0.29 * 100 = 28.999999999999996: the references keep int(.) = 28 tokens (29 / 100 * 100 likewise)
    assert int(0.29 * 100) == int(29 / 100 * 100) == 28
    assert A.mink_score(logp, offsets, 0.29)[0] == pytest.approx(-np.mean(np.arange(73.0, 101.0)))
    # exact products are unchanged: 0.2 * 100 = 20 tokens
    assert A.mink_score(logp, offsets, 0.2)[0] == pytest.approx(-np.mean(np.arange(81.0, 101.0)))
    # Min-K%++ uses the same count
    z = A.minkpp_score(logp, np.zeros(100), np.ones(100), offsets, k=0.29)
    assert z[0] == pytest.approx(-np.mean(np.arange(73.0, 101.0)))


def test_lira_one_model_per_side_shares_the_pooled_variance():
    # φ_fit = [0, 4] (spread 4 across samples), φ_ref = [0, 2] (spread 1): one shared σ² = (4 + 1) / 2
    # x0: μ_in = μ_out = 0 -> 0;  x1: [(1 − 2)² − (1 − 4)²] / (2 · 2.5) = −1.6
    # (each side's own spread would give log N(1; 4, 4) − log N(1; 2, 1) ≈ −1.318)
    s = A.lira_online_score(_nll_of_logit([2.0, 1.0]), _nll_of_logit([0.0, 4.0]), _nll_of_logit([0.0, 2.0]))
    np.testing.assert_allclose(s, [0.0, -1.6], atol=1e-9)
    # where the IN mean lies below the OUT mean the references show no rise with training: score 0
    s = A.lira_online_score(_nll_of_logit([3.0]), _nll_of_logit([1.0]), _nll_of_logit([2.0]))
    assert s[0] == 0.0


def test_lira_one_model_per_side_ranks_independently_of_the_spread():
    rng = np.random.default_rng(0)
    phi_in, phi_out, phi_t = rng.normal(2, 1, 50), rng.normal(0, 1, 50), rng.normal(1, 1.5, 50)
    base = A.lira_online_score(_nll_of_logit(phi_t), _nll_of_logit(phi_in), _nll_of_logit(phi_out))
    # widen only the OUT side's spread across samples, keeping every per-sample mean difference sign:
    # with a shared variance the scores only rescale, so the ranking stays
    wide_out = phi_out.mean() + 3 * (phi_out - phi_out.mean())
    shift = wide_out - phi_out
    moved = A.lira_online_score(_nll_of_logit(phi_t + shift), _nll_of_logit(phi_in + shift), _nll_of_logit(wide_out))
    np.testing.assert_array_equal(np.argsort(base), np.argsort(moved))
    ratio = moved[base != 0] / base[base != 0]
    np.testing.assert_allclose(ratio, ratio[0])


def test_lira_with_several_models_still_uses_the_vision_function():
    fit = _nll_of_logit([[1.0, 2.0], [1.5, 2.5]])
    refs = _nll_of_logit([[0.0, 0.5], [0.2, 1.0], [-0.3, 0.2]])
    t = _nll_of_logit([1.2, 0.1])
    expected = lira_online_with_reference(A.logit_of_prob(t), A.logit_of_prob(fit), A.logit_of_prob(refs),
                                          global_variance=False, var_floor=1e-4)
    np.testing.assert_allclose(A.lira_online_score(t, fit, refs), expected)


def _fork_iam(nll_u, nll_fit, nll_ref, n_levels, eps1=0.1, eps2=1e-5):
    """The IAM fork's LLM score written out from its formula: q = 1 − exp(−ℓ), g = −log(ε1 − log(ε2 + q))
    (unnormalised), m_j = g_fit + α_j (g_ref − g_fit), σ_j = std over samples (ddof 0), Gumbel CDF at
    g_u with loc m_j − 0.5772 β_j, β_j = √6 σ_j / π, score = 1 − Σ_j α_{j+1} F_j / Σ α_{1..J−1}
    (without the fork's + 1e-9 on σ_j, a documented difference of no effect at these σ)."""
    g = lambda nll: -np.log(eps1 - np.log(eps2 + 1 - np.exp(-np.asarray(nll))))  # noqa: E731
    gu, gf, gr = g(nll_u), g(nll_fit), g(nll_ref)
    alphas = np.linspace(0, 1, n_levels)
    total = np.zeros_like(gu)
    for alpha, w in zip(alphas[:-1], alphas[1:]):
        m = gf + alpha * (gr - gf)
        beta = math.sqrt(6) * m.std() / math.pi
        total += w * np.exp(-np.exp(-(gu - (m - 0.5772 * beta)) / beta))
    return 1 - total / alphas[1:].sum()


def test_iam_reference_orientation_reproduces_the_forks_mapping():
    nll_t = np.array([0.5, 2.0, 1.0, 1.4])
    nll_fit, nll_ref = np.array([0.4, 0.5, 0.6, 0.9]), np.array([2.0, 2.1, 1.5, 2.6])
    for n_levels in (2, 3, 50):
        got = A.iam_online_score(nll_t, nll_fit, nll_ref, n_levels=n_levels, orientation="reference")
        np.testing.assert_allclose(got, _fork_iam(nll_t, nll_fit, nll_ref, n_levels), rtol=1e-9, atol=1e-12)
    # J = 3 by hand at sample 0: levels α = 0 and 1/2, weights (1/2, 1) / (3/2)
    got = A.iam_online_score(nll_t, nll_fit, nll_ref, n_levels=3, orientation="reference")
    g = lambda nll: -np.log(0.1 - np.log(1e-5 + 1 - np.exp(-nll)))  # noqa: E731
    f = []
    for m in (g(nll_fit), (g(nll_fit) + g(nll_ref)) / 2):
        beta = math.sqrt(6) * m.std() / math.pi
        f.append(math.exp(-math.exp(-(g(nll_t[0]) - (m[0] - 0.5772 * beta)) / beta)))
    assert got[0] == pytest.approx(1 - (0.5 * f[0] + 1.0 * f[1]) / 1.5, rel=1e-9)
    # still higher = more member-like, and not the default orientation's numbers
    fitted = A.iam_online_score(nll_fit, nll_fit, nll_ref, n_levels=50, orientation="reference")
    out = A.iam_online_score(nll_ref, nll_fit, nll_ref, n_levels=50, orientation="reference")
    assert np.all(fitted > out)
    default = A.iam_online_score(nll_t, nll_fit, nll_ref, n_levels=50)
    assert not np.allclose(default, A.iam_online_score(nll_t, nll_fit, nll_ref, n_levels=50, orientation="reference"))
    with pytest.raises(ExpungeError, match="'consistent' or 'reference'"):
        A.iam_online_score(nll_t, nll_fit, nll_ref, orientation="fork")


def test_iam_default_orientation_is_unchanged_and_the_option_reaches_the_registry():
    nll_t, nll_fit, nll_ref = np.array([0.5, 2.0, 1.0]), np.array([0.4, 0.5, 0.6]), np.array([2.0, 2.1, 1.5])
    p = lambda a: np.exp(-a)  # noqa: E731
    expected = iam_online(p(nll_t), p(nll_ref[None, :]), p(nll_fit), eps1=0.1, eps2=1e-5, n_levels=1000).membership
    np.testing.assert_allclose(A.iam_online_score(nll_t, nll_fit, nll_ref), expected)

    def scores(nll):
        logp = np.repeat(-np.asarray(nll, dtype=np.float32), 2)
        ones = np.ones_like(logp)
        return TokenScores([str(i) for i in range(len(nll))], np.arange(0, 2 * len(nll) + 1, 2), logp, ones, ones,
                           ones, ones)

    inp = A.AttackInputs(texts=["a", "b", "c"], target=scores(nll_t), fit=[scores(nll_fit)], refs=[scores(nll_ref)])
    assert A.ATTACKS.get("iam_online").defaults["orientation"] == "consistent"
    out = A.run_attacks(inp, ["iam_online"], {"iam_online": {"orientation": "reference", "n_levels": 3}})
    # (token log-probs are stored as float32: compare on the losses the adapter reads)
    expected = _fork_iam(inp.target.nll(), inp.fit[0].nll(), inp.refs[0].nll(), 3)
    np.testing.assert_allclose(out["iam_online"], expected, rtol=1e-9)
