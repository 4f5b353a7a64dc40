"""Split conformal prediction with the LAC score, shared by the CR / MIACR metrics and the CPU loss.

Shi, Liu & Wang (2025), "Redefining Machine Unlearning: A Conformal Prediction-Motivated Approach"
(arXiv 2501.19403), following split conformal prediction (Vovk et al. 2005; Sadinle et al. 2019):

    score       s(x, y) = 1 - p_y(x)                                  (LAC / "THR")
    quantile    q_hat = Quantile({s_i}, ceil((n + 1)(1 - alpha)) / n, method="higher")
    set         C(x) = {k : p_k(x) >= 1 - q_hat}

The reference code lets numpy fail when n is too small for alpha (level > 1); here that is a one-line
configuration error naming the sizes.
"""
from __future__ import annotations

import math

import numpy as np

from expunge.errors import ConfigError


def lac_scores(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Non-conformity 1 - p_y for each row of ``probs`` [n, C]."""
    probs = np.asarray(probs)
    return 1.0 - probs[np.arange(len(labels)), np.asarray(labels)]


def min_calibration_size(alpha: float) -> int:
    """Smallest n with ceil((n + 1)(1 - alpha)) / n <= 1."""
    return max(1, math.ceil(1.0 / alpha) - 1)


def conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """q_hat at level ceil((n+1)(1-alpha))/n with the "higher" method (an actual calibration score)."""
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"conformal alpha must be in (0, 1), got {alpha}")
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if n < min_calibration_size(alpha):
        raise ConfigError(f"calibration set of {n} samples is too small for alpha={alpha}: "
                          f"need at least {min_calibration_size(alpha)}")
    level = math.ceil((n + 1) * (1.0 - alpha)) / n
    return float(np.quantile(scores, min(level, 1.0), method="higher"))


def prediction_sets(probs: np.ndarray, qhat: float) -> np.ndarray:
    """Boolean [n, C]: class k is in C(x) when p_k(x) >= 1 - q_hat (sets may be empty)."""
    return np.asarray(probs) >= 1.0 - qhat


def coverage_ratio(probs: np.ndarray, labels: np.ndarray, qhat: float) -> dict[str, float]:
    """Cov = mean 1[y in C(x)], Size = mean |C(x)|, CR = Cov / Size (0 when every set is empty)."""
    sets = prediction_sets(probs, qhat)
    if len(labels) == 0:
        return {"coverage": float("nan"), "size": float("nan"), "CR": float("nan")}
    cov = float(sets[np.arange(len(labels)), np.asarray(labels)].mean())
    size = float(sets.sum(axis=1).mean())
    # the reference divides without a guard; all-empty sets cover nothing, so CR = 0
    return {"coverage": cov, "size": size, "CR": cov / size if size > 0 else 0.0}


def fake_unlearning(probs: np.ndarray, labels: np.ndarray, qhat: float) -> dict[str, float]:
    """"Fake unlearning" (Shi, Liu & Wang 2025, Sec. 3): forget samples the model misclassifies, so
    accuracy counts them as forgotten, while their true label is still inside the conformal set
    C(x), so the knowledge is still there.

    ``fake_unlearned`` = #{i : argmax_k p_k(x_i) != y_i and y_i in C(x_i)}; ``fake_unlearned_rate`` =
    that count over the number of misclassified samples (NaN when none is misclassified).

    >>> p = np.array([[0.6, 0.4], [0.9, 0.1], [0.2, 0.8]])
    >>> fake_unlearning(p, np.array([1, 1, 1]), qhat=0.7)  # sets {0, 1}, {0}, {1}
    {'fake_unlearned': 1.0, 'fake_unlearned_rate': 0.5}
    """
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    wrong = probs.argmax(axis=1) != labels
    in_set = prediction_sets(probs, qhat)[np.arange(len(labels)), labels]
    fake = int((wrong & in_set).sum())
    return {"fake_unlearned": float(fake), "fake_unlearned_rate": fake / int(wrong.sum()) if wrong.any() else float("nan")}


def cr_random(cal: tuple[np.ndarray, np.ndarray], sets: dict[str, tuple[np.ndarray, np.ndarray]],
              alpha: float) -> dict[str, float]:
    """Random (data-wise) forgetting: one q_hat from the calibration split; coverage, size and CR on
    each of ``sets`` (``{name: (probs, labels)}``, e.g. forget / retain / test)."""
    qhat = conformal_quantile(lac_scores(*cal), alpha)
    out = {"qhat": qhat}
    for name, (probs, labels) in sets.items():
        for k, v in coverage_ratio(probs, labels, qhat).items():
            out[f"{k}_{name}"] = v
    if "forget" in sets:
        out.update(fake_unlearning(*sets["forget"], qhat))
    return out


def cr_class(cal: tuple[np.ndarray, np.ndarray], forget_class: int, train_forget: tuple[np.ndarray, np.ndarray],
             test_forget: tuple[np.ndarray, np.ndarray], test_retain: tuple[np.ndarray, np.ndarray],
             alpha: float) -> dict[str, float]:
    """Class forgetting (the reference's ``get_CP_class_wise``): q1 calibrated on calibration samples
    of the remaining classes, q2 on those of the forgotten class; CR(train-forget) and
    CR(test-forget) use q2, CR(test-retain) uses q1.

    Calibrating q2 with the unlearned model on forgotten-class samples makes test-forget coverage
    about 1 - alpha by exchangeability, so the class-wise CR is driven by set size: a model that has
    really forgotten the class produces large, uninformative sets and a *low* CR.
    """
    probs, labels = cal
    is_f = labels == forget_class
    q1 = conformal_quantile(lac_scores(probs[~is_f], labels[~is_f]), alpha)
    q2 = conformal_quantile(lac_scores(probs[is_f], labels[is_f]), alpha)
    out = {"qhat": q1, "qhat_forget_class": q2}
    for name, (p, y), q in (("forget", train_forget, q2), ("test_forget", test_forget, q2),
                            ("test", test_retain, q1)):
        for k, v in coverage_ratio(p, y, q).items():
            out[f"{k}_{name}"] = v
    out.update(fake_unlearning(*train_forget, q2))
    return out
