"""Every registered method on digits: forgetting moves the right way, utility stays within bounds.

One original cnn is trained per forget spec (module scope); each method runs with its default
config, except where ``OVERRIDES`` says why not (class forgetting). For class forgetting the forgotten class's accuracy
on the forget set must drop below 50% (retraining gives ~0%), except for the fine-tuning family in
``WEAK``, which relies on catastrophic forgetting and must only not raise it. For random forgetting
(where retraining itself keeps ~98% forget accuracy on digits, so there is little to remove) forget
accuracy must not rise by more than one sample. Test accuracy on the remaining classes must stay
within 20 points of the original's.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from expunge.config import TrainConfig
from expunge.data import DeviceData, SplitPlan
from expunge.models import create_model
from expunge.train import accuracy, evaluate, seed_everything, train
from expunge.unlearn import METHODS, UnlearnContext, unlearn

RECIPE = TrainConfig(epochs=12, batch_size=64, lr=0.05)

#: Methods whose forgetting is only the side effect of training on D_r (FT: Warnecke et al. 2023 show
#: it barely moves forget accuracy in few epochs); they must not raise forget accuracy.
#: finetune+cpu's hinge pushes p_y below the conformal threshold 1 - q_hat (~0.95 here), which empties
#: conformal sets (tests/unlearn/test_rl_salun_cpu.py) without needing to flip the argmax.
WEAK = {"finetune", "finetune+cpu"}
#: NegGrad+ with the CPU code's beta=0.001 weights the forget term lightly by design: it must remove at
#: least 10 points of forget accuracy, not the whole class.
MODERATE = {"neggrad+"}
#: Class forgetting only. Each override keeps the method's formula and scales only its strength:
#: at their defaults (and the shared loop's ``min_steps``) these two keep the forget class at 97%, and
#: SSD's alpha=10 selects ~30% of a tiny cnn's weights.
OVERRIDES: dict[str, dict] = {
    "l1_sparse": {"alpha": 0.05, "no_l1_epochs": 3},  # alpha 5e-4 is fine-tuning with a negligible L1 term
    "scrub": {"lr": 0.01},                  # SCRUB's lr 5e-4 is for ~350 steps per epoch on CIFAR
    "ssd": {"selection_weighting": 50.0},
}
#: Class forgetting only, no utility bound, as measured: GA at its defaults (lr 1e-4, 200 steps)
#: takes the forget class 0.97 -> 0.01 and the rest 0.99 -> 0.71, since plain ascent has no retain
#: term; SSD's dampening is a knife-edge on this small cnn (selection weighting 50: forget 0.97 -> 0.0
#: and test 0.99 -> 0.76; 75: nothing forgotten).
NO_UTILITY_BOUND = {"ga", "ssd"}


def _context(digits, spec: str) -> tuple[UnlearnContext, dict]:
    plan = SplitPlan.create(digits, 0, spec)
    data = DeviceData(digits, "cpu")
    seed_everything(0)
    model = create_model("cnn", 10, digits.in_shape)
    train(model, data, plan.train, RECIPE, seed=0)

    def factory():
        return create_model("cnn", 10, digits.in_shape)

    ctx = UnlearnContext(model.eval(), data, plan, RECIPE, factory, seed=0)
    return ctx, _accs(ctx, model)


def _accs(ctx: UnlearnContext, model) -> dict:
    labels = ctx.data.dataset.labels.numpy()
    plan = ctx.plan
    test = plan.test if plan.forget_class is None else plan.test[labels[plan.test] != plan.forget_class]
    return {s: accuracy(evaluate(model, ctx.data, idx), labels[idx])
            for s, idx in {"forget": plan.forget, "test": test}.items()}


@pytest.fixture(scope="module")
def class_ctx(digits):
    return _context(digits, "class:3")


@pytest.fixture(scope="module")
def random_ctx(digits):
    return _context(digits, "random:0.1")


def _applies(name: str, spec: str) -> bool:
    kinds = METHODS.get(name).forget_kinds
    return kinds is None or spec.split(":")[0] in kinds


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS.names())
def test_class_forgetting(name, class_ctx):
    if not _applies(name, "class:3"):
        pytest.skip(f"{name} does not apply to class forgetting")
    ctx, before = class_ctx
    torch.manual_seed(0)
    res = unlearn(name, OVERRIDES.get(name, {}), ctx)
    after = _accs(ctx, res.model)
    assert before["forget"] > 0.9
    if name in WEAK:
        assert after["forget"] <= before["forget"], (name, before, after)
    elif name in MODERATE:
        assert after["forget"] <= before["forget"] - 0.10, (name, before, after)
    else:
        assert after["forget"] < 0.5, (name, before, after)
    if name not in NO_UTILITY_BOUND:
        assert after["test"] >= before["test"] - 0.20, (name, before, after)
    # the original is never modified
    assert _accs(ctx, ctx.original) == before


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS.names())
def test_random_forgetting(name, random_ctx):
    if not _applies(name, "random:0.1"):
        pytest.skip(f"{name} does not apply to random forgetting")
    ctx, before = random_ctx
    torch.manual_seed(0)
    res = unlearn(name, {}, ctx)
    after = _accs(ctx, res.model)
    one_sample = 1.0 / len(ctx.plan.forget)
    assert any(not torch.equal(p, q) for p, q in zip(res.model.parameters(), ctx.original.parameters())), name
    assert after["forget"] <= before["forget"] + one_sample + 1e-9, (name, before, after)
    assert after["test"] >= before["test"] - 0.20, (name, before, after)
    assert res.seconds > 0 and np.isfinite(res.seconds)


def test_retrain_guard_refuses_forget_samples(random_ctx):
    from expunge.unlearn.retrain import ForgetGuardedData

    ctx, _ = random_ctx
    guarded = ForgetGuardedData(ctx.data, ctx.plan.forget)
    with pytest.raises(AssertionError, match="forget samples"):
        next(guarded.loader(np.concatenate([ctx.plan.retain[:5], ctx.plan.forget[:1]]), 4))
    with pytest.raises(AssertionError, match="forget sample"):
        guarded.batch(torch.as_tensor(ctx.plan.forget[:2]))
    x, y = guarded.batch(torch.as_tensor(ctx.plan.retain[:3]))
    assert x.shape[0] == 3
