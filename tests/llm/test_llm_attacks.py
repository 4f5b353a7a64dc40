"""Every LLM attack against answers worked out by hand on tiny arrays, plus orientation and registry."""
from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch

from expunge.errors import ExpungeError
from expunge.llm import attacks as A
from expunge.llm.scoring import TokenScores, token_stats


def _nll_of_logit(phi):
    """ℓ such that log(p / (1 − p)) = φ for p = exp(−ℓ)."""
    return np.log1p(np.exp(-np.asarray(phi, dtype=np.float64)))


def test_loss_zlib_lowercase_ratio_by_hand():
    np.testing.assert_allclose(A.loss_score([1.0, 2.5]), [-1.0, -2.5])
    texts = ["abababababababab", "q"]
    ent = [len(zlib.compress(b"abababababababab")) / 16, len(zlib.compress(b"q")) / 1]
    np.testing.assert_allclose(A.zlib_score([2.0, 3.0], texts), [-2.0 / ent[0], -3.0 / ent[1]])
    np.testing.assert_allclose(A.lowercase_score([2.0, 1.0], [4.0, 0.5]), [-0.5, -2.0])
    # two reference models: mean reference loss (2 + 4) / 2 = 3 for sample 0
    np.testing.assert_allclose(A.ratio_score([1.0, 2.0], [[2.0, 1.0], [4.0, 3.0]]), [-1 / 3, -1.0])


def test_zlib_entropy_counts_bytes():
    # 'é' is two bytes: |zlib(x)| / |x| divides by 2, not by the 1 character
    assert A.zlib_entropy(["é"])[0] == pytest.approx(len(zlib.compress("é".encode())) / 2)


def test_mink_lowest_fraction_with_at_least_one_token():
    logp = np.array([-1.0, -2.0, -3.0, -4.0, -5.0, -0.5, -0.1])
    offsets = np.array([0, 5, 7])
    # k = 0.4: floor(0.4 * 5) = 2 lowest of sample 0 -> (-5 - 4)/2; floor(0.8) = 0 -> 1 token for sample 1
    np.testing.assert_allclose(A.mink_score(logp, offsets, 0.4), [-4.5, -0.5])
    np.testing.assert_allclose(A.mink_score(logp, offsets, 1.0), [-3.0, -0.3])
    with pytest.raises(ExpungeError):
        A.mink_score(logp, offsets, 0.0)


def test_minkpp_standardises_by_the_given_moments():
    logp = np.array([-1.0, -2.0, -3.0])
    mu = np.array([-1.5, -1.5, -1.0])
    var = np.array([0.25, 1.0, 4.0])
    # z = (logp - mu) / sigma = [1, -0.5, -1]
    offsets = np.array([0, 2, 3])
    np.testing.assert_allclose(A.minkpp_score(logp, mu, var, offsets, k=0.5), [-0.5, -1.0])
    np.testing.assert_allclose(A.minkpp_score(logp, mu, var, offsets, k=1.0), [0.25, -1.0])


def test_token_moments_are_probability_weighted_and_unweighted_as_documented():
    # vocabulary of 2 with p = (1/4, 3/4): logits (0, log 3)
    logits = torch.tensor([[0.0, math.log(3.0)]])
    lp, mu, var, mu_u, var_u = (t.item() for t in token_stats(logits, torch.tensor([1])))
    a, b = math.log(0.25), math.log(0.75)
    assert lp == pytest.approx(b, abs=1e-6)
    assert mu == pytest.approx(0.25 * a + 0.75 * b, abs=1e-6)
    assert var == pytest.approx(0.25 * a * a + 0.75 * b * b - (0.25 * a + 0.75 * b) ** 2, abs=1e-6)
    assert mu_u == pytest.approx((a + b) / 2, abs=1e-6)
    assert var_u == pytest.approx(((a - (a + b) / 2) ** 2 + (b - (a + b) / 2) ** 2) / 1, abs=1e-6)  # ddof 1


def test_logit_of_prob():
    np.testing.assert_allclose(A.logit_of_prob([math.log(2.0), -math.log(0.8)]), [0.0, math.log(4.0)], atol=1e-12)
    assert np.isfinite(A.logit_of_prob([0.0])).all()  # a perfect prediction stays finite


def test_lira_online_one_model_per_side_by_hand():
    # φ_fit = [2, 4], φ_ref = [0, 2]: one model per side, so each side's variance is its spread across
    # samples, 1 on both sides. Target φ = [2, 0]:
    #   x0: log N(2; 2, 1) - log N(2; 0, 1) = 0 - (-2) = 2
    #   x1: log N(0; 4, 1) - log N(0; 2, 1) = -8 - (-2) = -6
    s = A.lira_online_score(_nll_of_logit([2.0, 0.0]), _nll_of_logit([2.0, 4.0]), _nll_of_logit([0.0, 2.0]))
    np.testing.assert_allclose(s, [2.0, -6.0], atol=1e-9)


def test_rmia_online_by_hand():
    # p_target(x) = [0.8, 0.2]; P(x) = mean(fit, ref) = mean([0.8, 0.4], [0.2, 0.4]) = [0.5, 0.4]
    # ratio(x) = [1.6, 0.5]. Population: p_t(z) = 0.3 each, P(z) = [0.3, 0.3, 0.6] -> ratio(z) = [1, 1, 0.5]
    # gamma = 2: x0 beats only z2 (1.6 / 0.5 = 3.2); x1 beats none -> [1/3, 0]
    nl = lambda p: -np.log(np.asarray(p, dtype=np.float64))  # noqa: E731
    s = A.rmia_online_score(nl([0.8, 0.2]), nl([0.8, 0.4]), nl([0.2, 0.4]), nl([0.3, 0.3, 0.3]),
                            nl([0.3, 0.3, 0.6]), nl([0.3, 0.3, 0.6]), gamma=2.0)
    np.testing.assert_allclose(s, [1 / 3, 0.0])


def test_iam_online_two_levels_by_hand():
    # J = 2: a single level at alpha = 0 (the OUT signal), weight 1. K = 1 reference: the std is pooled
    # over samples. S(x) = GumbelCDF(s_u(x); loc = s_ref(x) - 0.5772 beta, beta = sqrt(6) sigma / pi).
    eps1, eps2 = 0.1, 1e-5
    nll_t, nll_fit, nll_ref = np.array([0.5, 2.0, 1.0]), np.array([0.4, 0.5, 0.6]), np.array([2.0, 2.1, 1.5])

    def s(nll):
        g = lambda p: -np.log(eps1 - np.log(eps2 + p))  # noqa: E731
        return (g(np.exp(-nll)) - g(0.0)) / (g(1.0) - g(0.0))

    su, sr = s(nll_t), s(nll_ref)
    beta = math.sqrt(6) * sr.std() / math.pi
    expected = np.exp(-np.exp(-(su - (sr - 0.5772 * beta)) / beta))
    got = A.iam_online_score(nll_t, nll_fit, nll_ref, eps1=eps1, eps2=eps2, n_levels=2)
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_iam_orientation_fitted_target_scores_higher():
    # a target that matches the fit model (low loss) is more member-like than one matching the OUT model
    fit, ref = np.array([0.3, 0.3, 0.4, 0.2]), np.array([2.0, 2.2, 1.8, 2.1])
    s_fit = A.iam_online_score(fit, fit, ref, n_levels=50)
    s_out = A.iam_online_score(ref, fit, ref, n_levels=50)
    assert np.all(s_fit > s_out) and np.all((0 <= s_out) & (s_fit <= 1))


def test_every_attack_is_oriented_member_high():
    # two samples; sample 0 is "member-like" for every model-based signal
    def scores(logp0: float, logp1: float) -> TokenScores:
        logp = np.array([logp0, logp0, logp1, logp1], dtype=np.float32)
        return TokenScores(["a", "b"], np.array([0, 2, 4]), logp, np.full(4, -1.0, np.float32),
                           np.ones(4, np.float32), np.full(4, -1.0, np.float32), np.ones(4, np.float32))

    target = scores(-0.5, -2.0)
    inp = A.AttackInputs(texts=["Abc Def", "Ghi Jkl"], target=target, target_lower=scores(-1.0, -2.0),
                         fit=[scores(-0.4, -0.4)], refs=[scores(-2.0, -2.0)], pop_target=scores(-3.0, -3.1),
                         pop_fit=[scores(-2.0, -2.0)], pop_refs=[scores(-2.0, -2.0)])
    out = A.run_attacks(inp, A.ATTACKS.names())
    assert set(out) == set(A.ATTACKS.names())
    for name, s in out.items():
        assert s[0] > s[1], name


def test_registry_resolution():
    run, skipped = A.resolve_attacks(None, {"lower"}, strict=False)
    assert "loss" in run and "lira_online" in skipped and "reference" in skipped["ratio"]
    with pytest.raises(ExpungeError, match="needs a fit"):
        A.resolve_attacks(["iam_online"], {"lower", "reference"}, strict=True)
    with pytest.raises(ExpungeError, match="did you mean"):
        A.resolve_attacks(["minkp"], set(), strict=False)


def test_minkpp_adapters_read_weighted_and_unweighted_moments():
    offsets = np.array([0, 2])
    logp = np.array([-1.0, -2.0], np.float32)
    ts = TokenScores(["a"], offsets, logp, mu=np.array([-1.0, -1.0], np.float32), var=np.array([1.0, 1.0], np.float32),
                     mu_u=np.array([0.0, 0.0], np.float32), var_u=np.array([4.0, 4.0], np.float32))
    inp = A.AttackInputs(texts=["x"], target=ts)
    # weighted: z = [0, -1] -> mean of all (k = 1) = -0.5; unweighted: z = [-0.5, -1] -> -0.75
    assert A.ATTACKS.get("minkpp")(inp, k=1.0)[0] == pytest.approx(-0.5)
    assert A.ATTACKS.get("minkpp_unweighted")(inp, k=1.0)[0] == pytest.approx(-0.75)
