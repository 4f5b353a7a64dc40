from __future__ import annotations

import numpy as np
import pytest
import torch

from expunge.audit.relearn import pru_relearn_test, relearn, relearn_convergence_delay
from expunge.config import TrainConfig
from expunge.data import DeviceData, SplitPlan
from expunge.models import create_model
from expunge.train import seed_everything, train


@pytest.fixture(scope="module")
def setup(digits):
    plan = SplitPlan.create(digits, 0, "class:3")
    data = DeviceData(digits, "cpu")
    seed_everything(0)
    original = create_model("mlp", 10, digits.in_shape, hidden=64)
    train(original, data, plan.train, TrainConfig(epochs=8, batch_size=64, lr=0.05), seed=0)
    seed_everything(1)
    retrained = create_model("mlp", 10, digits.in_shape, hidden=64)
    train(retrained, data, plan.retain, TrainConfig(epochs=8, batch_size=64, lr=0.05), seed=1)
    return plan, data, original.eval(), retrained.eval()


def test_relearn_does_not_touch_the_model_and_records_distances(setup):
    plan, data, original, retrained = setup
    before = [p.clone() for p in retrained.parameters()]
    curve = relearn(retrained, data, plan.forget, {"forget": plan.forget}, epochs=2, lr=0.05,
                    original=original, eval_epochs=(1, 2))
    assert all(torch.equal(a, b) for a, b in zip(before, retrained.parameters()))
    assert curve.epoch[0] == 0 and len(curve.step) == 3 and curve.dist_start[0] == 0.0
    assert curve.dist_start[-1] > 0 and curve.dist_original[0] > 0
    assert curve.acc["forget"][-1] > curve.acc["forget"][0]  # training on D_f relearns it


def test_pru_protocol_uses_no_forget_class_samples(setup):
    plan, data, original, retrained = setup
    seen = []
    orig_loader = data.loader

    def spy(indices, *a, **kw):
        seen.append(np.asarray(indices))
        return orig_loader(indices, *a, **kw)

    data.loader = spy
    try:
        curve = pru_relearn_test(retrained, data, plan.population, 3, plan.test, epochs=5)
    finally:
        data.loader = orig_loader
    labels = data.dataset.labels.numpy()
    train_batches = [s for s in seen if len(s) and set(s) <= set(plan.population)]
    assert train_batches and all((labels[s] != 3).all() for s in train_batches)
    assert [round(e) for e in curve.epoch] == [0, 1, 5]
    assert curve.acc["forget_class_test"][0] < 0.2  # retrained never learned class 3


def test_rcd_orders_original_before_retrained(setup):
    plan, data, original, retrained = setup
    fast = relearn_convergence_delay(original, original, data, plan.forget, max_steps=50)
    slow = relearn_convergence_delay(retrained, original, data, plan.forget, max_steps=50)
    assert fast["rcd_steps"] == 0 and fast["reached"]
    assert slow["rcd_steps"] > fast["rcd_steps"]
    assert "formalisation" in slow["definition"]
