"""RL, SalUn and the CPU hinge: hand-computed units and end-to-end runs on digits."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from expunge.config import TrainConfig
from expunge.data import DeviceData, SplitPlan
from expunge.errors import ConfigError
from expunge.metrics.conformal import conformal_quantile, coverage_ratio, lac_scores, prediction_sets
from expunge.models import create_model
from expunge.train import accuracy, evaluate, seed_everything, train
from expunge.unlearn import METHODS, UnlearnContext, unlearn
import math

from expunge.unlearn import Batch
from expunge.unlearn.cpu import calibrate, cpu_calibration_indices, cpu_hinge, mixed_batches
from expunge.unlearn.random_labels import random_other_labels
from expunge.unlearn.salun import saliency_mask


# --- the CPU hinge -----------------------------------------------------------------------------
def test_hinge_same_label_batch():
    # q_hat = 0.3 -> threshold 1 - q_hat = 0.7; delta = 0.05.
    # p_y = 0.9 -> max(0, 0.9 - 0.7 + 0.05) = 0.25 ; p_y = 0.6 -> max(0, 0.6 - 0.7 + 0.05) = 0
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4]])
    labels = torch.tensor([0, 0])
    assert cpu_hinge(probs, labels, 0.3, 0.05).item() == pytest.approx((0.25 + 0.0) / 2)
    # same labels: the reference's B x B indexing gives the same numbers
    assert cpu_hinge(probs, labels, 0.3, 0.05, repo_faithful=True).item() == pytest.approx(0.125)


def test_hinge_mixed_label_batch():
    # labels (0, 1): per-sample p_y = (0.9, 0.4) -> (0.25, 0) -> mean 0.125.
    # pairwise (repo): p_{y_j}(x_i) = [[0.9, 0.1], [0.6, 0.4]] -> hinge [[0.25, 0], [0, 0]] -> mean 0.0625
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4]])
    labels = torch.tensor([0, 1])
    assert cpu_hinge(probs, labels, 0.3, 0.05).item() == pytest.approx(0.125)
    assert cpu_hinge(probs, labels, 0.3, 0.05, repo_faithful=True).item() == pytest.approx(0.0625)


def test_hinge_empty_batch_is_zero_with_a_graph():
    probs = torch.softmax(torch.randn(0, 3, requires_grad=True), dim=1)
    out = cpu_hinge(probs, torch.zeros(0, dtype=torch.long), 0.2, 0.01)
    assert out.item() == 0.0 and not torch.isnan(out)
    logits = torch.randn(2, 3, requires_grad=True)
    total = torch.softmax(logits, 1).sum() * 0 + out
    total.backward()  # no error, no NaN gradients
    assert torch.isfinite(logits.grad).all()


# --- the CPU loader and loss (the reference's LossData batches) ------------------------------------
@pytest.fixture(scope="module")
def random_ctx(digits):
    plan = SplitPlan.create(digits, 0, "random:0.1")
    factory = lambda: create_model("cnn", 10, digits.in_shape)  # noqa: E731
    return UnlearnContext(factory().eval(), DeviceData(digits, "cpu"), plan, RECIPE, factory, seed=0)


def _one_pass(ctx, pool, relabel, batch_size=128):
    out = list(mixed_batches(ctx, pool, relabel, batch_size, False, torch.Generator().manual_seed(0)))
    cat = lambda k: torch.cat([b[k].cpu() for b in out])  # noqa: E731
    return out, cat(1).numpy(), cat(2).numpy(), cat(3).numpy()


def test_mixed_batches_finetune_pool(random_ctx):
    # finetune+cpu: one shuffled pass over D_r (flag 0) and D_f (flag 1), true labels everywhere
    plan, labels = random_ctx.plan, random_ctx.data.dataset.labels.numpy()
    out, y, flag, idx = _one_pass(random_ctx, plan.retain, None)
    assert len(out) == math.ceil((len(plan.retain) + len(plan.forget)) / 128)
    assert all(len(b[0]) == 128 for b in out[:-1])
    assert sorted(idx[~flag]) == sorted(plan.retain) and sorted(idx[flag]) == sorted(plan.forget)
    assert (y == labels[idx]).all()
    # forget rows are shuffled in with the retain rows, not served as one block
    assert sum(bool(b[2].any()) for b in out) >= 2


def test_mixed_batches_rl_pool_sees_the_forget_set_twice(random_ctx):
    # rl+cpu: R = D_r ∪ relabelled D_f; D_f also appears with its true label under the hinge
    method = METHODS.get("rl+cpu")()
    cfg = method.parse_config({})
    method.prepare(random_ctx, cfg, random_ctx.original)
    plan, labels = random_ctx.plan, random_ctx.data.dataset.labels.numpy()
    assert method.steps_per_epoch(random_ctx, cfg) == math.ceil((len(plan.retain) + 2 * len(plan.forget)) / 128)
    _, y, flag, idx = _one_pass(random_ctx, method.pool, method.pool_relabel)
    in_forget = np.isin(idx, plan.forget)
    assert sorted(idx[flag]) == sorted(plan.forget) and (y[flag] == labels[idx[flag]]).all()
    relabelled = ~flag & in_forget
    assert sorted(idx[relabelled]) == sorted(plan.forget) and (y[relabelled] != labels[idx[relabelled]]).all()
    assert (y[~flag & ~in_forget] == labels[idx[~flag & ~in_forget]]).all()
    ft = METHODS.get("finetune+cpu")()
    ft_cfg = ft.parse_config({})
    ft.prepare(random_ctx, ft_cfg, random_ctx.original)
    assert ft.steps_per_epoch(random_ctx, ft_cfg) == math.ceil((len(plan.retain) + len(plan.forget)) / 128)


class _Counting(torch.nn.Module):
    """Identity on logits that counts forward calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x


def test_cpu_loss_on_a_mixed_batch_hand_computed():
    # retain rows: logits (0, 0) y=0 -> CE ln 2; (ln 3, 0) y=0 -> p = 3/4, CE -ln(3/4); mean of the two.
    # forget rows: (ln 9, 0) y=0 -> p_y 0.9 -> max(0, 0.9 - 0.7 + 0.05) = 0.25; (0, 0) y=1 -> 0.5 -> 0.
    # q_hat 0.3, delta 0.05, lambda 0.5: L = (ln 2 - ln 0.75) / 2 + 0.5 * 0.125
    x = torch.tensor([[0.0, 0.0], [math.log(3), 0.0], [math.log(9), 0.0], [0.0, 0.0]])
    y = torch.tensor([0, 0, 0, 1])
    is_forget = torch.tensor([False, False, True, True])
    method = METHODS.get("finetune+cpu")()
    cfg = method.parse_config({"lambda": 0.5, "delta": 0.05})
    method.qhat = 0.3
    model = _Counting()
    loss = method.loss(None, cfg, model, Batch(extra={"cpu_mixed": (x, y, is_forget)}))
    assert float(loss) == pytest.approx((math.log(2) - math.log(0.75)) / 2 + 0.0625, rel=1e-6)
    assert model.calls == 1  # one forward over the mixed batch, as the reference's model(x)
    # a batch of forget rows only: the CE term is 0 (the reference's CE of nothing is NaN)
    only = method.loss(None, cfg, model, Batch(extra={"cpu_mixed": (x[2:], y[2:], is_forget[2:])}))
    assert float(only) == pytest.approx(0.0625, rel=1e-6)


# --- conformal machinery -----------------------------------------------------------------------
def test_conformal_quantile_hand_computed():
    # n = 9, alpha = 0.1: level = ceil(10 * 0.9) / 9 = 9/9 = 1 -> the largest score
    scores = np.array([0.1, 0.5, 0.3, 0.9, 0.2, 0.4, 0.8, 0.7, 0.6])
    assert conformal_quantile(scores, 0.1) == 0.9
    # n = 19, alpha = 0.2: level = ceil(20 * 0.8) / 19 = 16/19 = 0.842; "higher" on 0.00..0.18 -> index
    # ceil(0.842 * 18) = ceil(15.16) = 16 -> 0.16
    assert conformal_quantile(np.arange(19) / 100, 0.2) == pytest.approx(0.16)


def test_conformal_quantile_too_small_and_bad_alpha():
    with pytest.raises(ConfigError, match="too small for alpha=0.05: need at least 19"):
        conformal_quantile(np.zeros(18), 0.05)
    with pytest.raises(ConfigError, match=r"\(0, 1\)"):
        conformal_quantile(np.zeros(50), 1.5)


def test_prediction_sets_and_cr():
    probs = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [0.05, 0.05, 0.9]])
    labels = np.array([0, 1, 0])
    np.testing.assert_allclose(lac_scores(probs, labels), [0.3, 0.65, 0.95])
    sets = prediction_sets(probs, 0.7)  # threshold 0.3
    assert sets.tolist() == [[True, False, False], [True, True, False], [False, False, True]]
    cr = coverage_ratio(probs, labels, 0.7)  # covered: yes, yes, no -> 2/3; sizes 1, 2, 1 -> 4/3
    assert cr["coverage"] == pytest.approx(2 / 3) and cr["size"] == pytest.approx(4 / 3)
    assert cr["CR"] == pytest.approx(0.5)
    assert coverage_ratio(probs, labels, 0.0)["CR"] == 0.0  # every set empty: guarded


# --- SalUn mask, RL labels ---------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.1, 0.5, 1.0])
def test_saliency_mask_ratio(ratio):
    g = {"a": torch.arange(10.0).reshape(2, 5) - 4.5, "b": torch.tensor([100.0, -0.01, 3.0, 7.0, -8.0,
                                                                            0.5, 0.25, 9.0, -9.5, 1.0])}
    mask = saliency_mask(g, ratio)
    kept = sum(int(m.sum()) for m in mask.values())
    assert kept == round(ratio * 20)
    if ratio == 0.1:  # the two largest |g|: 100 and 9.5
        assert mask["b"][0] and mask["b"][8] and not mask["a"].any()


def test_random_labels_never_true_and_seeded():
    y = np.arange(1000) % 10
    a = random_other_labels(y, 10, torch.Generator().manual_seed(3))
    b = random_other_labels(y, 10, torch.Generator().manual_seed(3))
    assert (a != y).all() and np.array_equal(a, b) and set(a) == set(range(10))


# --- end to end on digits -----------------------------------------------------------------------
RECIPE = TrainConfig(epochs=8, batch_size=64, lr=0.05)


@pytest.fixture(scope="module")
def ctx(digits):
    plan = SplitPlan.create(digits, 0, "class:3")
    data = DeviceData(digits, "cpu")
    seed_everything(0)
    model = create_model("cnn", 10, digits.in_shape)
    train(model, data, plan.train, RECIPE, seed=0)
    return UnlearnContext(model.eval(), data, plan, RECIPE, lambda: create_model("cnn", 10, digits.in_shape), seed=0)


def _forget_acc(ctx, model):
    idx = ctx.plan.forget
    return accuracy(evaluate(model, ctx.data, idx), ctx.data.dataset.labels.numpy()[idx])


def _test_retain_acc(ctx, model):
    labels = ctx.data.dataset.labels.numpy()
    idx = ctx.plan.test[labels[ctx.plan.test] != 3]
    return accuracy(evaluate(model, ctx.data, idx), labels[idx])


def test_salun_leaves_masked_out_weights_bitwise(ctx):
    method = METHODS.get("salun")()
    cfg = method.parse_config({"epochs": 2, "mask_ratio": 0.3})
    model = method.run(ctx, cfg)
    moved = frozen = 0
    for n, p in model.named_parameters():
        p0 = dict(ctx.original.named_parameters())[n]
        m = method.mask[n]
        assert torch.equal(p[~m], p0[~m])
        frozen += int((~m).sum())
        moved += int((p[m] != p0[m]).sum())
    assert moved > 0 and frozen > 0 and method.kept_fraction() == pytest.approx(0.3, abs=1e-4)


def test_calibration_restores_train_mode(ctx):
    model = create_model("cnn", 10, ctx.data.dataset.in_shape).train()
    idx = cpu_calibration_indices(ctx.plan, ctx.data.dataset.labels.numpy(), 100, 0)
    q = calibrate(model, ctx, idx, 0.1, keep_eval=False)
    assert model.training and 0 <= q <= 1
    calibrate(model, ctx, idx, 0.1, keep_eval=True)
    assert not model.training
    labels = ctx.data.dataset.labels.numpy()
    assert (labels[idx] != 3).all() and not set(idx) & set(ctx.plan.calibration)


@pytest.mark.parametrize("name, params", [("rl", {}), ("salun", {}), ("finetune+cpu", {}),
                                          ("rl+cpu", {"epochs": 3}), ("salun+cpu", {"epochs": 3}),
                                          ("retrain+cpu", {"epochs": 4})])
def test_methods_forget_class_3(ctx, name, params):
    before = _forget_acc(ctx, ctx.original)
    res = unlearn(name, params, ctx)
    assert _forget_acc(ctx, res.model) < before - 0.3, name
    if name in ("rl", "salun", "finetune+cpu"):
        # utility: accuracy on the test samples of the remaining classes (class 3 is meant to drop)
        assert _test_retain_acc(ctx, res.model) >= _test_retain_acc(ctx, ctx.original) - 0.10, name


def _forget_coverage(ctx, model, alpha=0.05):
    """Fraction of D_f whose true label is in its conformal set (q_hat on the metrics' calibration
    split, remaining classes), the quantity the CPU hinge pushes down."""
    labels = ctx.data.dataset.labels.numpy()
    cal = ctx.plan.calibration[labels[ctx.plan.calibration] != 3]
    probs = lambda idx: torch.softmax(torch.as_tensor(evaluate(model, ctx.data, idx)), 1).numpy()  # noqa: E731
    qhat = conformal_quantile(lac_scores(probs(cal), labels[cal]), alpha)
    return coverage_ratio(probs(ctx.plan.forget), labels[ctx.plan.forget], qhat)["coverage"]


def test_cpu_hinge_pushes_labels_out_of_conformal_sets(ctx):
    ft = _forget_coverage(ctx, unlearn("finetune", {"epochs": 5}, ctx).model)
    cpu = _forget_coverage(ctx, unlearn("finetune+cpu", {"epochs": 5}, ctx).model)
    assert cpu < ft - 0.5  # measured 0.96 -> 0.15 (ctx seeds 1, 2: 0.01, 0.06) on this setup


@pytest.mark.parametrize("params, field", [({"alpha": 1.5}, "alpha"), ({"lambda": -1}, "lambda"),
                                           ({"delta": -0.1}, "delta"), ({"nope": 1}, "nope")])
def test_bad_cpu_config(params, field):
    with pytest.raises(ConfigError, match=field):
        METHODS.get("finetune+cpu").parse_config(params)


def test_lambda_alias():
    assert METHODS.get("finetune+cpu").parse_config({"lambda": 0.5}).lam == 0.5
    assert METHODS.get("salun+cpu").parse_config({"lam": 0.25, "mask_ratio": 0.2}).lam == 0.25


def test_alpha_too_small_for_calibration_refused_before_compute(ctx):
    with pytest.raises(ConfigError, match="too few for alpha"):
        METHODS.get("finetune+cpu").check(ctx.plan, METHODS.get("finetune+cpu").parse_config({"alpha": 0.001}))
