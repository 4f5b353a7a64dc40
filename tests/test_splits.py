from __future__ import annotations

import numpy as np
import pytest
import torch

from expunge.data import ImageDataset, SplitPlan, SplitSizes, load_dataset
from expunge.errors import ArtifactError, DataError


def test_plan_is_deterministic_and_disjoint(digits):
    a = SplitPlan.create(digits, 3, "random:0.1")
    b = SplitPlan.create(digits, 3, "random:0.1")
    assert a.hash == b.hash
    for k in a.indices:
        np.testing.assert_array_equal(a.indices[k], b.indices[k])
    held = [a.train, a.test, a.calibration, a.population, a.shadow_pool]
    allidx = np.concatenate(held)
    assert len(np.unique(allidx)) == len(allidx) == len(digits)
    assert set(a.forget) | set(a.retain) == set(a.train) and not set(a.forget) & set(a.retain)
    assert len(a.forget) == round(0.1 * len(a.train))


def test_hash_changes_with_every_input(digits):
    base = SplitPlan.create(digits, 0, "random:0.1")
    assert SplitPlan.create(digits, 1, "random:0.1").hash != base.hash
    assert SplitPlan.create(digits, 0, "random:0.2").hash != base.hash
    assert SplitPlan.create(digits, 0, "random:0.1", SplitSizes(test=0.3)).hash != base.hash
    other = ImageDataset("digits", digits.images.clone(), digits.labels.clone(), 10, digits.mean, digits.std)
    other.images[0, 0, 0, 0] ^= 1
    assert SplitPlan.create(other, 0, "random:0.1").hash != base.hash


def test_forget_specs(digits, tmp_path):
    cls = SplitPlan.create(digits, 0, "class:3")
    labels = digits.labels.numpy()
    assert set(labels[cls.forget]) == {3} and (labels[cls.retain] != 3).all()
    assert cls.forget_class == 3
    part = SplitPlan.create(digits, 0, "class_percentage:2:0.5")
    n2 = (labels[part.train] == 2).sum()
    assert set(labels[part.forget]) == {2} and len(part.forget) == round(0.5 * n2)
    cnt = SplitPlan.create(digits, 0, "random:25")
    assert len(cnt.forget) == 25
    f = tmp_path / "idx.npy"
    np.save(f, cnt.train[:7])
    byfile = SplitPlan.create(digits, 0, f"indices:{f}")
    np.testing.assert_array_equal(byfile.forget, np.sort(cnt.train[:7]))
    txt = tmp_path / "idx.txt"
    txt.write_text(" ".join(map(str, cnt.train[:3])))
    assert len(SplitPlan.create(digits, 0, f"indices:{txt}").forget) == 3


def test_official_test_part_is_used():
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 255, (100, 1, 4, 4), dtype=torch.uint8, generator=g)
    labels = torch.arange(100) % 4
    is_test = np.zeros(100, bool)
    is_test[80:] = True
    ds = ImageDataset("toy", imgs, labels, 4, (0.5,), (0.25,), is_test=is_test)
    plan = SplitPlan.create(ds, 0, "random:0.1", SplitSizes(calibration=0.25, population=0.25))
    held = np.concatenate([plan.test, plan.calibration, plan.population])
    assert set(held) == set(range(80, 100)) and len(plan.calibration) == 5
    assert set(plan.train) == set(range(80))


@pytest.mark.parametrize("spec, msg", [
    ("random:0", "count must be >= 1"),
    ("random:1.0", "(0, 1)"),
    ("random:-0.5", "(0, 1)"),
    ("random:100000", "fewer than all"),
    ("class:10", "out of range"),
    ("class:-1", "out of range"),
    ("class_percentage:1:0", "(0, 1]"),
    ("class:x", "malformed"),
    ("indices:/does/not/exist.npy", "not found"),
])
def test_bad_forget_specs(digits, spec, msg):
    with pytest.raises(DataError) as err:
        SplitPlan.create(digits, 0, spec)
    assert msg in str(err.value)


def test_bad_indices_files(digits, tmp_path):
    plan = SplitPlan.create(digits, 0, "random:0.1")
    cases = {
        "dup.npy": np.array([plan.train[0], plan.train[0]]),
        "range.npy": np.array([len(digits) + 5]),
        "nan.npy": np.array([float(plan.train[0]), np.nan]),
        "held.npy": plan.test[:2],
        "empty.npy": np.array([], dtype=np.int64),
    }
    expected = {"dup.npy": "duplicate", "range.npy": "out of range", "nan.npy": "NaN",
                "held.npy": "not in the train split", "empty.npy": "empty"}
    for name, arr in cases.items():
        np.save(tmp_path / name, arr)
        with pytest.raises(DataError) as err:
            SplitPlan.create(digits, 0, f"indices:{tmp_path / name}")
        assert expected[name] in str(err.value), (name, str(err.value))


def test_single_class_dataset_forget_leaves_empty_retain():
    imgs = torch.zeros((20, 1, 4, 4), dtype=torch.uint8)
    ds = ImageDataset("one", imgs, torch.zeros(20, dtype=torch.int64), 2, (0.5,), (0.25,))
    with pytest.raises(DataError, match="empty retain"):
        SplitPlan.create(ds, 0, "class:0")
    with pytest.raises(DataError, match="empty forget"):
        SplitPlan.create(ds, 0, "class:1")


def test_round_trip_and_hash_refusal(digits):
    plan = SplitPlan.create(digits, 0, "random:0.1")
    again = SplitPlan.from_arrays(plan.meta(), plan.arrays())
    assert again.hash == plan.hash
    tampered = plan.arrays()
    tampered["forget"] = tampered["forget"][:-1]
    with pytest.raises(ArtifactError, match="hash mismatch"):
        SplitPlan.from_arrays(plan.meta(), tampered)
    synth = load_dataset("synthetic", n=60, num_classes=3, shape=(1, 4, 4))
    with pytest.raises(ArtifactError, match="fingerprint"):
        plan.check_dataset(synth)
