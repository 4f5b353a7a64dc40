"""CR against alpha: the conformal coverage ratio of one model over a range of miscoverage levels.

The audit stores CR at its configured alpha(s) only (``audit.params.cr.alphas``, default 0.05); the
report recomputes it from the model's cached outputs for a grid of alphas, with the same functions
the ``cr`` metric uses (``expunge.metrics.conformal``), so the point at the configured alpha equals
the leaderboard's value. Alphas too small for the calibration set (n < ceil(1/alpha) - 1) are left
out rather than failing.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from expunge.metrics.conformal import cr_class, cr_random, min_calibration_size
from expunge.metrics.signals import softmax

ALPHAS = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
Arrays = tuple[np.ndarray, np.ndarray]


def feasible_alphas(alphas: tuple[float, ...], calibration_sizes: list[int]) -> list[float]:
    """The alphas every calibration set (all of it, or per class) is large enough for."""
    n = min(calibration_sizes)
    return sorted(a for a in set(alphas) if min_calibration_size(a) <= n)


def calibration_sizes(calibration_labels: np.ndarray, forget_class: int | None) -> list[int]:
    """Random forgetting calibrates once; class forgetting calibrates the forgotten and the other classes apart."""
    if forget_class is None:
        return [len(calibration_labels)]
    is_f = calibration_labels == forget_class
    return [int(is_f.sum()), int((~is_f).sum())]


def cr_against_alpha(outputs: dict[str, Arrays], forget_class: int | None, alphas: list[float]) -> pd.DataFrame:
    """Rows (alpha, set, coverage, size, CR) for one model.

    ``outputs`` maps calibration / forget / retain / test to (logits, labels). Random forgetting: sets
    forget, retain, test. Class forgetting (the ``cr`` metric's class-wise protocol): forget (train
    samples of the class), test_forget (its test samples) and test (test samples of the other classes).
    """
    probs = {name: (softmax(logits), labels) for name, (logits, labels) in outputs.items()}
    rows = []
    for alpha in alphas:
        if forget_class is None:
            res = cr_random(probs["calibration"], {s: probs[s] for s in ("forget", "retain", "test")}, alpha)
        else:
            test_p, test_y = probs["test"]
            is_f = test_y == forget_class
            res = cr_class(probs["calibration"], forget_class, probs["forget"], (test_p[is_f], test_y[is_f]),
                           (test_p[~is_f], test_y[~is_f]), alpha)
        sets = [k.split("_", 1)[1] for k in res if k.startswith("CR_")]
        rows += [{"alpha": alpha, "set": s, "coverage": res[f"coverage_{s}"], "size": res[f"size_{s}"],
                  "CR": res[f"CR_{s}"]} for s in sets]
    return pd.DataFrame(rows, columns=["alpha", "set", "coverage", "size", "CR"])
