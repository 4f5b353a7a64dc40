from __future__ import annotations

import numpy as np
import pytest

from expunge.errors import ExpungeError
from expunge.metrics.svc_mia import mia_feature, shadow_members, svc_mia_efficacy


def _logits(conf: np.ndarray, labels: np.ndarray, c: int = 3) -> np.ndarray:
    """Logits whose softmax gives p_y = conf and spreads the rest evenly."""
    p = np.tile(((1 - conf) / (c - 1))[:, None], (1, c))
    p[np.arange(len(labels)), labels] = conf
    return np.log(p)


def test_confidence_feature_is_true_class_probability():
    labels = np.array([0, 2])
    logits = _logits(np.array([0.9, 0.5]), labels)
    np.testing.assert_allclose(mia_feature(logits, labels, "confidence"), [0.9, 0.5])


def test_efficacy_separates_members_from_non_members():
    rng = np.random.default_rng(0)
    y = lambda n: rng.integers(0, 3, n)  # noqa: E731
    ret_y, test_y = y(200), y(100)
    retain = (_logits(rng.uniform(0.95, 0.999, 200), ret_y), ret_y)
    test = (_logits(rng.uniform(0.35, 0.6, 100), test_y), test_y)
    seen_y, unseen_y = y(50), y(50)
    seen = (_logits(rng.uniform(0.95, 0.999, 50), seen_y), seen_y)
    unseen = (_logits(rng.uniform(0.35, 0.6, 50), unseen_y), unseen_y)
    eff_seen, per = svc_mia_efficacy(retain, test, seen, features=("confidence",))
    eff_unseen, _ = svc_mia_efficacy(retain, test, unseen, features=("confidence",))
    # a forget set that still looks trained-on is predicted member: efficacy ~ 0; an unseen one ~ 1
    assert eff_seen["confidence"] < 0.1 and eff_unseen["confidence"] > 0.9
    assert per["confidence"].shape == (50,) and per["confidence"].dtype == bool


def test_shadow_members_size_and_determinism():
    a = shadow_members(1000, 300, seed=1)
    assert len(a) == 300 and len(np.unique(a)) == 300 and np.array_equal(a, shadow_members(1000, 300, seed=1))
    assert len(shadow_members(10, 300)) == 10


def test_unknown_feature():
    with pytest.raises(ExpungeError, match="unknown SVC-MIA feature"):
        mia_feature(np.zeros((1, 2)), np.zeros(1, int), "loss")
