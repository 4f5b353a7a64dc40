"""Boundary Shrink / Expanding, IEU (our formalisation) and PRU: pure pieces and behaviour on digits."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from expunge.config import TrainConfig
from expunge.data import DeviceData, SplitPlan
from expunge.errors import ConfigError
from expunge.models import create_model
from expunge.train import accuracy, evaluate, seed_everything, train
from expunge.unlearn import METHODS, Batch, UnlearnContext, unlearn
from expunge.unlearn.boundary import fgsm_neighbour_labels
from expunge.unlearn.ieu import IEU, noise_sigma
from expunge.unlearn.pru import (PRU, cluster_loss, sample_loss, soft_targets, soft_targets_from_logits,
                                 task_loss)


# --- fixtures: one small cnn trained once on digits, class 3 forgotten --------------------------
@pytest.fixture(scope="module")
def setup(digits):
    data = DeviceData(digits, "cpu")
    plan = SplitPlan.create(digits, 0, "class:3")
    cfg = TrainConfig(epochs=8, batch_size=64, lr=0.05)
    seed_everything(0)
    model = create_model("cnn", 10, digits.in_shape)
    train(model, data, plan.train, cfg, seed=0)
    ctx = UnlearnContext(model, data, plan, cfg, lambda: create_model("cnn", 10, digits.in_shape), seed=0)
    return ctx, _accuracies(model, ctx)


def _accuracies(model, ctx) -> tuple[float, float]:
    """(forget-class test accuracy, remaining-class test accuracy)."""
    labels = ctx.data.dataset.labels.numpy()[ctx.plan.test]
    logits = evaluate(model, ctx.data, ctx.plan.test)
    c = ctx.plan.forget_class
    return accuracy(logits[labels == c], labels[labels == c]), accuracy(logits[labels != c], labels[labels != c])


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --- PRU pure functions --------------------------------------------------------------------------
def test_soft_targets_hand_computed():
    p = torch.tensor([[0.5, 0.3, 0.2]])
    # c = 0: 1 - p_0 = 0.5 -> [0, 0.3/0.5, 0.2/0.5] = [0, 0.6, 0.4]
    torch.testing.assert_close(soft_targets(p, 0), torch.tensor([[0.0, 0.6, 0.4]]))
    # c = 1: 1 - p_1 = 0.7 -> [0.5/0.7, 0, 0.2/0.7] = [0.714286, 0, 0.285714]
    torch.testing.assert_close(soft_targets(p, 1), torch.tensor([[5 / 7, 0.0, 2 / 7]]))
    # p_c = 1: the clamp keeps it finite (no mass to redistribute -> all zeros)
    out = soft_targets(torch.tensor([[1.0, 0.0, 0.0]]), 0)
    assert torch.isfinite(out).all() and float(out.sum()) == 0.0
    # the stable logits form agrees with the probability form
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(soft_targets_from_logits(logits, 2), soft_targets(torch.softmax(logits, 1), 2))
    # a very confident reference model still gives a proper distribution over k != c
    sharp = soft_targets_from_logits(torch.tensor([[200.0, 1.0, 0.0]]), 0)
    torch.testing.assert_close(sharp.sum(1), torch.ones(1))
    assert float(sharp[0, 0]) == 0.0


def test_cluster_loss_hand_computed():
    # centroids mu_0 = (0,0) [mean of (-1,0),(1,0)], mu_1 = (3,0), mu_2 = (0,4) [mean of (0,3),(0,5)]
    # pairwise distances 3, 4, 5 (a 3-4-5 triangle); ordered-pair sum 24, |K|(|K|-1) = 6 -> D_c = 4
    z = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 3.0], [0.0, 5.0]])
    g = torch.tensor([0, 0, 1, 2, 2])
    assert math.isclose(float(cluster_loss(z, g, 1.0)), 1 / (24 / (6 + 1e-6) + 1e-6), rel_tol=1e-6)
    assert math.isclose(float(cluster_loss(z, g, 1.0)), 0.25, rel_tol=1e-5)
    # lambda_shift = 2 halves D_c: L = 1 / 2 = 0.5
    assert math.isclose(float(cluster_loss(z, g, 2.0)), 0.5, rel_tol=1e-5)
    # two groups (0,0) and (3,4): ordered sum 10 / 2 = 5 -> L = 0.2
    assert math.isclose(float(cluster_loss(torch.tensor([[0.0, 0.0], [3.0, 4.0]]), torch.tensor([0, 1]))), 0.2,
                        rel_tol=1e-5)
    # one group: 0 (see the module docstring) and still differentiable
    zz = z.clone().requires_grad_(True)
    out = cluster_loss(zz, torch.zeros(5, dtype=torch.long))
    out.backward()
    assert float(out.detach()) == 0.0 and torch.equal(zz.grad, torch.zeros_like(zz))
    # the gradient pushes centroids apart: stepping against it lowers the loss
    zz = z.clone().requires_grad_(True)
    cluster_loss(zz, g).backward()
    assert float(cluster_loss(z - 0.1 * zz.grad, g)) < 0.25


def test_sample_loss_hand_computed():
    # group 0: a 3-4-5 triangle (0,0),(3,0),(0,4): ordered-pair sum 2*(3+4+5) = 24, / (3*2) -> 4
    # group 1: (0,0),(6,8): distance 10, ordered sum 20, / (2*1) -> 10
    # group 2: a single point -> skipped.   mean(4, 10) = 7
    z = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [0.0, 0.0], [6.0, 8.0], [9.0, 9.0]])
    g = torch.tensor([0, 0, 0, 1, 1, 2])
    assert math.isclose(float(sample_loss(z, g)), 7.0, rel_tol=1e-6)
    assert float(sample_loss(z[[0, 3, 5]], torch.tensor([0, 1, 2]))) == 0.0  # no group with 2 members


def test_task_loss_is_the_reference_kl():
    h = torch.tensor([[2.0, 0.0, -1.0]])
    target = torch.tensor([[0.0, 0.6, 0.4]])
    q = torch.softmax(h, 1) + 1e-6
    expected = float((0.6 * (math.log(0.6) - math.log(q[0, 1]))) + 0.4 * (math.log(0.4) - math.log(q[0, 2])))
    assert math.isclose(float(task_loss(h, target)), expected, rel_tol=1e-5)


# --- IEU pure pieces -----------------------------------------------------------------------------
def test_noise_sigma_schedules():
    T = 100
    assert [noise_sigma(0.1, t, T, "constant") for t in (0, 50, 100)] == [0.1, 0.1, 0.1]
    lin = [noise_sigma(0.1, t, T, "linear") for t in (0, 50, 100)]        # 0.1 (1 - t/T)
    cos = [noise_sigma(0.1, t, T, "cosine") for t in (0, 50, 100)]        # 0.1 * 0.5 (1 + cos(pi t/T))
    np.testing.assert_allclose(lin, [0.1, 0.05, 0.0], atol=1e-12)
    np.testing.assert_allclose(cos, [0.1, 0.05, 0.0], atol=1e-12)
    assert noise_sigma(0.1, 25, T, "cosine") > noise_sigma(0.1, 25, T, "linear")  # 0.0854 > 0.075
    with pytest.raises(ValueError, match="noise schedule"):
        noise_sigma(0.1, 0, T, "exp")


def test_ieu_adds_scheduled_weight_noise(setup):
    ctx, _ = setup
    cfg = IEU.parse_config({"sigma": 0.1, "noise_schedule": "constant"})
    method, model = IEU(), copy.deepcopy(ctx.original)
    method.prepare(ctx, cfg, model)
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    method.after_step(ctx, cfg, model, 0)
    delta = torch.cat([p.detach().flatten() for p in model.parameters()]) - before
    assert method.step == 1 and abs(float(delta.std()) - 0.1) < 0.01 and abs(float(delta.mean())) < 0.01
    # at the end of a linear schedule the noise is 0
    cfg = IEU.parse_config({"sigma": 0.1, "noise_schedule": "linear"})
    method.prepare(ctx, cfg, model)
    method.step = method.total
    before = _state(model)
    method.after_step(ctx, cfg, model, 0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_ieu_loss_terms(setup):
    ctx, _ = setup
    cfg = IEU.parse_config({"beta": 0.5, "lambda_wd": 0.01})
    model = copy.deepcopy(ctx.original).eval()
    xr, yr, _ = next(ctx.loader("retain", 32, shuffle=False))
    xf, yf, _ = next(ctx.loader("forget", 16, shuffle=False))
    got = IEU().loss(ctx, cfg, model, Batch(retain=(xr, yr), forget=(xf, yf)))
    ce = torch.nn.functional.cross_entropy
    with torch.no_grad():
        sq = sum(float(p.pow(2).sum()) for p in model.parameters())
        expected = float(ce(model(xr), yr)) - 0.5 * float(ce(model(xf), yf)) + 0.005 * sq
    assert math.isclose(float(got.detach()), expected, rel_tol=1e-4)


def test_ieu_is_deterministic_and_noise_depends_on_seed(setup):
    ctx, _ = setup
    params = {"epochs": 1, "sigma": 1e-2}
    a = _state(unlearn("ieu", params, ctx).model)
    b = _state(unlearn("ieu", params, ctx).model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = _state(unlearn("ieu", params, UnlearnContext(**{**ctx.__dict__, "seed": 1})).model)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    d = _state(unlearn("ieu", {**params, "sigma": 0.0}, ctx).model)  # same batches, no noise
    assert any(not torch.equal(a[k], d[k]) for k in a)


@pytest.mark.parametrize("params, field", [
    ({"sigma": -0.1}, "sigma"), ({"noise_schedule": "exp"}, "noise_schedule"), ({"beta": -1}, "beta"),
    ({"lambda_wd": -1e-3}, "lambda_wd"), ({"weight_decay": 5e-4}, "weight_decay"),
])
def test_ieu_bad_configs_name_the_field(params, field):
    with pytest.raises(ConfigError, match=field):
        METHODS.get("ieu").parse_config(params)


def test_pru_bad_configs():
    with pytest.raises(ConfigError, match="refine_freeze"):
        PRU.parse_config({"refine_freeze": "both"})
    with pytest.raises(ConfigError, match="rounds"):
        PRU.parse_config({"epochs": 3})  # the message points to rounds / shift_lr / refine_lr
    with pytest.raises(ConfigError, match="shift_lr"):
        PRU.parse_config({"shift_lr": 0})


def test_search_spaces_sample_valid_configs():
    import random

    rng = random.Random(0)
    for name in ("boundary_shrink", "boundary_expanding", "ieu", "pru"):
        cls = METHODS.get(name)
        space = cls.Config.search_space()
        assert space
        cls.parse_config({k: d.sample(rng) for k, d in space.items()})


# --- behaviour on digits class:3 (default configs) ------------------------------------------------
def _assert_forgets(model, ctx, orig):
    forget, rest = _accuracies(model, ctx)
    assert forget <= 0.5 * orig[0], (forget, rest, orig)
    assert rest >= orig[1] - 0.15, (forget, rest, orig)


def test_boundary_shrink_forgets(setup):
    ctx, orig = setup
    before = _state(ctx.original)
    # defaults: the reference lr 1e-5 barely moves the weights here; on this BN cnn it is the train-mode
    # pass over forget images (BN running statistics, as in the reference) that drops forget accuracy
    # (see the boundary module docstring)
    _assert_forgets(unlearn("boundary_shrink", {}, ctx).model, ctx, orig)
    assert all(torch.equal(before[k], v) for k, v in ctx.original.state_dict().items())
    # a trained model's FGSM neighbours never keep the true label (runner-up fallback)
    x, y, _ = next(ctx.loader("forget", 64, shuffle=False))
    probe = copy.deepcopy(ctx.original).eval()
    labels = fgsm_neighbour_labels(probe, x, y, 0.1, ctx.data.mean, ctx.data.std)
    assert not (labels == y).any()
    # a larger lr (the small-model setting) trains D_f onto the neighbour labels: forgets it completely
    _assert_forgets(unlearn("boundary_shrink", {"lr": 3e-3}, ctx).model, ctx, orig)


def test_boundary_expanding_forgets_and_keeps_the_head_shape(setup, digits):
    ctx, orig = setup
    model = unlearn("boundary_expanding", {}, ctx).model  # defaults; same BN remark as boundary_shrink
    _assert_forgets(model, ctx, orig)
    ref = ctx.original.state_dict()
    got = model.state_dict()
    assert list(got) == list(ref) and all(got[k].shape == ref[k].shape for k in ref)
    fresh = create_model("cnn", 10, digits.in_shape)
    fresh.load_state_dict(got)  # strict
    x, _, _ = next(ctx.loader("forget", 8, shuffle=False))
    assert model(x).shape == (8, 10)
    torch.testing.assert_close(fresh.eval()(x), model(x))


def test_ieu_forgets(setup):
    ctx, orig = setup
    _assert_forgets(unlearn("ieu", {}, ctx).model, ctx, orig)


def test_pru_forgets_without_retain_data(setup):
    ctx, orig = setup
    forget = torch.as_tensor(ctx.plan.forget)
    calls: list[str] = []
    data = copy.copy(ctx.data)
    inner_batch = data.batch

    def only_forget(idx, *args, **kwargs):
        assert torch.isin(idx.cpu(), forget).all(), "PRU drew a non-forget sample"
        return inner_batch(idx, *args, **kwargs)

    data.batch = only_forget
    guarded = UnlearnContext(**{**ctx.__dict__, "data": data})
    inner_loader = guarded.loader

    def loader(which, *args, **kwargs):
        calls.append(which)
        return inner_loader(which, *args, **kwargs)

    guarded.loader = loader
    epochs = []
    guarded.callback = lambda rec: epochs.append((rec["epoch"], rec["stage"]))
    model = unlearn("pru", {}, guarded).model
    assert set(calls) == {"forget"}
    assert epochs[:2] == [(1, "shift"), (2, "refine")] and len(epochs) == 20
    assert all(p.requires_grad for p in model.parameters())
    # the reference freezes the classifier in both stages
    assert torch.equal(model.state_dict()["fc.weight"], ctx.original.state_dict()["fc.weight"])
    _assert_forgets(model, ctx, orig)


def test_pru_refine_freezes_features_when_asked(setup):
    ctx, orig = setup
    model = unlearn("pru", {"rounds": 1, "shift_lr": 1e-9, "refine_freeze": "features", "augment": False}, ctx).model
    # shift stage at lr ~0 barely moves the features; only the refine stage (fc only) moves anything
    ref = ctx.original.state_dict()
    conv_keys = [k for k in ref if k.startswith("body.") and k.endswith("weight")]
    assert all(torch.allclose(model.state_dict()[k], ref[k], atol=1e-6) for k in conv_keys)
    assert not torch.equal(model.state_dict()["fc.weight"], ref["fc.weight"])


def _bn_updates(model) -> int:
    return sum(int(m.num_batches_tracked) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_pru_shift_runs_the_model_twice_per_batch(setup):
    # The reference computes z with get_representation(x) and h with model(x): two train-mode passes per
    # shift step, one per refine step. With one round and one refine epoch over n batches, every
    # BatchNorm layer counts 2n + n batches.
    ctx, _ = setup
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in ctx.original.modules())
    n = math.ceil(len(ctx.plan.forget) / 128)
    model = unlearn("pru", {"rounds": 1, "refine_epochs": 1}, ctx).model
    assert _bn_updates(model) - _bn_updates(ctx.original) == n_bn * 3 * n
    model = unlearn("pru", {"rounds": 2, "refine_epochs": 0}, ctx).model
    assert _bn_updates(model) - _bn_updates(ctx.original) == n_bn * 2 * 2 * n


def test_pru_builds_a_new_optimizer_every_epoch(setup, monkeypatch):
    # the reference creates its SGD inside each stage's epoch loop: rounds x (1 + refine_epochs) optimizers
    import expunge.unlearn.pru as pru_module

    ctx, _ = setup
    built = []
    inner = pru_module.build_optimizer

    def counting(params, view):
        built.append(view.lr)
        return inner(params, view)

    monkeypatch.setattr(pru_module, "build_optimizer", counting)
    unlearn("pru", {"rounds": 2, "refine_epochs": 3, "shift_lr": 1e-3, "refine_lr": 1e-3}, ctx)
    assert len(built) == 2 * (1 + 3)


@pytest.mark.parametrize("recipe_augment, param, expected", [(True, None, True), (False, None, False),
                                                              (True, False, False), (False, True, True)])
def test_pru_augmentation_follows_the_original_recipe(setup, recipe_augment, param, expected):
    ctx, _ = setup
    seen = []
    local = UnlearnContext(**{**ctx.__dict__, "train_cfg": ctx.train_cfg.model_copy(update={"augment": recipe_augment})})
    inner = local.loader

    def loader(which, *args, **kwargs):
        seen.append(kwargs["augment"])
        return inner(which, *args, **kwargs)

    local.loader = loader
    params = {"rounds": 1, "refine_epochs": 0} | ({} if param is None else {"augment": param})
    unlearn("pru", params, local)
    assert seen and set(seen) == {expected}


def test_pru_refuses_random_forgetting_before_compute(setup, digits, monkeypatch):
    ctx, _ = setup
    random_ctx = UnlearnContext(**{**ctx.__dict__, "plan": SplitPlan.create(digits, 0, "random:0.1")})
    ran = []
    monkeypatch.setattr(PRU, "run", lambda self, c, cfg: ran.append(1))
    with pytest.raises(ConfigError, match="pru.*class"):
        unlearn("pru", {}, random_ctx)
    assert not ran
