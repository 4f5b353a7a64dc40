"""The mislabeled-data benchmark: symmetric label noise, the mislabeled forget spec, forget_heldout."""
from __future__ import annotations

import numpy as np
import pytest

from expunge.resolve import load_config
from expunge.data import SplitPlan, SplitSizes
from expunge.data.noise import with_label_noise
from expunge.errors import ConfigError, DataError

SIZES = SplitSizes(test=0.2, calibration=0.1, population=0.1, shadow_pool=0.25)


def test_noise_flips_the_stated_fraction_to_another_class_deterministically(digits):
    noisy = with_label_noise(digits, 0.1, seed=0)
    k = int(round(0.1 * len(digits)))
    assert noisy.noisy.sum() == k
    flipped = noisy.labels.numpy() != digits.labels.numpy()
    assert np.array_equal(flipped, noisy.noisy)  # every chosen label changed, no other did
    assert np.array_equal(noisy.clean_labels.numpy(), digits.labels.numpy())
    again = with_label_noise(digits, 0.1, seed=0)
    assert np.array_equal(again.labels.numpy(), noisy.labels.numpy()) and again.fingerprint == noisy.fingerprint
    other = with_label_noise(digits, 0.1, seed=1)
    assert not np.array_equal(other.noisy, noisy.noisy) and other.fingerprint != noisy.fingerprint
    assert noisy.fingerprint != digits.fingerprint
    # symmetric: the wrong labels spread over all other classes
    assert len(np.unique(noisy.labels.numpy()[noisy.noisy])) == digits.num_classes
    assert with_label_noise(digits, 0.0) is digits
    with pytest.raises(DataError, match="label_noise"):
        with_label_noise(digits, 1.0)


def test_mislabeled_split_forgets_the_corrupted_training_samples(digits):
    noisy = with_label_noise(digits, 0.1, seed=0)
    plan = SplitPlan.create(noisy, 0, "mislabeled", SIZES)
    is_noisy = noisy.noisy
    assert np.array_equal(plan.forget, np.sort(plan.train[is_noisy[plan.train]]))
    assert not is_noisy[plan.retain].any()
    # held-out sets keep clean labels only; their corrupted samples are the matched non-members
    for name in ("test", "calibration", "population"):
        assert not is_noisy[plan.indices[name]].any()
    assert is_noisy[plan.forget_heldout].all() and len(plan.forget_heldout) > 30
    assert not set(plan.forget_heldout) & set(plan.train)
    assert is_noisy[plan.shadow_pool].any()  # shadows see corrupted data like the original does
    assert len(plan.forget) > 30


def test_forget_heldout_for_class_and_random_specs(digits):
    cls = SplitPlan.create(digits, 0, "class:3", SIZES)
    labels = digits.labels.numpy()
    assert np.array_equal(cls.forget_heldout, np.sort(cls.test[labels[cls.test] == 3]))
    assert len(SplitPlan.create(digits, 0, "random:0.1", SIZES).forget_heldout) == 0


def test_mislabeled_needs_noise_and_takes_no_value(digits):
    with pytest.raises(ConfigError, match="label_noise"):
        load_config(None, ["data.forget=mislabeled"])
    with pytest.raises(ConfigError, match="takes no value"):
        load_config(None, ["data.forget=mislabeled:0.1", "data.label_noise=0.1"])
    with pytest.raises(DataError, match="label_noise"):
        SplitPlan.create(digits, 0, "mislabeled", SIZES)
    cfg = load_config("configs/experiments/digits_mislabeled.yaml", [])
    assert cfg.data.forget == "mislabeled" and cfg.data.label_noise == 0.1 and not cfg.train.augment
