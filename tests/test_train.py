from __future__ import annotations

import numpy as np
import torch

from expunge.config import TrainConfig
from expunge.data import DeviceData, SplitPlan
from expunge.data.augment import random_crop, random_flip
from expunge.models import create_model
from expunge.train import accuracy, evaluate, seed_everything, train
from expunge.train.optim import lr_factor


def test_cnn_reaches_90_percent_on_digits(digits):
    plan = SplitPlan.create(digits, 0, "random:0.1")
    data = DeviceData(digits, "cpu")
    seed_everything(0)
    model = create_model("cnn", 10, digits.in_shape)
    cfg = TrainConfig(epochs=15, batch_size=64, lr=0.05)
    seen = []
    hist = train(model, data, plan.train, cfg, seed=0, callback=lambda r: seen.append(r["epoch"]))
    assert seen == list(range(1, 16)) and len(hist) == 15
    logits = evaluate(model, data, plan.test)
    assert logits.shape == (len(plan.test), 10) and logits.dtype == np.float32
    assert accuracy(logits, digits.labels.numpy()[plan.test]) >= 0.90


def test_training_is_reproducible(digits):
    plan = SplitPlan.create(digits, 0, "random:0.1")
    data = DeviceData(digits, "cpu")
    outs = []
    for _ in range(2):
        seed_everything(1)
        model = create_model("mlp", 10, digits.in_shape, hidden=32)
        train(model, data, plan.train[:300], TrainConfig(epochs=2, batch_size=50, optimizer="adamw", lr=1e-3),
              seed=1)
        outs.append(evaluate(model, data, plan.test[:20]))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_schedules():
    assert lr_factor("cosine", 0, 100, 0) == 1.0 and lr_factor("cosine", 100, 100, 0) < 1e-9
    assert lr_factor("onecycle", 25, 100, 0) == 1.0 and lr_factor("onecycle", 0, 100, 0) == 0.0
    assert lr_factor("step", 80, 100, 0) == 0.01 and lr_factor("constant", 50, 100, 0) == 1.0
    assert lr_factor("cosine", 0, 100, 10) == 0.1


def test_batched_augmentation_shapes_and_content():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    out = random_crop(x, 1, g)
    assert out.shape == x.shape
    # every crop is a shifted window of the zero-padded image
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for b in range(2):
        assert any(torch.equal(out[b], padded[b, :, i:i + 4, j:j + 4]) for i in range(3) for j in range(3))
    flipped = random_flip(x, torch.Generator().manual_seed(1))
    for b in range(2):
        assert torch.equal(flipped[b], x[b]) or torch.equal(flipped[b], x[b].flip(-1))


def test_device_data_normalises(digits):
    data = DeviceData(digits, "cpu")
    x, y = data.batch(torch.arange(len(digits)))
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-2
    assert torch.equal(y, digits.labels)
