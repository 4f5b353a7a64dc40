"""IAM's scoring functions (``audit.params.iam.scoring``), the ablation of the IAM paper's Table 5.

Each scoring on hand cases (formula, range [0, 1], nondecreasing in the audited model's signal), the
default ("gumbel") against a frozen copy of the implementation before the option existed (bit for
bit), the option's validation, and the IAM metric with every scoring on a small memorising benchmark:
scikit-learn digits, 10% of the training labels flipped and forgotten, a one-hidden-layer MLP trained
full-batch until it fits every flipped label (the setup of ``test_audit_fixes.py``).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from expunge.errors import ConfigError
from expunge.metrics import METRICS, AuditInputs, Outputs
from expunge.metrics import iam
from memorising import fit  # tests/metrics/memorising.py

PHI = lambda t: 0.5 * (1.0 + math.erf(t / math.sqrt(2.0)))  # noqa: E731  standard Normal CDF
G = lambda t: math.exp(-math.exp(-t))  # noqa: E731  standard Gumbel(right) CDF


# ------------------------------------------------------------------------ each function by hand


def test_scorings_are_table_5_with_gumbel_first():
    assert iam.SCORINGS[0] == "gumbel"
    assert set(iam.SCORINGS) == {"gumbel", "probability", "loss", "ecdf", "kde", "beta", "gaussian"}


def test_probability_and_loss_scores_by_hand():
    p = np.array([0.0, 0.25, 0.5, 1.0])
    np.testing.assert_array_equal(iam.probability_score(p), p)
    # exp(−ℓ) of the cross-entropy ℓ = −log p is p again: Table 5's Prob and Loss rows coincide
    loss = np.array([np.inf, math.log(4.0), math.log(2.0), 0.0])
    np.testing.assert_allclose(iam.loss_score(loss), p, rtol=1e-15)
    assert iam.loss_score(np.array([-1e-9]))[0] == 1.0  # a loss rounded just below 0 stays in range
    with pytest.raises(ValueError, match="confidences"):
        iam.probability_score(np.array([1.1]))
    with pytest.raises(ValueError, match="losses"):
        iam.loss_score(np.array([-0.5]))


def test_logit_confidence_by_hand_and_capped_where_p_rounds_to_one():
    phi = iam.logit_confidence(np.array([0.5, 0.75, 0.2]))
    np.testing.assert_allclose(phi, [0.0, math.log(3.0), -math.log(4.0)], atol=1e-15)
    ends = iam.logit_confidence(np.array([0.0, 1.0]))
    assert np.all(np.isfinite(ends)) and ends[0] < -700 and 36 < ends[1] < 37
    grid = np.linspace(0.0, 1.0, 101)
    assert np.all(np.diff(iam.logit_confidence(grid)) > 0)


def test_gumbel_level_cdf_by_hand():
    # at x = μ: (x − loc)/β = 0.5772 whatever σ; one β above: 0.5772 + 1
    sigma = 0.1
    beta = math.sqrt(6) * sigma / math.pi
    f = iam.gumbel_level_cdf(np.array([0.4, 0.4 + beta]), np.array([0.4, 0.4]), np.array([sigma, sigma]))
    np.testing.assert_allclose(f, [G(0.5772), G(1.5772)], rtol=1e-14)
    # σ = 0: the point mass at μ
    np.testing.assert_array_equal(iam.gumbel_level_cdf(np.array([0.3, 0.5]), np.array([0.4, 0.4]), np.zeros(2)),
                                  [0.0, 1.0])


def test_gaussian_level_cdf_by_hand():
    f = iam.gaussian_level_cdf(np.array([2.0, 3.0, 0.0]), np.full(3, 2.0), np.full(3, 1.0))
    np.testing.assert_allclose(f, [0.5, PHI(1.0), PHI(-2.0)], rtol=1e-14)
    np.testing.assert_array_equal(iam.gaussian_level_cdf(np.array([1.0, 3.0]), np.full(2, 2.0), np.zeros(2)),
                                  [0.0, 1.0])


def test_beta_level_cdf_by_hand():
    # mean 1/2, variance 1/12: t = (1/4)/(1/12) − 1 = 2, a = b = 1, the uniform: F(x) = x
    x = np.array([0.0, 0.3, 0.9, 1.0])
    np.testing.assert_allclose(iam.beta_level_cdf(x, np.full(4, 0.5), np.full(4, math.sqrt(1 / 12))), x,
                               atol=1e-12)
    # mean 1/3, variance 1/18: t = (2/9)/(1/18) − 1 = 3, a = 1, b = 2: F(x) = 1 − (1 − x)²
    np.testing.assert_allclose(iam.beta_level_cdf(x, np.full(4, 1 / 3), np.full(4, math.sqrt(1 / 18))),
                               1 - (1 - x) ** 2, atol=1e-12)
    # variance beyond any Beta with that mean (σ² >= m(1 − m)): floored, still a CDF in [0, 1]
    wide = iam.beta_level_cdf(x, np.full(4, 0.5), np.full(4, 0.6))
    assert np.all((wide >= 0) & (wide <= 1)) and np.all(np.diff(wide) >= 0)
    np.testing.assert_array_equal(iam.beta_level_cdf(np.array([0.2, 0.6]), np.full(2, 0.5), np.zeros(2)), [0.0, 1.0])


def test_ecdf_level_cdf_by_hand_and_as_scipy():
    # three responses per sample: sample 0 {.1, .3, .6} at .3 -> 2/3; sample 1 {.5, .2, .9} at .45 -> 1/3
    responses = np.array([[0.1, 0.5], [0.3, 0.2], [0.6, 0.9]])
    x = np.array([0.3, 0.45])
    np.testing.assert_allclose(iam.ecdf_level_cdf(x, responses), [2 / 3, 1 / 3])
    expect = [stats.ecdf(responses[:, j]).cdf.evaluate(x[j]) for j in range(2)]
    np.testing.assert_allclose(iam.ecdf_level_cdf(x, responses), expect)


def test_kde_level_cdf_by_hand_and_as_scipy():
    # one response at 0, bandwidth 1: Φ(x)
    np.testing.assert_allclose(iam.kde_level_cdf(np.array([1.0]), np.array([[0.0]]), 1.0), [PHI(1.0)])
    rng = np.random.default_rng(0)
    responses, x, h = rng.random((6, 3)), np.array([0.2, 0.5, 0.9]), 0.15
    expect = []
    for j in range(3):  # scipy's kernel std is factor · std(ddof=1) of the data: match it to h
        kde = stats.gaussian_kde(responses[:, j], bw_method=h / responses[:, j].std(ddof=1))
        expect.append(kde.integrate_box_1d(-np.inf, x[j]))
    np.testing.assert_allclose(iam.kde_level_cdf(x, responses, h), expect, rtol=1e-9)
    # bandwidth 0: the empirical CDF, its limit
    np.testing.assert_array_equal(iam.kde_level_cdf(x, responses, 0.0), iam.ecdf_level_cdf(x, responses))


# ------------------------------------------------------------- each scoring: range and monotone


def _world(seed: int, k: int = 3, n: int = 40):
    rng = np.random.default_rng(seed)
    p_sh = rng.beta(2, 2, (k, n))
    return p_sh, np.clip(p_sh.mean(0) + 0.3, 0, 1), [rng.beta(8, 2, 30) for _ in range(k)]


@pytest.mark.parametrize("scoring", iam.SCORINGS)
@pytest.mark.parametrize("k", [1, 3])
def test_each_scoring_is_in_unit_range_and_nondecreasing_in_the_audited_confidence(scoring, k):
    p_sh, p_orig, train_conf = _world(k, k)
    grid = np.linspace(0, 1, 41)
    n = p_sh.shape[1]
    on = np.stack([iam.iam_online(np.full(n, g), p_sh, p_orig, scoring=scoring).membership for g in grid])
    off = np.stack([iam.iam_offline(np.full(n, g), p_sh, train_conf, scoring=scoring).membership for g in grid])
    for s in (on, off):
        assert np.all(np.isfinite(s)) and np.all((s >= 0) & (s <= 1))
        assert np.all(np.diff(s, axis=0) >= -1e-12)  # per sample, along the grid of p_u
        assert np.all(s[-1] > s[0])
    res = iam.iam_online(grid[:n], p_sh, p_orig, scoring=scoring)
    np.testing.assert_array_equal(res.unlearning, 1.0 - res.membership)


def test_reference_free_scorings_ignore_the_references():
    p_sh, p_orig, train_conf = _world(5)
    pu = np.linspace(0.05, 0.95, p_sh.shape[1])
    for scoring in ("probability", "loss"):
        on = iam.iam_online(pu, p_sh, p_orig, scoring=scoring).membership
        off = iam.iam_offline(pu, 1 - p_sh, train_conf, scoring=scoring).membership
        np.testing.assert_allclose(on, pu, rtol=1e-15)
        np.testing.assert_array_equal(on, off)


def test_level_distributions_match_their_formulas_on_one_level():
    # J = 2: one level (α = 0, weight 1), the shadows themselves. K = 2, N = 3.
    sk = np.array([[0.2, 0.5, 0.6], [0.4, 0.3, 0.8]])
    su = np.array([0.35, 0.1, 0.7])
    mu, sigma = sk.mean(0), np.full(3, sk.std())  # pooled std over shadows and samples
    expect = {"gumbel": iam.gumbel_level_cdf(su, mu, sigma), "gaussian": stats.norm.cdf(su, mu, sigma),
              "ecdf": (sk <= su).mean(0), "kde": stats.norm.cdf((su - sk) / sigma).mean(0)}
    m, v = mu, sigma**2
    t = m * (1 - m) / v - 1
    expect["beta"] = stats.beta.cdf(su, m * t, (1 - m) * t)
    for scoring, e in expect.items():
        np.testing.assert_allclose(iam.iam_score(su, sk, 0.9, n_levels=2, scoring=scoring).membership, e,
                                   rtol=1e-12, err_msg=scoring)


# ----------------------------------------------------------------- the default, bit for bit


def _iam_score_before(su, sk, f, n_levels=100, weighting="reference", pooled_variance=True):
    """``iam_score`` as it was before the scoring option: the same arithmetic, frozen."""
    su, sk = np.asarray(su, np.float64), np.asarray(sk, np.float64)
    f = np.broadcast_to(np.asarray(f, np.float64), su.shape)
    k = sk.shape[0]
    alphas = np.linspace(0.0, 1.0, n_levels)
    weights = iam._level_weights(alphas, weighting)
    s_bar = sk.mean(axis=0)
    s_c = sk - sk.mean()
    f_c = f - f.mean()
    var_s = float(np.mean(s_c**2))
    var_f = float(np.mean(f_c**2))
    cov_sf = float(np.mean(s_c.mean(axis=0) * f_c))
    sd_k = sk.std(axis=0)
    pooled = pooled_variance or k == 1
    score = np.zeros_like(su)
    for alpha, w in zip(alphas[:-1], weights):
        mu = (1.0 - alpha) * s_bar + alpha * f
        if pooled:
            var = (1.0 - alpha) ** 2 * var_s + alpha**2 * var_f + 2.0 * alpha * (1.0 - alpha) * cov_sf
            sigma = np.full_like(su, np.sqrt(max(var, 0.0)))
        else:
            sigma = (1.0 - alpha) * sd_k
            sigma = np.where(sigma == 0, 1e-10, sigma)
        beta = np.sqrt(6.0) * sigma / np.pi
        loc = mu - 0.5772 * beta
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            cdf = np.exp(-np.exp(-(su - loc) / beta))
        score += w * np.where(beta > 0, cdf, (su >= mu).astype(np.float64))
    return np.clip(score, 0.0, 1.0)


@pytest.mark.parametrize("kw", [{}, {"weighting": "uniform"}, {"weighting": "aligned", "n_levels": 7},
                                {"pooled_variance": False, "n_levels": 20}, {"n_levels": 2}])
def test_default_scoring_is_the_former_output_bit_for_bit(kw):
    rng = np.random.default_rng(11)
    for k, n in ((1, 60), (4, 500)):
        pu, ps, po = rng.random(n) ** 3, rng.random((k, n)), np.clip(rng.random(n) + 0.2, 0, 1)
        g = iam.bounded_gumbel_map
        before = _iam_score_before(g(pu), g(ps), g(po), **kw)
        assert np.array_equal(iam.iam_online(pu, ps, po, **kw).membership, before)
        assert np.array_equal(iam.iam_online(pu, ps, po, scoring="gumbel", **kw).membership, before)
        own = [rng.random(25) for _ in range(k)]
        c = float(np.mean([g(r).mean() for r in own]))
        assert iam.iam_offline_anchor(own) == c
        assert np.array_equal(iam.iam_offline(pu, ps, own, **kw).membership, _iam_score_before(g(pu), g(ps), c, **kw))


# ------------------------------------------------------------------------------- validation


def test_unknown_scoring_is_one_line_listing_the_valid_ones(repo_root):
    from expunge.resolve import load_config

    with pytest.raises(ValueError, match=r"unknown IAM scoring 'gumbal' \(valid: gumbel, probability, loss"):
        iam.iam_online(np.array([0.5]), np.array([[0.5]]), np.array([0.9]), scoring="gumbal")
    inputs = _random_inputs(np.random.default_rng(0))
    with pytest.raises(ConfigError) as err:
        METRICS.get("iam")(inputs, scoring="KDE")
    assert "\n" not in str(err.value) and all(s in str(err.value) for s in iam.SCORINGS)
    base = ["audit.metrics=[accuracy,iam]", "audit.shadows=1"]
    cfg = load_config(repo_root / "configs/experiments/digits.yaml", [*base, "audit.params={iam: {scoring: kde}}"])
    assert cfg.audit.params["iam"]["scoring"] == "kde"
    with pytest.raises(ConfigError, match="audit.params.iam.scorin: unknown parameter"):
        load_config(repo_root / "configs/experiments/digits.yaml", [*base, "audit.params={iam: {scorin: kde}}"])


def _random_inputs(rng: np.random.Generator) -> AuditInputs:
    def model():
        return {s: Outputs(rng.normal(size=(n, 4)), rng.integers(0, 4, n), np.arange(n))
                for s, n in (("retain", 30), ("forget", 10), ("test", 20), ("population", 25), ("shadow_pool", 15))}

    return AuditInputs(model(), model(), [model(), model()], None, [np.arange(8), np.arange(5, 15)])


# ------------------------------------------------------------- the metric on a memorising bench

N_TRAIN, N_FLIP, N_POOL, K_SHADOWS = 600, 60, 500, 2


@pytest.fixture(scope="module")
def bench() -> dict[str, AuditInputs]:
    """AuditInputs of the original and of the retrained model (forget set: the flipped samples)."""
    from sklearn.datasets import load_digits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():
            d = load_digits()
            x, y = d.data / 16.0, d.target
            rng = np.random.default_rng(0)
            perm = rng.permutation(len(x))
            tr, pool, test = perm[:N_TRAIN], perm[N_TRAIN:N_TRAIN + N_POOL], perm[N_TRAIN + N_POOL:]
            ytr = y[tr].copy()
            flipped = np.zeros(N_TRAIN, bool)
            flipped[rng.choice(N_TRAIN, N_FLIP, replace=False)] = True
            ytr[flipped] = (ytr[flipped] + rng.integers(1, 10, N_FLIP)) % 10
            sets = {"retain": (x[tr][~flipped], ytr[~flipped], tr[~flipped]),
                    "forget": (x[tr][flipped], ytr[flipped], tr[flipped]),
                    "test": (x[test], y[test], test), "population": (x[test], y[test], test),
                    "shadow_pool": (x[pool], y[pool], pool)}

            def outputs(m: torch.nn.Module) -> dict[str, Outputs]:
                with torch.no_grad():
                    return {s: Outputs(m(torch.tensor(a, dtype=torch.float32)).double().numpy(), b, ids)
                            for s, (a, b, ids) in sets.items()}

            members = [rng.choice(pool, 250, replace=False) for _ in range(K_SHADOWS)]
            shadows = [outputs(fit(x[m], y[m], 100 + j)) for j, m in enumerate(members)]
            original = outputs(fit(x[tr], ytr, 0))
            retrain = outputs(fit(x[tr][~flipped], ytr[~flipped], 0))
    finally:
        torch.set_num_threads(threads)
    return {name: AuditInputs(target, original, shadows, None, members)
            for name, target in (("original", original), ("retrain", retrain))}


@pytest.mark.parametrize("scoring", iam.SCORINGS)
def test_iam_metric_with_each_scoring_on_the_bench(bench, scoring):
    res = {name: METRICS.get("iam")(inputs, scoring=scoring, n_levels=20) for name, inputs in bench.items()}
    for r in res.values():
        scores = np.concatenate([r.per_sample["iam_retain"], r.per_sample["iam_forget"]])
        assert np.all((scores >= 0) & (scores <= 1))
        s = r.summary
        assert s["iam_retained_mean"] == pytest.approx(r.per_sample["iam_retain"].mean())
        assert s["iam_forgotten_mean"] == pytest.approx(1.0 - s["iam_unlearning_score_mean"])
    # retraining without the flipped labels drops their scores far below the original's, which fitted
    # them; every scoring sees it (the flipped label is the true class of the query)
    assert res["retrain"].summary["iam_forgotten_mean"] < res["original"].summary["iam_forgotten_mean"] - 0.3
    assert res["retrain"].summary["iam_binui_auc"] > 0.9


def test_iam_metric_default_scoring_is_unchanged_on_the_bench(bench):
    from expunge.metrics.signals import true_class_prob

    inputs = bench["retrain"]
    default, gumbel = METRICS.get("iam")(inputs), METRICS.get("iam")(inputs, scoring="gumbel")
    for key, v in default.per_sample.items():
        assert np.array_equal(v, gumbel.per_sample[key]), key
    assert default.summary == gumbel.summary
    # the online scores are the former IAM-On of the same confidences, bit for bit
    sets = ("retain", "forget", "test", "forget_heldout")
    p = lambda m: np.concatenate([true_class_prob(m[s].logits, m[s].labels) for s in sets])  # noqa: E731
    g = iam.bounded_gumbel_map
    before = _iam_score_before(g(p(inputs.target)), g(np.stack([p(s) for s in inputs.shadows])),
                               g(p(inputs.original)))
    n_r, n_f = len(inputs.target["retain"].labels), len(inputs.target["forget"].labels)
    assert np.array_equal(default.per_sample["iam_retain"], before[:n_r])
    assert np.array_equal(default.per_sample["iam_forget"], before[n_r:n_r + n_f])
