from __future__ import annotations

import numpy as np
import pytest

from expunge.errors import ConfigError
from expunge.metrics.conformal import conformal_quantile, coverage_ratio, cr_class, cr_random, lac_scores
from expunge.metrics.miacr import miacr


def test_cr_random_hand_computed():
    # calibration: p_y = 0.9, 0.8, 0.6 -> scores 0.1, 0.2, 0.4; alpha = 0.5, n = 3:
    # level = ceil(4 * 0.5) / 3 = 2/3
    cal_p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    cal_y = np.array([0, 1, 0])
    q = conformal_quantile(lac_scores(cal_p, cal_y), 0.5)
    # numpy "higher" at position level*(n-1) = 2/3*2 = 1.33 -> next index 2 -> sorted[2] = 0.4
    assert q == pytest.approx(0.4)
    # threshold 1 - 0.4 = 0.6: [0.7, 0.3] -> {0}; [0.5, 0.5] -> {} (empty); covered for y = 0: 1 of 2
    forget = (np.array([[0.7, 0.3], [0.5, 0.5]]), np.array([0, 0]))
    res = cr_random((cal_p, cal_y), {"forget": forget}, 0.5)
    assert res["coverage_forget"] == 0.5 and res["size_forget"] == 0.5 and res["CR_forget"] == 1.0


def test_cr_class_uses_two_quantiles():
    # forget class 1. calibration of remaining classes (class 0): p_0 = 0.9, 0.7 -> scores 0.1, 0.3;
    # alpha 0.5, n=2: level = ceil(3*0.5)/2 = 1 -> q1 = 0.3 (threshold 0.7).
    # forgotten class calibration: p_1 = 0.2, 0.4 -> scores 0.8, 0.6 -> q2 = 0.8 (threshold 0.2).
    cal_p = np.array([[0.9, 0.1], [0.7, 0.3], [0.8, 0.2], [0.6, 0.4]])
    cal_y = np.array([0, 0, 1, 1])
    train_f = (np.array([[0.5, 0.5]]), np.array([1]))     # threshold 0.2: set {0, 1}, covered, size 2
    test_f = (np.array([[0.9, 0.1]]), np.array([1]))      # set {0}: not covered, size 1
    test_r = (np.array([[0.75, 0.25]]), np.array([0]))    # threshold 0.7: set {0}: covered, size 1
    res = cr_class((cal_p, cal_y), 1, train_f, test_f, test_r, 0.5)
    assert res["qhat"] == pytest.approx(0.3) and res["qhat_forget_class"] == pytest.approx(0.8)
    assert res["CR_forget"] == 0.5 and res["CR_test_forget"] == 0.0 and res["CR_test"] == 1.0


def test_cr_errors_when_calibration_too_small():
    with pytest.raises(ConfigError, match="too small for alpha=0.01"):
        cr_random((np.full((10, 2), 0.5), np.zeros(10, int)), {}, 0.01)


def test_split_conformal_coverage_on_exchangeable_data():
    """Marginal coverage >= 1 - alpha (Vovk et al.): averaged over 300 seeded draws."""
    rng = np.random.default_rng(0)
    alpha, covered = 0.1, []
    for _ in range(300):
        logits = rng.normal(size=(120, 4)) + 2 * np.eye(4)[rng.integers(0, 4, 120)]
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        labels = np.array([rng.choice(4, p=p) for p in probs])
        q = conformal_quantile(lac_scores(probs[:60], labels[:60]), alpha)
        covered.append(coverage_ratio(probs[60:], labels[60:], q)["coverage"])
    assert np.mean(covered) >= 1 - alpha - 0.01


def test_miacr_members_vs_non_members():
    rng = np.random.default_rng(1)
    retain = rng.uniform(0.9, 1.0, 400)
    test = rng.uniform(0.3, 0.7, 150)
    cal = rng.uniform(0.3, 0.7, 150)
    looks_member, flags = miacr(retain, test, cal, rng.uniform(0.9, 1.0, 100), alpha=0.1)
    looks_unseen, _ = miacr(retain, test, cal, rng.uniform(0.3, 0.7, 100), alpha=0.1)
    assert looks_member["MIACR_coverage"] > 0.9 and looks_unseen["MIACR_coverage"] < 0.3
    assert looks_member["MIACR"] > looks_unseen["MIACR"] and flags.dtype == bool and len(flags) == 100
