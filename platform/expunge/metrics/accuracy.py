"""Accuracy family (the SalUn / Unlearn-Sparse convention).

UA = 1 - Acc(D_f), RA = Acc(D_r), TA = Acc(D_t); for class forgetting TA is computed on the test
samples of the remaining classes and the forgotten class's test accuracy is reported separately.
"""
from __future__ import annotations

import numpy as np

from expunge.metrics.base import AuditInputs, MetricResult, register_metric


def _acc(correct: np.ndarray) -> float:
    return float(correct.mean()) if len(correct) else float("nan")


@register_metric("accuracy", requires=("target",))
def accuracy(inputs: AuditInputs) -> MetricResult:
    """UA = 1 - forget accuracy, RA = retain accuracy, TA = test accuracy (remaining classes)."""
    forget_class = inputs.forget_class
    f, r, t = inputs.target["forget"], inputs.target["retain"], inputs.target["test"]
    cf, cr, ct = f.correct(), r.correct(), t.correct()
    summary = {"UA": 1.0 - _acc(cf), "RA": _acc(cr)}
    if forget_class is None:
        summary["TA"] = _acc(ct)
    else:
        summary["TA"] = _acc(ct[t.labels != forget_class])
        summary["forget_class_TA"] = _acc(ct[t.labels == forget_class])
    return MetricResult(per_sample={"forget_correct": cf, "retain_correct": cr, "test_correct": ct},
                        summary=summary)
