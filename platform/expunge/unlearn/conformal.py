"""Split conformal prediction utilities for the unlearning side (the CPU loss).

One implementation only: this module re-exports :mod:`expunge.metrics.conformal`, which the CR and
MIACR metrics already use, so the CPU loss and the metrics cannot drift apart (seed-methods §4:
"one conformal.py ... the CR metric, the CPU loss and MIACR share it"). See that module for the
formulas: LAC score 1 - p_y; q_hat = Quantile(scores, ceil((n+1)(1-alpha))/n, method="higher"),
ConfigError when alpha is not in (0, 1) or n < ceil(1/alpha) - 1; C(x) = {k : p_k(x) >= 1 - q_hat}.
"""
from expunge.metrics.conformal import (conformal_quantile, coverage_ratio, lac_scores, min_calibration_size,
                                       prediction_sets)

__all__ = ["conformal_quantile", "coverage_ratio", "lac_scores", "min_calibration_size", "prediction_sets"]
