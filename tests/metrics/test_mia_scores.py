"""Membership / unlearning inference scores: hand-computed values on tiny arrays, equivalence with
dense reference forms, and invariants (null AUC ≈ 0.5, bounds, monotonicity, stability)."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import gumbel_r, norm

from expunge.metrics import epsilon as E
from expunge.metrics import iam, lira, rmia, roc, signals

# ----------------------------------------------------------------------------------------- signals


def test_softmax_and_true_class_prob_by_hand():
    # logits [0, log 3]: exp -> [1, 3], sum 4 -> p = [1/4, 3/4]
    z = np.array([[0.0, math.log(3.0)]])
    np.testing.assert_allclose(signals.softmax(z), [[0.25, 0.75]])
    np.testing.assert_allclose(signals.true_class_prob(z, np.array([1])), [0.75])
    assert signals.softmax(z).dtype == np.float64


def test_logit_scaled_confidence_by_hand():
    # p = [1/4, 3/4], y = 1: log(3/4) − log(1/4) = log 3
    # uniform over 3 classes, y = 0: log(1/3) − log(2/3) = −log 2
    z = np.array([[0.0, math.log(3.0), -1e9], [0.0, 0.0, 0.0]])  # row 0: third class has no mass
    out = signals.logit_scaled_confidence(z, np.array([1, 0]))
    np.testing.assert_allclose(out, [math.log(3.0), -math.log(2.0)], rtol=1e-12)


def test_logit_scaled_confidence_matches_reference_form_in_range():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 10)) * 4
    y = rng.integers(0, 10, 50)
    p = signals.softmax(z)
    py = p[np.arange(50), y]
    ref = np.log(py + 1e-45) - np.log(1 - py + 1e-45)  # reference form, fine for moderate logits
    np.testing.assert_allclose(signals.logit_scaled_confidence(z, y), ref, rtol=1e-9, atol=1e-9)


def test_signals_stable_for_extreme_logits():
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0], [1000.0, 1000.0, -1000.0]])
    y = np.array([0, 0, 0])
    phi = signals.logit_scaled_confidence(z, y)
    # row 0: 1000 − log(e^-1000 + e^0) = 1000 − ~0 ; row 1: −1000 − (1000 + ~0) = −2000 ; row 2: 1000 − 1000 = 0
    np.testing.assert_allclose(phi, [1000.0, -2000.0, 0.0], atol=1e-9)
    for f in (signals.true_class_prob, signals.modified_entropy, signals.logit_scaled_confidence):
        assert np.all(np.isfinite(f(z, y)))
    assert np.all(np.isfinite(signals.entropy(z)))
    assert np.all(np.isfinite(signals.softmax(z)))


def test_entropy_and_modified_entropy_by_hand():
    z = np.array([[0.0, math.log(3.0)], [0.0, 0.0]])
    # H([1/4, 3/4]) = −(.25 log .25 + .75 log .75) ; H(uniform 2) = log 2
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    np.testing.assert_allclose(signals.entropy(z), [h, math.log(2.0)])
    # Mentr, y = 1: −(1 − .75) log .75 − .25 log(1 − .25) = −0.5 log 0.75
    # Mentr, y = 0, uniform: −.5 log .5 − .5 log .5 = log 2
    np.testing.assert_allclose(signals.modified_entropy(z, np.array([1, 0])),
                               [-0.5 * math.log(0.75), math.log(2.0)])
    # confident and correct -> 0 ; confident and wrong -> large
    zc = np.array([[50.0, 0.0], [50.0, 0.0]])
    m = signals.modified_entropy(zc, np.array([0, 1]))
    assert m[0] < 1e-18 and m[1] > 49


def test_taylor_soft_margin_by_hand():
    # t(u) = 1 + u + u²/2 + u³/6 (n = 4)
    # logits [0, 0], y = 0, T = 1: t(−0.6) = 1 − .6 + .18 − .036 = .544 ; other t(0) = 1 -> .544 / 1.544
    # logits [2, 0], y = 0, T = 2: u = [1, 0]; t(0.4) = 1 + .4 + .08 + .064/6 ; other 1
    t04 = 1 + 0.4 + 0.08 + 0.064 / 6
    out = signals.taylor_soft_margin(np.array([[0.0, 0.0]]), np.array([0]), m=0.6, n=4, temperature=1.0)
    np.testing.assert_allclose(out, [0.544 / 1.544])
    out = signals.taylor_soft_margin(np.array([[2.0, 0.0]]), np.array([0]), m=0.6, n=4, temperature=2.0)
    np.testing.assert_allclose(out, [t04 / (t04 + 1.0)])


# -------------------------------------------------------------------------------------------- LiRA


def test_lira_offline_by_hand():
    out = np.array([[0.0], [2.0]])  # K = 2 shadows: μ = 1, σ² = 1 (ddof 0)
    # one-sided at φ = 1: z = 0, −log(1 − Φ(0)) = log 2 ; at φ = 3: z = 2, −log(1 − Φ(2))
    np.testing.assert_allclose(lira.lira_offline(np.array([1.0]), out), [math.log(2.0)])
    np.testing.assert_allclose(lira.lira_offline(np.array([3.0]), out), [-math.log(norm.sf(2.0))])
    # two-sided at φ = 1: −log N(1; 1, 1) = ½ log 2π
    np.testing.assert_allclose(lira.lira_offline(np.array([1.0]), out, test="two_sided"),
                               [0.5 * math.log(2 * math.pi)])


def test_lira_online_by_hand_and_masks():
    # IN {4, 6}: μ 5, σ² 1 ; OUT {0, 2}: μ 1, σ² 1
    # φ = 4: log N_in − log N_out = −½·1 − (−½·9) = 4 ; φ = 3: −½·4 + ½·4 = 0
    sig = np.array([[4.0, 4.0], [0.0, 0.0], [6.0, 6.0], [2.0, 2.0]])
    in_mask = np.array([[True, True], [False, False], [True, True], [False, False]])
    np.testing.assert_allclose(lira.lira_online(np.array([4.0, 3.0]), sig, in_mask), [4.0, 0.0], atol=1e-12)
    ref = lira.lira_online_with_reference(np.array([4.0, 3.0]), sig[[0, 2]], sig[[1, 3]])
    np.testing.assert_allclose(ref, [4.0, 0.0], atol=1e-12)
    # a sample with no IN model cannot be scored
    in_mask2 = in_mask.copy()
    in_mask2[:, 1] = False
    assert np.isnan(lira.lira_online(np.array([4.0, 3.0]), sig, in_mask2)[1])


def test_lira_single_reference_uses_pooled_variance():
    # R = 1 IN (original model) per sample: 5 ; OUT per sample: {0, 2} (μ 1, σ² 1) and {2, 4} (μ 3, σ² 1)
    # pooled OUT variance 1 is borrowed for IN.  φ = 3: sample 0: −½·4 − (−½·4) = 0 ; sample 1: −½·4 − 0 = −2
    s = lira.lira_online_with_reference(np.array([3.0, 3.0]), np.array([[5.0, 5.0]]),
                                        np.array([[0.0, 2.0], [2.0, 4.0]]))
    np.testing.assert_allclose(s, [0.0, -2.0], atol=1e-12)


def test_lira_one_shadow_falls_back_to_spread():
    # K = 1: no per-sample spread; variance of the shadow's signals across samples: var{0, 2, 4} = 8/3
    # two-sided at φ = μ + 1: ½ log(2π · 8/3) + 1 / (2 · 8/3) = ½ log(2π · 8/3) + 3/16
    s = lira.lira_offline(np.array([1.0, 3.0, 5.0]), np.array([[0.0, 2.0, 4.0]]), test="two_sided")
    np.testing.assert_allclose(s, [0.5 * math.log(2 * math.pi * 8 / 3) + 3 / 16] * 3)


def test_lira_views_are_averaged_and_global_variance():
    # view 0: shadows {0, 2} μ 1 σ² 1, target 1 -> ½ log 2π ; view 1: shadows {2, 4} μ 3, target 4 -> ½ log 2π + ½
    t = np.array([[1.0, 4.0]])
    sh = np.array([[[0.0, 2.0]], [[2.0, 4.0]]])
    s = lira.lira_offline(t, sh, test="two_sided")
    np.testing.assert_allclose(s, [0.5 * math.log(2 * math.pi) + 0.25])
    # global variance: pooled within-sample variance over samples {0, 2} (σ² 1) and {0, 4} (σ² 4) = 2.5
    g = lira.lira_offline(np.array([1.0, 2.0]), np.array([[0.0, 0.0], [2.0, 4.0]]),
                          global_variance=True, test="two_sided")
    np.testing.assert_allclose(g, [0.5 * math.log(2 * math.pi * 2.5)] * 2)


# -------------------------------------------------------------------------------------------- RMIA


def test_rmia_offline_by_hand():
    # a = 0.5: P = 0.75·mean + 0.25.  x: refs [0.5, 0.75] -> P [0.625, 0.8125]
    # target_x [0.625, 0.1015625] -> ratio_x [1, 0.125]
    # z: refs [0.25, 0.5, 1] -> P [0.4375, 0.625, 1]; target_z [0.21875, 0.625, 0.25] -> ratio_z [0.5, 1, 0.25]
    # γ = 2: x0 counts ratio_z < 1/2 -> {0.25} (0.5 is a tie, not counted) = 1/3 ; x1: ratio_z < 1/16 -> 0
    # γ = 0.5: x0: ratio_z < 2 -> 3/3 ; x1: ratio_z < 0.25 -> 0 (tie)
    args = (np.array([0.625, 0.1015625]), np.array([[0.5, 0.75]]),
            np.array([0.21875, 0.625, 0.25]), np.array([[0.25, 0.5, 1.0]]))
    np.testing.assert_allclose(rmia.rmia_offline(*args, a=0.5, gamma=2.0), [1 / 3, 0.0])
    np.testing.assert_allclose(rmia.rmia_offline(*args, a=0.5, gamma=0.5), [1.0, 0.0])


def test_rmia_online_by_hand_and_balance():
    # R = 1, K = 1: P(x) = mean(0.75, 0.25) = 0.5 ; target 0.5 -> ratio 1
    # P(z) = [0.5, 0.25], target_z [0.25, 0.5] -> ratio_z [0.5, 2]; γ = 1: ratio_z < 1 -> 1/2
    s = rmia.rmia_online(np.array([0.5]), np.array([[0.75]]), np.array([[0.25]]),
                         np.array([0.25, 0.5]), np.array([[0.5, 0.5]]), np.array([[0.5, 0.0]]), gamma=1.0)
    np.testing.assert_allclose(s, [0.5])
    # R = 1, K = 2: balanced refs [0.9, 0.9, 0.1, 0.3] (trim 0.2 cuts int(0.8) = 0) -> P = 0.55, ratio 1
    # -> ratio_z [0.9, 1.1] < 1: 1/2.  Unbalanced P = 1.3/3, ratio 1.27 -> both: 1
    a = (np.array([0.55]), np.array([[0.9]]), np.array([[0.1], [0.3]]),
         np.array([0.9, 1.1]), np.ones((1, 2)), np.ones((2, 2)))
    np.testing.assert_allclose(rmia.rmia_online(*a, gamma=1.0), [0.5])
    np.testing.assert_allclose(rmia.rmia_online(*a, gamma=1.0, balance=False), [1.0])


def rmia_pairwise(ratio_x: np.ndarray, ratio_z: np.ndarray, gamma: float) -> np.ndarray:
    """The dense N×Z form of RMIA's score, mean_z 1[ratio_x / ratio_z > γ] (memory N·Z): the oracle
    the sorted implementation is checked against."""
    rx = np.asarray(ratio_x, dtype=np.float64).ravel()
    rz = np.asarray(ratio_z, dtype=np.float64).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = rx[:, None] / rz[None, :]
    return (lr > gamma).mean(axis=1)


def test_rmia_sorted_equals_pairwise_with_ties():
    rng = np.random.default_rng(1)
    # dyadic ratios (exact arithmetic) with many exact ties LR == γ, both signs and zeros in z
    vals = np.array([0.25, 0.5, 1.0, 2.0, 4.0, -0.5, -1.0, -2.0, 0.75, 1.5, 3.0])
    rx = rng.choice(np.r_[vals, 0.0], 200)
    rz = rng.choice(np.r_[vals, 0.0], 150)
    for gamma in (0.5, 1.0, 2.0, 4.0, 1.5, 3.0, 0.375):
        np.testing.assert_array_equal(rmia.rmia_score_from_ratios(rx, rz, gamma),
                                      rmia_pairwise(rx, rz, gamma))
    # continuous random ratios, random γ
    rx, rz = rng.lognormal(size=300), rng.lognormal(size=400)
    for gamma in rng.uniform(0.2, 5.0, 5):
        np.testing.assert_array_equal(rmia.rmia_score_from_ratios(rx, rz, gamma),
                                      rmia_pairwise(rx, rz, gamma))


def test_rmia_offline_end_to_end_matches_pairwise():
    rng = np.random.default_rng(2)
    k, n, z = 6, 300, 250
    sx, rx_ = rng.uniform(0.05, 1, n), rng.uniform(0.05, 1, (k, n))
    sz, rz_ = rng.uniform(0.05, 1, z), rng.uniform(0.05, 1, (k, z))
    a = 0.33
    px = (1 + a) / 2 * rmia.reference_mean(rx_) + (1 - a) / 2
    pz = (1 + a) / 2 * rmia.reference_mean(rz_) + (1 - a) / 2
    for gamma in (1.0, 2.0, 1.37):
        np.testing.assert_array_equal(rmia.rmia_offline(sx, rx_, sz, rz_, a=a, gamma=gamma),
                                      rmia_pairwise(sx / px, sz / pz, gamma))


# --------------------------------------------------------------------------------------------- IAM


def test_bounded_gumbel_map_constants():
    # r(1) = −log(0.01 − log 1.00001) ≈ 4.606 ; r(0) = −log(0.01 − log 1e-5) ≈ −2.444
    r = iam.bounded_gumbel_map(np.array([0.0, 1.0]), normalize=False)
    np.testing.assert_allclose(r, [-math.log(0.01 - math.log(1e-5)), -math.log(0.01 - math.log(1.00001))])
    assert abs(r[1] - 4.606) < 1e-3 and abs(r[0] + 2.444) < 1e-3
    s = iam.bounded_gumbel_map(np.linspace(0, 1, 11))
    assert s[0] == 0.0 and s[-1] == pytest.approx(1.0) and np.all(np.diff(s) > 0)


G = lambda t: math.exp(-math.exp(-t))  # noqa: E731  Gumbel(right) standard CDF


def test_iam_score_by_hand_no_interpolation():
    # J = 2: only level α = 0 (the shadow itself), weight 1. K = 1, s = [0.2, 0.4]:
    # μ = s, pooled σ = std{0.2, 0.4} = 0.1, β = √6·0.1/π ; at s_u = μ: (s_u − loc)/β = 0.5772
    res = iam.iam_score(np.array([0.2, 0.4]), np.array([[0.2, 0.4]]), 0.9, n_levels=2)
    np.testing.assert_allclose(res.membership, [G(0.5772)] * 2)
    np.testing.assert_allclose(res.unlearning, 1 - res.membership)


def test_iam_score_by_hand_three_levels():
    # J = 3: α = [0, .5, 1]; levels 0 and 1; reference weights α_1/(α_1+α_2) = 1/3, α_2/(...) = 2/3
    # K = 1, s = [0.2, 0.4], anchor f = 0.8 (IAM-Off-like constant)
    # level 0: μ = [0.2, 0.4], σ 0.1 ; level 1: m = 0.5 s + 0.4 = [0.5, 0.6], σ 0.05
    su = np.array([0.5, 0.3])
    b0, b1 = math.sqrt(6) * 0.1 / math.pi, math.sqrt(6) * 0.05 / math.pi
    exp0 = [G((0.5 - 0.2) / b0 + 0.5772), G((0.3 - 0.4) / b0 + 0.5772)]
    exp1 = [G((0.5 - 0.5) / b1 + 0.5772), G((0.3 - 0.6) / b1 + 0.5772)]
    res = iam.iam_score(su, np.array([[0.2, 0.4]]), 0.8, n_levels=3)
    np.testing.assert_allclose(res.membership, [e0 / 3 + 2 * e1 / 3 for e0, e1 in zip(exp0, exp1)])
    uni = iam.iam_score(su, np.array([[0.2, 0.4]]), 0.8, n_levels=3, weighting="uniform")
    np.testing.assert_allclose(uni.membership, [(e0 + e1) / 2 for e0, e1 in zip(exp0, exp1)])
    ali = iam.iam_score(su, np.array([[0.2, 0.4]]), 0.8, n_levels=3, weighting="aligned")
    np.testing.assert_allclose(ali.membership, exp1)  # weights α_0, α_1 = 0, .5 -> level 1 only


def _iam_dense(su, sk, f, n_levels, pooled=True):
    """The reference's J×K×N form (interpolate_appro, type='gumbel'), with scipy's gumbel_r."""
    alphas = np.linspace(0, 1, n_levels)
    m = np.stack([sk + (f - sk) * a for a in alphas], axis=1)  # [K, J, N]
    mean = m.mean(axis=0)[:-1]
    std = np.std(m, axis=(0, 2))[:-1][:, None] if pooled else m.std(axis=0)[:-1]
    beta = np.sqrt(6) * std / np.pi
    cdf = gumbel_r.cdf(su[None], mean - 0.5772 * beta, beta)
    return (alphas[1:, None] * cdf).sum(axis=0) / alphas[1:].sum()


def test_iam_matches_dense_reference():
    rng = np.random.default_rng(3)
    k, n = 5, 200
    sk, f, su = rng.random((k, n)), rng.random(n), rng.random(n)
    for j in (2, 7, 100):
        np.testing.assert_allclose(iam.iam_score(su, sk, f, n_levels=j).membership,
                                   _iam_dense(su, sk, f, j), atol=1e-12)
    np.testing.assert_allclose(iam.iam_score(su, sk, f, n_levels=20, pooled_variance=False).membership,
                               _iam_dense(su, sk, f, 20, pooled=False), atol=1e-12)


def test_iam_bounded_and_monotone_in_unlearned_confidence():
    rng = np.random.default_rng(4)
    k, n = 3, 50
    p_sh = rng.beta(2, 2, (k, n))
    p_orig = np.clip(p_sh.mean(0) + 0.3, 0, 1)
    grid = np.linspace(0, 1, 41)
    on = np.stack([iam.iam_online(np.full(n, g), p_sh, p_orig).membership for g in grid])
    train_conf = [rng.beta(8, 2, 30) for _ in range(k)]  # shadows' confidences on their own training sets
    off = np.stack([iam.iam_offline(np.full(n, g), p_sh, train_conf).membership for g in grid])
    for s in (on, off):
        assert np.all((s >= 0) & (s <= 1))
        assert np.all(np.diff(s, axis=0) >= -1e-12)  # nondecreasing in p_u, per sample
        assert np.all(s[-1] > s[0])


def test_iam_offline_anchor_is_mean_of_shadow_means():
    # s(1) = 1, s(0) = 0 ; shadow A on its training set: [1, 1] (mean 1), shadow B: [0] (mean 0) -> c = 0.5
    # (the pooled mean over the three values would be 2/3)
    assert iam.iam_offline_anchor([np.array([1.0, 1.0]), np.array([0.0])]) == pytest.approx(0.5)


# --------------------------------------------------------------------------------- per-example ε


def _dense_epsilon(pos, neg, delta=1e-5, cap=50.0):
    """The released metric.py logic for one example, in numpy (dense models × rules comparisons)."""
    pos_diff, neg_diff = pos.max() - pos.min(), neg.max() - neg.min()
    largest = pos_diff if pos_diff > neg_diff else neg_diff
    smallest = neg_diff if pos_diff > neg_diff else pos_diff
    if smallest / largest < 0.01:
        return cap
    p, q = (neg, pos) if pos_diff >= neg_diff else (pos, neg)
    lo, hi = p.min() + smallest - 2.0, p.max() + 2.0
    right = np.linspace(lo, hi, int(np.ceil((hi - lo) * 100)))
    left = np.concatenate([np.linspace(r - smallest - 2, r - smallest + 2, 400) for r in right])
    rr = np.repeat(right, 400)
    inside = lambda c: ((left[None] <= c[:, None]) & (c[:, None] <= rr[None])).astype(float)  # noqa: E731
    tpr_d, fpr_d = inside(p).mean(0), inside(q).mean(0)
    allc = np.r_[pos, neg]
    t = np.linspace(allc.min(), allc.max(), int(np.ceil((allc.max() - allc.min()) * 100)))
    tpr_s, fpr_s = (pos[:, None] >= t).mean(0), (neg[:, None] >= t).mean(0)
    tpr, fpr = np.r_[tpr_d, tpr_s], np.r_[fpr_d, fpr_s]
    fnr, tnr = 1 - tpr, 1 - fpr
    eps = np.zeros_like(tpr)
    eps[(fpr + fnr == 0) & (tpr + tnr == 2)] = np.inf
    eps[(eps == 0) & (fpr * fnr == 0)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # log(0), log(<0) and all-nan nanmax, as in the reference
        val = np.clip(np.nanmax([np.log(1 - delta - fpr) - np.log(fnr),
                                 np.log(1 - delta - fnr) - np.log(fpr)], axis=0), 0, None)
    eps = np.where(eps == 0, val, eps)
    eps = eps[~np.isnan(eps)]
    return float(np.clip(np.max(eps), 0, cap))


def test_epsilon_by_hand():
    # retrained [0,1,2,3] (median 1.5), unlearned [1.5,2.5,3.5,4.5] (median 3): unlearned is positive.
    # Best single threshold t ∈ (2, 2.5]: pos ≥ t: {2.5, 3.5, 4.5} -> FNR 1/4 ; neg ≥ t: {3} -> FPR 1/4
    #   ε = log(1 − δ − 1/4) − log(1/4) = log(3 − 4δ). Other thresholds: t ∈ (1, 1.5] or (3, 3.5] have a
    #   zero error rate on one side only (discarded); t ∈ (1.5, 2] or (2.5, 3] give log(2 − 4δ).
    #   Double thresholds (equal ranges -> the retrained group plays "peaky"): an interval holding
    #   {0, 1, 2} also holds 1.5 (FNR = FPR = 1/4, the same log(3 − 4δ)); {1, 2, 3} holds 1.5 and 2.5;
    #   smaller intervals without an unlearned value miss two or more retrained ones (FPR = 0, discarded).
    u = np.array([[1.5], [2.5], [3.5], [4.5]])
    r = np.array([[0.0], [1.0], [2.0], [3.0]])
    eps = E.per_example_epsilon(u, r)
    np.testing.assert_allclose(eps, [math.log((1 - 1e-5 - 0.25) / 0.25)], rtol=1e-12)


def test_epsilon_matches_dense_reference():
    rng = np.random.default_rng(5)
    m, e = 16, 4
    u = rng.normal(0.0, 1.0, (m, e))
    r = rng.normal(0.7, 1.3, (m, e))
    eps = E.per_example_epsilon(u, r)
    for i in range(e):
        pos, neg = (r[:, i], u[:, i]) if np.median(r[:, i]) > np.median(u[:, i]) else (u[:, i], r[:, i])
        assert eps[i] == pytest.approx(_dense_epsilon(pos, neg), abs=1e-12)


def test_epsilon_separated_identical_and_degenerate():
    rng = np.random.default_rng(6)
    m = 20
    sep = E.per_example_epsilon(rng.uniform(5, 6, (m, 3)), rng.uniform(0, 1, (m, 3)))
    np.testing.assert_array_equal(sep, [50.0] * 3)
    same = rng.normal(size=(m, 3))
    np.testing.assert_array_equal(E.per_example_epsilon(same, same.copy()), [0.0] * 3)
    # iid from the same distribution: small (finite-sample noise only)
    iid = E.per_example_epsilon(rng.normal(size=(200, 3)), rng.normal(size=(200, 3)))
    assert np.all(iid < 2.5)
    # one group nearly a point: range ratio 0.001/3 < 0.01 -> cap
    pk = E.per_example_epsilon(np.array([[1.0], [1.0], [1.0], [1.001]]), np.array([[0.0], [1.0], [2.0], [3.0]]))
    np.testing.assert_array_equal(pk, [50.0])
    # both constant: different -> cap, equal -> 0 (the reference divides 0/0 here)
    both = E.per_example_epsilon(np.array([[1.0, 2.0], [1.0, 2.0]]), np.array([[1.0, 5.0], [1.0, 5.0]]))
    np.testing.assert_array_equal(both, [0.0, 50.0])


def test_forget_score_and_challenge_score_by_hand():
    # M = 512: last edge ceil(log 511) = ceil(6.236) = 7 -> 14 buckets of width 0.5
    # ε:      0    0.49  0.5   1.2    6.9      7.0  50
    # points: 1    1     1/2   1/4    2^-13    0    0     -> (2.75 + 2^-13) / 7
    eps = np.array([0.0, 0.49, 0.5, 1.2, 6.9, 7.0, 50.0])
    assert E.forget_score(eps, 512) == pytest.approx((2.75 + 2.0**-13) / 7)
    # F × (RA_u/RA_r) × (TA_u/TA_r) = 0.5 × (0.9/1.0) × (0.6/0.8) = 0.3375 (arrays averaged over models)
    assert E.challenge_score(0.5, [0.9, 0.9], 1.0, 0.6, np.array([0.8, 0.8])) == pytest.approx(0.3375)


# --------------------------------------------------------------------------------------------- ROC


def test_binary_report_by_hand():
    # scores [.9, .8, .7, .6], labels [1, 0, 1, 0]: pos > neg in 3 of 4 pairs -> AUC 0.75
    # ROC points (fpr, tpr): (0,0) (0,.5) (.5,.5) (.5,1) (1,1)
    rep = roc.binary_report(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0]))
    assert rep["auc"] == pytest.approx(0.75)
    assert rep["tpr@fpr=0.1"] == 0.5  # best TPR among points with FPR <= 0.1: (0, .5)
    assert rep["tnr@fnr=0.1"] == 0.5  # points with FNR <= 0.1 (TPR = 1): (.5, 1), (1, 1) -> TNR .5
    assert rep["balanced_accuracy"] == pytest.approx(0.75)  # 1 − (0 + .5)/2
    # ties: scores [1, 1, 0], labels [1, 0, 0]: pos vs neg tie ½, pos > neg 1 -> (½ + 1)/2
    assert roc.auc_score(np.array([1.0, 1.0, 0.0]), np.array([1, 0, 0])) == pytest.approx(0.75)


def test_roc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score, roc_curve

    rng = np.random.default_rng(7)
    s = np.round(rng.normal(size=400), 1)
    y = rng.random(400) < 0.4
    assert roc.auc_score(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, _ = roc.roc_curve_fast(s, y)
    f2, t2, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, f2)
    np.testing.assert_allclose(tpr, t2)


def test_bootstrap_ci_contains_estimate():
    rng = np.random.default_rng(8)
    y = np.r_[np.ones(150, bool), np.zeros(250, bool)]
    s = rng.normal(size=400) + 0.8 * y
    ci = roc.bootstrap_ci(s, y, roc.auc_score, n_boot=200, seed=0)
    assert ci["low"] <= ci["estimate"] <= ci["high"] and ci["high"] - ci["low"] < 0.2
    ci_min = roc.bootstrap_ci(s, y, roc.auc_score, n_boot=50, class_size="min")
    assert ci_min["low"] <= ci_min["estimate"] <= ci_min["high"]
    ci_joint = roc.bootstrap_ci(s, y, roc.auc_score, n_boot=50, class_balanced=False)
    assert ci_joint["low"] <= ci_joint["estimate"] <= ci_joint["high"]
    assert roc.bootstrap_ci(s, y, roc.auc_score, n_boot=50, seed=3) == roc.bootstrap_ci(
        s, y, roc.auc_score, n_boot=50, seed=3)


def test_correlations_by_hand():
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 4.0, 9.0, 16.0])
    # Spearman: same ranks -> 1.  Pearson: Σdxdy = 25, Σdx² = 5, Σdy² = 129 -> 25/√645
    assert roc.spearman(x, y) == pytest.approx(1.0)
    assert roc.pearson(x, y) == pytest.approx(25 / math.sqrt(645))
    assert math.isnan(roc.spearman(x, np.ones(4)))


# -------------------------------------------------------------------------- null and power checks


def _null_world(rng, n=1000, k=4, shift=0.0):
    """Logit-scaled signals: per-sample difficulty d, shadows and target scatter around it; the first
    half ("retained") is shifted by ``shift`` under the target."""
    d = rng.normal(0, 2, 2 * n)
    shadows = d[None] + rng.normal(0, 1, (k, 2 * n))
    target = d + rng.normal(0, 1, 2 * n)
    target[:n] += shift
    labels = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    return target, shadows, labels


def test_identical_in_out_distributions_give_auc_half():
    rng = np.random.default_rng(9)
    target, shadows, labels = _null_world(rng)
    expit = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    pop_t, pop_sh = rng.normal(size=300), rng.normal(size=(4, 300))
    scores = {
        "lira_off": lira.lira_offline(target, shadows),
        "lira_off_global": lira.lira_offline(target, shadows, global_variance=True),
        "rmia_off": rmia.rmia_offline(expit(target), expit(shadows), expit(pop_t), expit(pop_sh)),
        "iam_on": iam.iam_online(expit(target), expit(shadows), expit(shadows.mean(0) + 1)).membership,
    }
    for name, s in scores.items():
        assert abs(roc.auc_score(s, labels) - 0.5) < 0.05, name
    # and with a real membership shift the same scores separate the groups
    target, shadows, labels = _null_world(rng, shift=2.0)
    assert roc.auc_score(lira.lira_offline(target, shadows), labels) > 0.75
    assert roc.auc_score(iam.iam_online(expit(target), expit(shadows), expit(shadows.mean(0) + 2)).membership,
                         labels) > 0.75
