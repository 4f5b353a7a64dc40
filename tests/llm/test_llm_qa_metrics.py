"""TOFU / MUSE QA metrics against answers worked out by hand, and their registry."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import hmean

from expunge.errors import ExpungeError
from expunge.llm import qa_metrics as Q


def test_answer_probability_and_its_normalised_form():
    np.testing.assert_allclose(Q.answer_probability([math.log(2.0), 0.0]), [0.5, 1.0])
    # p(a) = 1/2, perturbed 1/4 and 1/4: share 0.5 / (0.5 + 0.5)
    share = Q.normalised_answer_probability([math.log(2.0)], [[math.log(4.0), math.log(4.0)]])
    np.testing.assert_allclose(share, [0.5])


def test_truth_ratio_is_geometric_mean_of_perturbed_over_paraphrase():
    para = np.array([1.0, 2.0])
    pert = np.array([[2.0, 4.0], [1.0, 1.0]])
    r = Q.truth_ratios(para, pert)
    # row 0: perturbed probabilities e^-2 and e^-4, geometric mean e^-3, paraphrase e^-1 -> e^-2
    # row 1: perturbed e^-1, paraphrase e^-2 -> e
    np.testing.assert_allclose(r, [math.exp(-2.0), math.e])
    arithmetic = (math.exp(-2.0) + math.exp(-4.0)) / 2 / math.exp(-1.0)
    assert r[0] != pytest.approx(arithmetic)
    # forget: mean min(R, 1/R); retain: mean max(0, 1 - R)
    assert Q.truth_ratio_score(r, "forget") == pytest.approx((math.exp(-2.0) + math.exp(-1.0)) / 2)
    assert Q.truth_ratio_score(r, "retain") == pytest.approx((1 - math.exp(-2.0) + 0.0) / 2)
    # a model that cannot tell true from false (R = 1) is perfect on forget, worthless on retain
    assert Q.truth_ratio_score([1.0, 1.0], "forget") == 1.0 and Q.truth_ratio_score([1.0], "retain") == 0.0
    # the forget score is symmetric in R and 1/R
    assert Q.truth_ratio_score(r, "forget") == pytest.approx(Q.truth_ratio_score(1 / r, "forget"))
    with pytest.raises(ExpungeError, match="'forget' or 'retain'"):
        Q.truth_ratio_score(r, "heldout")
    with pytest.raises(ExpungeError, match=r"\[N, M\]"):
        Q.truth_ratios(para, np.ones((3, 2)))


def test_forget_quality_identical_distributions_give_p_one():
    tr = np.array([0.3, 0.9, 1.2, 0.5, 2.0, 0.7])
    stat, p = Q.forget_quality_test(tr, tr.copy())
    assert stat == 0.0 and p == pytest.approx(1.0)
    assert Q.forget_quality(tr, tr[::-1]) == pytest.approx(1.0)  # order does not matter


def test_forget_quality_separated_distributions_give_the_exact_tiny_p():
    u = np.arange(1.0, 11.0)
    r = np.arange(101.0, 111.0)
    stat, p = Q.forget_quality_test(u, r)
    # D = 1; under the null every one of the C(20, 10) orderings is equally likely and 2 of them put
    # one sample entirely above the other: exact two-sided p = 2 / C(20, 10)
    assert stat == 1.0
    assert p == pytest.approx(2 / math.comb(20, 10), rel=1e-9)
    # rank-based: 1/R gives the same p-value as R
    assert Q.forget_quality(1 / u, 1 / r) == pytest.approx(p)


def test_model_utility_is_the_harmonic_mean_and_zero_with_a_zero_part():
    assert Q.model_utility([0.5, 0.25, 1.0]) == pytest.approx(3 / (2 + 4 + 1))
    vals = {"retain_prob": 0.9, "retain_rouge": 0.4, "retain_truth_ratio": 0.6, "heldout_prob": 0.3}
    assert Q.model_utility(vals) == pytest.approx(hmean(list(vals.values())))
    assert Q.model_utility([0.9, 0.0, 0.7]) == 0.0
    with pytest.raises(ExpungeError, match=">= 0"):
        Q.model_utility([0.5, -0.1])
    with pytest.raises(ExpungeError, match="at least one"):
        Q.model_utility([])


def test_privleak_has_muses_sign():
    # expunge's AUC (forget positive, member-oriented): a model that still remembers the forget set
    # (AUC 1) against a retrained one at chance is MUSE's -100 (under-unlearning is negative)
    assert Q.privleak(1.0, 0.5) == pytest.approx(-100.0)
    # forget samples look *less* member-like than holdout: over-unlearning is positive
    assert Q.privleak(0.2, 0.5) == pytest.approx((0.8 - 0.5) / 0.5 * 100)
    assert Q.privleak(0.63, 0.63) == 0.0
    # AUCs already in MUSE's orientation are used as given
    assert Q.privleak(0.3, 0.5, orientation="muse") == pytest.approx(-40.0)
    with pytest.raises(ExpungeError, match="undefined"):
        Q.privleak(0.4, 1.0)
    with pytest.raises(ExpungeError, match="in \\[0, 1\\]"):
        Q.privleak(1.2, 0.5)


def test_rouge_l_recall_on_known_pairs():
    # LCS of "the cat sat on the mat" and "the cat lay on a mat" is the, cat, on, mat: 4 of 6 reference words
    r = Q.rouge_l_recall(["the cat lay on a mat", "", "The Cat sat on the mat."], ["the cat sat on the mat"] * 3)
    np.testing.assert_allclose(r, [4 / 6, 0.0, 1.0])
    # stemming (as TOFU): "runs" matches "running", "dogs" matches "dog"; the LCS is one word of two
    assert Q.rouge_l_recall(["the dog runs"], ["running dogs"])[0] == pytest.approx(0.5)
    assert Q.rouge_l_recall(["the dog runs"], ["running dogs"], use_stemmer=False)[0] == 0.0
    with pytest.raises(ExpungeError, match="2 generated answers for 1"):
        Q.rouge_l_recall(["a", "b"], ["a"])


def _split(nll, para, pert, rouge):
    return Q.QASplitScores(np.array(nll), np.array(para), np.array(pert), np.array(rouge))


def test_registry_runs_what_the_inputs_allow_and_matches_the_pure_functions():
    forget = _split([0.5, 1.0], [0.7, 0.2], [[0.9, 1.1], [0.3, 0.5]], [0.5, 1.0])
    retain = _split([0.2, 0.4], [0.3, 0.1], [[1.3, 1.5], [2.0, 0.8]], [0.8, 0.6])
    heldout = _split([0.6, 0.9], [0.5, 0.4], [[1.0, 2.0], [1.5, 1.5]], [0.4, 0.2])
    gold = _split([2.0, 2.2], [2.1, 1.9], [[2.0, 2.2], [1.8, 2.0]], [0.0, 0.1])
    inp = Q.QAInputs(forget=forget, retain=retain, heldout=heldout)
    out, skipped = Q.run_qa_metrics(inp)
    assert set(skipped) == {"forget_quality", "privleak"} and "retain_model" in skipped["forget_quality"]
    assert out["forget_prob"] == pytest.approx(np.mean(np.exp([-0.5, -1.0])))
    assert out["heldout_prob"] == pytest.approx(
        Q.normalised_answer_probability(heldout.answer_nll, heldout.perturbed_nll).mean())
    assert out["forget_truth_ratio"] == pytest.approx(Q.truth_ratio_score(forget.truth_ratios(), "forget"))
    assert out["retain_truth_ratio"] == pytest.approx(Q.truth_ratio_score(retain.truth_ratios(), "retain"))
    parts = [out[f"{s}_{m}"] for s in ("retain", "heldout") for m in ("prob", "rouge", "truth_ratio")]
    assert out["model_utility"] == pytest.approx(Q.model_utility(parts))

    full = Q.QAInputs(forget=forget, retain=retain, heldout=heldout, retain_model_forget=gold, auc=0.9,
                      auc_retain_model=0.55)
    out, skipped = Q.run_qa_metrics(full)
    assert not skipped
    assert out["forget_quality"] == pytest.approx(Q.forget_quality(forget.truth_ratios(), gold.truth_ratios()))
    assert out["privleak"] == pytest.approx(Q.privleak(0.9, 0.55))
    out, _ = Q.run_qa_metrics(full, ["privleak"], params={"privleak": {"orientation": "muse"}})
    assert out == {"privleak": pytest.approx(Q.privleak(0.9, 0.55, orientation="muse"))}

    with pytest.raises(ExpungeError, match="needs"):
        Q.run_qa_metrics(inp, ["forget_quality"])
    with pytest.raises(ExpungeError, match="did you mean"):
        Q.run_qa_metrics(inp, ["truth_ratios"])
    no_rouge = Q.QAInputs(forget=Q.QASplitScores(np.array([0.5])))
    out, skipped = Q.run_qa_metrics(no_rouge)
    assert set(out) == {"forget_prob"} and {"rouge_l", "truth_ratio", "model_utility"} <= set(skipped)
