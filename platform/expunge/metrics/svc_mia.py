"""SVC membership inference, the SalUn / Unlearn-Sparse "MIA-efficacy" protocol.

An RBF SVC (C=3, gamma="auto") is fit on one scalar feature per sample with ``|test|`` retain samples
as members (label 1) and the test set as non-members (label 0), then applied to the forget set:

    MIA-efficacy = 1 - mean(clf.predict(feature(D_f)))     (fraction of D_f predicted non-member)

Features (Song & Mittal 2021): ``confidence`` = p_y (the papers' MIA-efficacy), ``entropy`` =
H(p), ``m_entropy`` = the modified entropy. Outputs must come from the model in eval mode without
augmentation: the CPU reference code computes these features on augmented training images, which
inflates the member/non-member gap's noise; expunge never does.
"""
from __future__ import annotations

import numpy as np

from expunge.errors import ExpungeError
from expunge.metrics.signals import entropy, modified_entropy, true_class_prob

FEATURES = ("confidence", "entropy", "m_entropy")


def mia_feature(logits: np.ndarray, labels: np.ndarray, kind: str) -> np.ndarray:
    if kind == "confidence":
        return true_class_prob(logits, labels)
    if kind == "entropy":
        return entropy(logits)
    if kind == "m_entropy":
        return modified_entropy(logits, labels)
    raise ExpungeError(f"unknown SVC-MIA feature {kind!r} (allowed: {', '.join(FEATURES)})")


def svc_fit(member_feat: np.ndarray, nonmember_feat: np.ndarray, probability: bool = False, seed: int = 0):
    """Fit the attack SVC on 1-D features (members = 1).

    With ``probability`` the SVC is wrapped in Platt-scaling calibration (what ``SVC(probability=True)``
    did, and what scikit-learn >= 1.9 asks for instead) so ``predict_proba`` exists (MIACR needs it).
    """
    from sklearn.svm import SVC

    x = np.concatenate([member_feat, nonmember_feat]).reshape(-1, 1)
    y = np.concatenate([np.ones(len(member_feat)), np.zeros(len(nonmember_feat))]).astype(int)
    if len(np.unique(y)) < 2:
        raise ExpungeError("SVC-MIA needs both members and non-members to fit the attack")
    svc = SVC(C=3, gamma="auto", kernel="rbf", random_state=seed)
    if probability:
        from sklearn.calibration import CalibratedClassifierCV

        return CalibratedClassifierCV(svc, method="sigmoid", ensemble=False).fit(x, y)
    return svc.fit(x, y)


def shadow_members(n_retain: int, n_test: int, seed: int = 0) -> np.ndarray:
    """Positions of the |test| retain samples the attack trains on (seeded; all of D_r if smaller)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_retain, size=min(n_retain, n_test), replace=False))


def svc_mia_efficacy(retain: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                     forget: tuple[np.ndarray, np.ndarray], features: tuple[str, ...] = FEATURES,
                     seed: int = 0) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """MIA-efficacy per feature, plus the per-sample member predictions on D_f.

    Each argument is ``(logits, labels)`` of the audited model on that set.
    """
    sel = shadow_members(len(retain[1]), len(test[1]), seed)
    summary, per_sample = {}, {}
    for kind in features:
        clf = svc_fit(mia_feature(retain[0][sel], retain[1][sel], kind), mia_feature(*test, kind), seed=seed)
        pred = clf.predict(mia_feature(*forget, kind).reshape(-1, 1)).astype(bool)
        summary[kind] = float(1.0 - pred.mean()) if len(pred) else float("nan")
        per_sample[kind] = pred
    return summary, per_sample
