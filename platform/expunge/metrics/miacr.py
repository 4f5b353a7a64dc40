"""MIACR: conformal prediction over {member, non-member} on the SVC attack (Shi, Liu & Wang 2025).

The SVC attack of the SalUn protocol (RBF, C=3, gamma="auto", Platt-scaled probabilities) is fit on
the true-label confidence of |test| retain samples (members) and the test set (non-members). It is
then calibrated as a two-class conformal predictor on held-out labelled points of both kinds:
non-members from the calibration split and members from retain samples the SVC did not see, with
score 1 - P(true label | x) and q_hat at level ceil((n+1)(1-alpha))/n. On the forget set:

    C(x) = {c in {member, non-member} : P(c | x) >= 1 - q_hat}
    coverage = mean 1[member in C(x)],  size = mean |C(x)|,  MIACR = coverage / size  (0 if size 0)

Lower MIACR on D_f means forget samples are less confidently "member". The reference code
(``metrics/MIACR.py``) calibrates differently (only on non-members, each labelled "member"), hard-codes
alpha = 0.05, returns only the parts (accuracy, 1 - coverage, size) without combining them, and in
its class-wise branch evaluates the test triple on D_f instead of the test-forget set.
"""
from __future__ import annotations

import numpy as np

from expunge.metrics.conformal import conformal_quantile
from expunge.metrics.svc_mia import shadow_members, svc_fit


def miacr(retain_conf: np.ndarray, test_conf: np.ndarray, cal_nonmember_conf: np.ndarray,
          forget_conf: np.ndarray, alpha: float = 0.05, seed: int = 0) -> tuple[dict[str, float], np.ndarray]:
    """MIACR and its parts from true-label confidences; also the per-sample "member in set" flags."""
    fit_idx = shadow_members(len(retain_conf), len(test_conf), seed)
    held = np.setdiff1d(np.arange(len(retain_conf)), fit_idx)
    clf = svc_fit(retain_conf[fit_idx], test_conf, probability=True, seed=seed)
    member_col = list(clf.classes_).index(1)

    def proba(x: np.ndarray) -> np.ndarray:
        return clf.predict_proba(np.asarray(x).reshape(-1, 1))

    # held-out members (retain samples the SVC never saw) and non-members (calibration split)
    cal_x = np.concatenate([retain_conf[held], cal_nonmember_conf])
    cal_y = np.r_[np.ones(len(held), int), np.zeros(len(cal_nonmember_conf), int)]
    p_cal = proba(cal_x)
    cols = np.where(cal_y == 1, member_col, 1 - member_col)
    qhat = conformal_quantile(1.0 - p_cal[np.arange(len(cal_y)), cols], alpha)
    sets = proba(forget_conf) >= 1.0 - qhat
    member_in = sets[:, member_col]
    size = float(sets.sum(axis=1).mean()) if len(sets) else float("nan")
    cov = float(member_in.mean()) if len(sets) else float("nan")
    return {"MIACR": cov / size if size > 0 else 0.0, "MIACR_coverage": cov, "MIACR_size": size,
            "MIACR_qhat": qhat}, member_in
