from __future__ import annotations

import numpy as np
import pytest
import torch

from expunge.audit.scoreui_checkpoints import partial_membership_checkpoints
from expunge.config import TrainConfig
from expunge.data import DeviceData, SplitPlan
from expunge.errors import ConfigError
from expunge.metrics.scoreui import scoreui
from expunge.models import create_model
from expunge.train import evaluate


def test_checkpoints_trace_partial_membership(digits):
    plan = SplitPlan.create(digits, 0, "random:0.1")
    data = DeviceData(digits, "cpu")
    torch.manual_seed(0)
    init = create_model("mlp", 10, digits.in_shape, hidden=32)
    init_state = {k: v.clone() for k, v in init.state_dict().items()}
    cps = partial_membership_checkpoints(init, data, plan.train[:300], TrainConfig(epochs=4, batch_size=64),
                                         breaks=4)
    assert [f for f, _ in cps] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert all(torch.equal(cps[0][1][k], init_state[k]) for k in init_state)  # b = 0 is the initialisation
    # confidence on the target samples grows with membership
    labels = digits.labels.numpy()[plan.train[:300]]
    scores = []
    for _, state in cps:
        m = create_model("mlp", 10, digits.in_shape, hidden=32)
        m.load_state_dict(state)
        logits = evaluate(m, data, plan.train[:300])
        p = np.exp(logits - logits.max(1, keepdims=True))
        scores.append((p / p.sum(1, keepdims=True))[np.arange(300), labels])
    means = np.array(scores).mean(axis=1)
    assert (np.diff(means) > 0).all()  # the more of the training, the more member-like
    res = scoreui(np.array(scores), np.array([f for f, _ in cps]))
    # p_y is a weak per-sample signal on digits (most samples are learned early), but the ranking
    # still follows membership; measured Spearman ~0.26
    assert res["spearman"] > 0.1


def test_scoreui_perfect_and_errors():
    fr = np.array([0.0, 0.5, 1.0])
    scores = np.array([[0.0, 0.1], [0.5, 0.6], [1.0, 1.1]])
    res = scoreui(scores, fr)
    assert res["spearman"] == pytest.approx(1.0, abs=0.1) and res["pearson"] > 0.99
    with pytest.raises(ValueError):
        scoreui(scores[:2], fr)
    with pytest.raises(ConfigError, match="multiple of breaks"):
        partial_membership_checkpoints(torch.nn.Linear(2, 2), None, np.arange(2), TrainConfig(epochs=5), breaks=4)
