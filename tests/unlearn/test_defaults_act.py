"""Defaults that act: the ``min_steps`` rule, and every method changing the model at its defaults on
the memorising benchmark (digits with 10% corrupted labels, forget = the corrupted training samples).

A method "does nothing" when its row equals the original's: the same UA, RA, TA and MIA-efficacy,
i.e. not one prediction on D_f, D_r or D_t changed and the SVC attack's verdicts are the same.
"""
from __future__ import annotations

import math

import pytest
import torch

from expunge.config import TrainConfig
from expunge.data import DeviceData, SplitPlan, SplitSizes
from expunge.data.noise import with_label_noise
from expunge.metrics.svc_mia import svc_mia_efficacy
from expunge.models import create_model
from expunge.train import evaluate, seed_everything, train
from expunge.unlearn import METHODS, UnlearnContext, unlearn
from expunge.unlearn.base import MIN_STEPS, passes_per_epoch

#: the demo benchmark's recipe (configs/experiments/digits_mislabeled.yaml): no augmentation, long
#: enough to fit every corrupted label
RECIPE = TrainConfig(epochs=30, batch_size=64, lr=0.05, augment=False)
SIZES = SplitSizes(test=0.2, calibration=0.1, population=0.1, shadow_pool=0.25)


def test_passes_per_epoch_reaches_min_steps_and_never_shortens():
    assert passes_per_epoch(200, 5, 1) == 40          # GA: 5 epochs over one forget batch
    assert passes_per_epoch(200, 5, 9) == 5           # 45 steps -> 225
    assert passes_per_epoch(200, 10, 30) == 1         # already 300 steps: the paper's recipe as is
    assert passes_per_epoch(0, 5, 1) == 1             # min_steps 0: exactly the configured epochs
    for spe in range(1, 40):
        for epochs in (1, 3, 5):
            k = passes_per_epoch(MIN_STEPS, epochs, spe)
            assert k * epochs * spe >= MIN_STEPS and (k - 1) * epochs * spe < MIN_STEPS or k == 1


@pytest.fixture(scope="module")
def benchmark(digits):
    noisy = with_label_noise(digits, 0.1, seed=0)
    plan = SplitPlan.create(noisy, 0, "mislabeled", SIZES)
    data = DeviceData(noisy, "cpu")
    seed_everything(0)
    model = create_model("cnn", 10, noisy.in_shape)
    train(model, data, plan.train, RECIPE, seed=0)
    ctx = UnlearnContext(model.eval(), data, plan, RECIPE, lambda: create_model("cnn", 10, noisy.in_shape), seed=0)
    return ctx, _row(ctx, model)


def _row(ctx: UnlearnContext, model: torch.nn.Module) -> dict[str, float]:
    """UA, RA, TA (percent) and MIA-efficacy, as the leaderboard computes them."""
    labels = ctx.data.dataset.labels.numpy()
    plan = ctx.plan
    out = {s: (evaluate(model, ctx.data, idx), labels[idx])
           for s, idx in {"forget": plan.forget, "retain": plan.retain, "test": plan.test}.items()}
    acc = {s: 100.0 * float((lg.argmax(1) == y).mean()) for s, (lg, y) in out.items()}
    mia, _ = svc_mia_efficacy(out["retain"], out["test"], out["forget"], features=("confidence",))
    return {"UA": 100.0 - acc["forget"], "RA": acc["retain"], "TA": acc["test"], "MIA": 100.0 * mia["confidence"]}


def test_benchmark_original_memorises_the_corrupted_labels(benchmark):
    _, original = benchmark
    assert original["UA"] <= 10.0 and original["RA"] >= 99.0  # it fits (almost) every wrong label


def _methods() -> list[str]:
    return [n for n in METHODS.names() if METHODS.get(n).forget_kinds is None
            or "mislabeled" in METHODS.get(n).forget_kinds]


@pytest.mark.slow
def test_every_method_changes_the_model_at_its_defaults(benchmark):
    ctx, original = benchmark
    names = _methods()
    assert len(names) >= 15
    unchanged = {}
    for name in names:
        res = unlearn(name, None, ctx)
        row = _row(ctx, res.model)
        if row == original:
            unchanged[name] = row
        if res.steps is not None:  # a shared-loop method: at least min_steps optimiser steps
            short = res.steps < res.config.min_steps
            assert not short, f"{name}: {res.steps} steps < min_steps {res.config.min_steps}"
    assert not unchanged, f"rows equal to the original's {original}: {unchanged}"


def test_min_steps_zero_runs_the_papers_step_count(benchmark):
    ctx, _ = benchmark
    res = unlearn("ga", {"min_steps": 0}, ctx)
    forget_batches = math.ceil(len(ctx.plan.forget) / res.config.batch_size)
    assert res.passes_per_epoch == 1 and res.steps == res.config.epochs * forget_batches
    longer = unlearn("ga", None, ctx)
    assert longer.steps >= MIN_STEPS and longer.passes_per_epoch > 1


@pytest.mark.slow
def test_ieu_unlearns_at_its_defaults_within_three_ta_points(benchmark):
    ctx, original = benchmark
    row = _row(ctx, unlearn("ieu", None, ctx).model)
    assert row["UA"] >= original["UA"] + 20.0, (row, original)
    assert row["TA"] >= original["TA"] - 3.0, (row, original)
