"""ROC curve, AUC, binary report and bootstrap intervals of ``expunge.metrics.roc``."""
from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from expunge.metrics import roc
from sklearn.metrics import roc_auc_score, roc_curve


def _tied_data(seed: int, n: int = 2000, decimals: int = 1):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    s = np.round(rng.normal(size=n) + 0.7 * y, decimals)  # rounding makes many ties, within and across classes
    return s, y


# ------------------------------------------------------------------------------------ curve and AUC


@pytest.mark.parametrize("seed", range(5))
def test_curve_equals_sklearn_full_curve_with_ties(seed):
    s, y = _tied_data(seed)
    fpr, tpr, thr = roc.roc_curve_fast(s, y)
    f2, t2, th2 = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, f2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tpr, t2, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(thr, th2)
    # one point per distinct score plus the (0, 0) start at +inf
    assert fpr.size == np.unique(s).size + 1 and thr[0] == np.inf
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert roc.auc_score(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_is_mann_whitney_count_with_half_ties():
    s, y = _tied_data(11, n=300)
    diff = s[y][:, None] - s[~y][None, :]
    by_pairs = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size
    assert roc.auc_score(s, y) == pytest.approx(by_pairs, abs=1e-12)
    assert roc.binary_report(s, y)["auc"] == roc.auc_score(s, y)


def test_orientation_higher_score_is_positive():
    s, y = _tied_data(3)
    auc = roc.auc_score(s, y)
    assert auc > 0.6
    assert roc.auc_score(-s, y) == pytest.approx(1.0 - auc, abs=1e-12)
    assert roc.auc_score(s, ~y) == pytest.approx(1.0 - auc, abs=1e-12)
    # labels are cast to bool: 0/2 and 0/1 and False/True mean the same
    assert roc.auc_score(s, 2 * y.astype(int)) == auc


def test_tpr_at_fpr_reads_points_inside_tied_diagonal_segments():
    # three tie groups, each one positive and one negative: points (0,0) (1/3,1/3) (2/3,2/3) (1,1),
    # all on the diagonal. sklearn's drop_intermediate=True would keep only the ends and report 0.
    s = np.array([3.0, 3.0, 2.0, 2.0, 1.0, 1.0])
    y = np.array([1, 0, 1, 0, 1, 0])
    fpr, tpr, _ = roc.roc_curve_fast(s, y)
    np.testing.assert_allclose(fpr, [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 1])
    rep = roc.binary_report(s, y, rates=(0.5, 0.1))
    assert rep["tpr@fpr=0.5"] == pytest.approx(1 / 3)
    assert rep["tnr@fnr=0.5"] == pytest.approx(1 / 3)
    assert rep["tpr@fpr=0.1"] == 0.0 and rep["tnr@fnr=0.1"] == 0.0
    assert rep["auc"] == pytest.approx(0.5) and rep["balanced_accuracy"] == pytest.approx(0.5)
    assert (rep["n_pos"], rep["n_neg"]) == (3.0, 3.0)


def test_binary_report_rates_never_exceed_budget():
    s, y = _tied_data(5, n=5000, decimals=2)
    fpr, tpr, _ = roc.roc_curve_fast(s, y)
    rep = roc.binary_report(s, y, rates=(0.1, 0.01, 0.001))
    for r in (0.1, 0.01, 0.001):
        # the reported TPR is achieved by a threshold whose FPR is within the budget
        ok = fpr <= r
        assert rep[f"tpr@fpr={r:g}"] in set(tpr[ok].tolist())
        assert rep[f"tnr@fnr={r:g}"] in set((1 - fpr[1 - tpr <= r]).tolist())


@pytest.mark.parametrize("fn", [roc.roc_curve_fast, roc.auc_score, roc.binary_report])
def test_input_checks(fn):
    with pytest.raises(ValueError, match="differ in length"):
        fn(np.array([1.0, 2.0]), np.array([1]))
    with pytest.raises(ValueError, match="scores must be finite"):
        fn(np.array([1.0, np.nan]), np.array([1, 0]))
    with pytest.raises(ValueError, match="scores must be finite"):
        fn(np.array([1.0, np.inf]), np.array([1, 0]))
    for labels in ([1, 1], [0, 0]):
        with pytest.raises(ValueError, match="need at least one positive and one negative"):
            fn(np.array([1.0, 2.0]), np.array(labels))


# ------------------------------------------------------------------------------------------- bootstrap


def _shifted(n: int, seed: int, shift: float = 1.0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n // 2, bool), np.zeros(n - n // 2, bool)]
    return rng.normal(size=n) + shift * y, y


def test_bootstrap_large_sample_contains_estimate_and_shrinks_with_n():
    widths = []
    for n in (250, 1000, 4000, 16000):
        s, y = _shifted(n, seed=n)
        ci = roc.bootstrap_ci(s, y, n_boot=300, seed=0)
        assert ci["estimate"] == roc.auc_score(s, y)
        assert ci["low"] < ci["estimate"] < ci["high"]
        widths.append(ci["high"] - ci["low"])
    assert all(a > b for a, b in pairwise(widths)), widths
    # percentile widths scale like 1/sqrt(n): 16x the data, about a quarter of the width
    assert 0.15 < widths[-1] / widths[1] < 0.4, widths


def test_bootstrap_std_matches_hanley_mcneil_standard_error():
    s, y = _shifted(4000, seed=0)
    ci = roc.bootstrap_ci(s, y, n_boot=400, seed=0)
    a, n1, n2 = ci["estimate"], int(y.sum()), int((~y).sum())
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = np.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a)) / (n1 * n2))
    assert 0.85 < ci["std"] / se < 1.15


@pytest.mark.parametrize("kw", [{}, {"class_size": "min"}, {"class_balanced": False}])
def test_bootstrap_same_seed_same_output(kw):
    s, y = _shifted(600, seed=1)
    a = roc.bootstrap_ci(s, y, n_boot=100, seed=7, **kw)
    assert a == roc.bootstrap_ci(s, y, n_boot=100, seed=7, **kw)
    assert a != roc.bootstrap_ci(s, y, n_boot=100, seed=8, **kw)
    assert a["n_boot"] == 100.0


@pytest.mark.parametrize("kw", [{}, {"class_size": "min"}, {"class_balanced": False}])
def test_bootstrap_vectorised_auc_equals_per_replicate_auc(kw):
    s, y = _tied_data(2, n=700)
    fast = roc.bootstrap_ci(s, y, n_boot=150, seed=4, **kw)
    slow = roc.bootstrap_ci(s, y, lambda a, b: roc.auc_score(a, b), n_boot=150, seed=4, **kw)
    for k in fast:
        assert fast[k] == pytest.approx(slow[k], abs=1e-12), k


@pytest.mark.parametrize("kw", [{}, {"class_size": "min"}, {"class_balanced": False}])
def test_bootstrap_does_not_depend_on_block_size(monkeypatch, kw):
    s, y = _shifted(500, seed=2)  # 250 per class: no joint replicate is single-class, none is redrawn
    whole = roc.bootstrap_ci(s, y, n_boot=64, seed=5, **kw)
    monkeypatch.setattr(roc, "_CHUNK_INDICES", 1200)  # two replicates a block
    assert roc.bootstrap_ci(s, y, n_boot=64, seed=5, **kw) == whole


def test_bootstrap_joint_redraws_single_class_replicates():
    # one positive in six points: about a third of joint resamples have no positive and are redrawn
    s = np.array([0.9, 0.1, 0.2, 0.3, 0.4, 0.5])
    y = np.array([1, 0, 0, 0, 0, 0], bool)
    seen = []

    def stat(a, b):
        assert 0 < b.sum() < b.size
        seen.append(b.sum())
        return roc.auc_score(a, b)

    slow = roc.bootstrap_ci(s, y, stat, n_boot=200, seed=0, class_balanced=False)
    fast = roc.bootstrap_ci(s, y, n_boot=200, seed=0, class_balanced=False)
    assert len(seen) == 201 and np.isfinite([fast["low"], fast["high"], fast["std"]]).all()
    assert fast == pytest.approx(slow, abs=1e-12)


def test_bootstrap_min_class_size_draws_balanced_replicates():
    s, y = _shifted(300, seed=3)
    y[:100] = False  # 50 positives, 250 negatives, not sorted by class
    calls = []

    def stat(a, b):
        calls.append((int(b.sum()), int((~b).sum()), bool(b[: b.sum()].all())))  # (n_pos, n_neg, positives first)
        return roc.auc_score(a, b)

    roc.bootstrap_ci(s, y, stat, n_boot=20, class_size="min")
    # 20 balanced replicates, positives first, and one call on the full data for the estimate
    assert sorted(calls) == sorted([(50, 50, True)] * 20 + [(50, 250, False)])
    calls.clear()
    roc.bootstrap_ci(s, y, stat, n_boot=20)
    assert sorted(calls) == sorted([(50, 250, True)] * 20 + [(50, 250, False)])


def test_bootstrap_argument_checks():
    s, y = _shifted(50, seed=0)
    with pytest.raises(ValueError, match="differ in length"):
        roc.bootstrap_ci(s, y[:-1])
    with pytest.raises(ValueError, match="level"):
        roc.bootstrap_ci(s, y, level=1.0)
    with pytest.raises(ValueError, match="class_size"):
        roc.bootstrap_ci(s, y, class_size="max")
    with pytest.raises(ValueError, match="n_boot"):
        roc.bootstrap_ci(s, y, n_boot=0)
    with pytest.raises(ValueError, match="one positive and one negative"):
        roc.bootstrap_ci(s, np.zeros(50, bool))
    one = roc.bootstrap_ci(s, y, n_boot=1)
    assert one["std"] == 0.0 and one["low"] == one["high"]
