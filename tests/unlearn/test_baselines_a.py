"""Baselines A: NegGrad+, l1-sparse, SCRUB, Bad Teacher, SSD, Fisher forgetting.

Pure pieces are checked against hand-computed values; each method then runs through
``expunge.unlearn.unlearn`` on a small cnn trained once on digits (class 3 forgotten, and a random
10 % forgotten). Where a literature default is calibrated for CIFAR-scale runs and does nothing (or
too much) on 8x8 digits, the test says so next to its override.
"""
from __future__ import annotations

import copy
import math
import random
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from expunge.config import TrainConfig
from expunge.data import DeviceData, SplitPlan
from expunge.errors import ConfigError
from expunge.models import create_model
from expunge.train import accuracy, evaluate, seed_everything, train
from expunge.unlearn import METHODS, Batch, UnlearnContext, unlearn
from expunge.unlearn.bad_teacher import BadTeacher, bad_teacher_loss
from expunge.unlearn.fisher import diag_fisher, fisher_mean_var
from expunge.unlearn.l1_sparse import L1Sparse, l1_alpha, l1_norm
from expunge.unlearn.neggrad_plus import neggrad_plus_loss
from expunge.unlearn.scrub import SCRUB, distill_kl
from expunge.unlearn.ssd import batch_importance, ssd_dampen

OURS = ("neggrad+", "l1_sparse", "scrub", "bad_teacher", "ssd", "fisher")


# --- fixtures: a small cnn trained once per forget spec -------------------------------------------
def _context(digits, spec: str) -> UnlearnContext:
    data = DeviceData(digits, "cpu")
    plan = SplitPlan.create(digits, 0, spec)
    cfg = TrainConfig(epochs=8, batch_size=64, lr=0.05)
    seed_everything(0)
    model = create_model("cnn", 10, digits.in_shape)
    train(model, data, plan.train, cfg, seed=0)
    return UnlearnContext(model, data, plan, cfg, lambda: create_model("cnn", 10, digits.in_shape), seed=0)


def _metrics(model, ctx: UnlearnContext) -> dict[str, float]:
    labels = ctx.data.dataset.labels.numpy()
    out = {"forget": accuracy(evaluate(model, ctx.data, ctx.plan.forget), labels[ctx.plan.forget])}
    test_logits, test_labels = evaluate(model, ctx.data, ctx.plan.test), labels[ctx.plan.test]
    c = ctx.plan.forget_class
    if c is not None:
        out["test_class"] = accuracy(test_logits[test_labels == c], test_labels[test_labels == c])
        out["test_rest"] = accuracy(test_logits[test_labels != c], test_labels[test_labels != c])
    else:
        out["test"] = accuracy(test_logits, test_labels)
    return out


@pytest.fixture(scope="module")
def class_ctx(digits):
    ctx = _context(digits, "class:3")
    return ctx, _metrics(ctx.original, ctx)


@pytest.fixture(scope="module")
def random_ctx(digits):
    ctx = _context(digits, "random:0.1")
    return ctx, _metrics(ctx.original, ctx)


# --- registration and configuration --------------------------------------------------------------
def test_registered_with_typed_configs_and_search_spaces():
    for name in OURS:
        cls = METHODS.get(name)
        assert cls.name == name
        cfg = cls.parse_config({})
        space = cls.Config.search_space()
        assert space, name
        assert set(space) <= set(cls.Config.model_fields), (name, set(space) - set(cls.Config.model_fields))
        rng = random.Random(0)
        for _ in range(3):  # every sampled point is a valid config
            cls.parse_config({k: d.sample(rng) for k, d in space.items()})
        assert cfg.model_dump() == cls.parse_config(cfg.model_dump()).model_dump()


def test_documented_defaults():
    assert METHODS.get("neggrad+").parse_config({}).beta == 0.001                      # CPU ga_plus
    l1 = METHODS.get("l1_sparse").parse_config({})
    assert (l1.lr, l1.epochs, l1.alpha, l1.no_l1_epochs) == (0.01, 10, 5e-4, 0)       # Sparse README + ours
    s = METHODS.get("scrub").parse_config({})
    assert (s.msteps, s.kd_T, s.gamma, s.alpha, s.lr) == (5, 2.0, 1.0, 1.0, 5e-4)      # CPU command, SCRUB lr
    b = METHODS.get("bad_teacher").parse_config({})
    assert (b.optimizer, b.weight_decay, b.lr, b.kd_T, b.epochs, b.retain_ratio) == ("adamw", 0.0, 1e-4, 1.0, 1, 1.0)
    d = METHODS.get("ssd").parse_config({})
    assert (d.selection_weighting, d.dampening_constant, d.exponent, d.lower_bound) == (10.0, 1.0, 1.0, 1.0)
    assert METHODS.get("fisher").parse_config({}).alpha == 1e-6


@pytest.mark.parametrize("name, params, field", [
    ("neggrad+", {"beta": -0.5}, "beta"),
    ("neggrad+", {"gamma": 1.0}, "gamma"),                 # unknown key
    ("l1_sparse", {"alpha": -1e-3}, "alpha"),
    ("l1_sparse", {"no_l1_epochs": -1}, "no_l1_epochs"),
    ("scrub", {"kd_T": 0}, "kd_T"),
    ("scrub", {"msteps": -1}, "msteps"),
    ("scrub", {"beta": 1.0}, "beta"),                      # the CPU name of the KL weight is not ours
    ("bad_teacher", {"retain_ratio": 0}, "retain_ratio"),
    ("bad_teacher", {"teacher": "random"}, "teacher"),
    ("ssd", {"selection_weighting": -10}, "selection_weighting"),
    ("ssd", {"lambda": 1.0}, "lambda"),
    ("fisher", {"alpha": 0}, "alpha"),
    ("fisher", {"fisher": "exact"}, "fisher"),
])
def test_bad_config_names_the_field(name, params, field, class_ctx):
    ctx, _ = class_ctx
    with pytest.raises(ConfigError, match=rf"method {re.escape(name)}: .*{field}"):
        unlearn(name, params, ctx)


# --- NegGrad+ -------------------------------------------------------------------------------------
def test_neggrad_plus_loss_hand_computed():
    r_logits, r_y = torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    f_logits, f_y = torch.tensor([[0.0, 0.0]]), torch.tensor([1])
    ce_r = math.log(1 + math.exp(-2.0))       # 0.126928
    ce_f = math.log(2.0)                      # 0.693147
    assert math.isclose(float(neggrad_plus_loss(r_logits, r_y, f_logits, f_y, 0.5)), ce_r - 0.5 * ce_f,
                        rel_tol=1e-6)         # -0.219646
    assert math.isclose(float(neggrad_plus_loss(r_logits, r_y, f_logits, f_y, 0.0)), ce_r, rel_tol=1e-6)
    # the gradient on the forget logits points up the forget CE (ascent)
    f = f_logits.clone().requires_grad_(True)
    neggrad_plus_loss(r_logits, r_y, f, f_y, 1.0).backward()
    # d(-CE)/dz = -(softmax - onehot) = -([0.5, 0.5] - [0, 1]) = [-0.5, 0.5]
    torch.testing.assert_close(f.grad, torch.tensor([[-0.5, 0.5]]))


# --- l1-sparse ------------------------------------------------------------------------------------
def test_l1_alpha_linear_decay():
    # E = 10, n = 0: alpha (1 - t/10)
    np.testing.assert_allclose([l1_alpha(0.1, t, 10, 0) for t in (0, 5, 9)], [0.1, 0.05, 0.01])
    assert l1_alpha(0.1, 10, 10, 0) == 0.0
    # E = 10, n = 4: decays over the first 6 epochs, then 0 for the last 4
    np.testing.assert_allclose([l1_alpha(0.1, t, 10, 4) for t in (0, 3, 5)], [0.1, 0.05, 0.1 / 6])
    assert [l1_alpha(0.1, t, 10, 4) for t in (6, 7, 9)] == [0.0, 0.0, 0.0]
    # E - n = 0: the reference keeps alpha constant; n > E: no l1 at all
    assert [l1_alpha(0.1, t, 3, 3) for t in (0, 2)] == [0.1, 0.1]
    assert l1_alpha(0.1, 0, 3, 5) == 0.0


def test_l1_sparse_loss_adds_the_decayed_norm(class_ctx):
    ctx, _ = class_ctx
    model = copy.deepcopy(ctx.original)
    method, cfg = L1Sparse(), L1Sparse.parse_config({"alpha": 0.01, "epochs": 4})
    method.prepare(ctx, cfg, model)
    x, y = ctx.data.batch(torch.as_tensor(ctx.plan.retain[:16]))
    batch = Batch(retain=(x, y))
    model.eval()
    with torch.no_grad():
        ce = float(F.cross_entropy(model(x), y))
        norm = float(sum(p.abs().sum() for p in model.parameters()))
        assert math.isclose(float(l1_norm(model)), norm, rel_tol=1e-5)
    for epoch, a in ((0, 0.01), (2, 0.005)):
        list(method.batches(ctx, cfg, epoch, ctx.generator(1)))
        assert math.isclose(float(method.loss(ctx, cfg, model, batch).detach()), ce + a * norm, rel_tol=1e-5)


# --- SCRUB ----------------------------------------------------------------------------------------
def test_distill_kl_hand_computed():
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[math.log(3.0), 0.0]])
    # T = 1: KL([.75, .25] || [.5, .5]) = .75 ln 1.5 + .25 ln .5 = 0.130812
    assert math.isclose(float(distill_kl(s, t, 1.0)), 0.75 * math.log(1.5) + 0.25 * math.log(0.5), rel_tol=1e-6)
    # T = 2: p_t = softmax([ln3 / 2, 0]) = [sqrt3, 1] / (sqrt3 + 1); times T^2 = 4
    p = math.sqrt(3) / (math.sqrt(3) + 1)
    expected = 4 * (p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p)))
    assert math.isclose(float(distill_kl(s, t, 2.0)), expected, rel_tol=1e-5)  # float32
    # batch mean, not sum
    assert math.isclose(float(distill_kl(s.repeat(3, 1), t.repeat(3, 1), 1.0)), float(distill_kl(s, t, 1.0)),
                        rel_tol=1e-6)


def test_scrub_batch_tagging_order(class_ctx):
    ctx, _ = class_ctx
    method = SCRUB()
    cfg = SCRUB.parse_config({"msteps": 2, "epochs": 4, "batch_size": 256, "forget_batch_size": 32})
    n_max = math.ceil(len(ctx.plan.forget) / 32)       # 105 -> 4
    n_min = math.ceil(len(ctx.plan.retain) / 256)      # 973 -> 4
    for epoch in range(4):
        batches = list(method.batches(ctx, cfg, epoch, ctx.generator(epoch + 1)))
        tags = [b.tag for b in batches]
        expected = (["max"] * n_max if epoch < 2 else []) + ["min"] * n_min
        assert tags == expected, (epoch, tags)
        assert all(b.forget is not None and b.retain is None for b in batches if b.tag == "max")
        assert all(b.retain is not None and b.forget is None for b in batches if b.tag == "min")
        if epoch < 2:  # the max steps see the forget set exactly once per epoch
            labels = torch.cat([b.forget[1] for b in batches if b.tag == "max"])
            assert len(labels) == len(ctx.plan.forget) and bool((labels == ctx.plan.forget_class).all())
    # schedule length: (4 epochs x 4 min + 2 epochs x 4 max) / 4 epochs = 6 steps per epoch
    assert method.steps_per_epoch(ctx, cfg) == math.ceil((4 * n_min + 2 * n_max) / 4)
    assert [b.tag for b in SCRUB().batches(ctx, SCRUB.parse_config({"msteps": 0}), 0, ctx.generator(1))] \
        == ["min"] * math.ceil(len(ctx.plan.retain) / 128)


def test_scrub_loss_branches_at_the_start(class_ctx):
    ctx, _ = class_ctx
    method, cfg = SCRUB(), SCRUB.parse_config({"gamma": 0.7, "alpha": 3.0})
    student = copy.deepcopy(ctx.original).eval()
    method.prepare(ctx, cfg, student)
    xf, yf = ctx.data.batch(torch.as_tensor(ctx.plan.forget[:8]))
    xr, yr = ctx.data.batch(torch.as_tensor(ctx.plan.retain[:8]))
    max_batch, min_batch = Batch(forget=(xf, yf), tag="max"), Batch(retain=(xr, yr), tag="min")
    with torch.no_grad():
        # student == teacher: the KL terms vanish; max loss is 0, min loss is gamma * CE
        assert abs(float(method.loss(ctx, cfg, student, max_batch))) < 1e-5
        ce = float(F.cross_entropy(student(xr), yr))
        assert math.isclose(float(method.loss(ctx, cfg, student, min_batch)), 0.7 * ce, rel_tol=1e-4)
        # a perturbed student: max loss = -KL_T(teacher || student) on the forget batch
        student.fc.bias.add_(torch.linspace(-1, 1, 10))
        kl = float(distill_kl(student(xf), ctx.original(xf), cfg.kd_T))
        assert kl > 0 and math.isclose(float(method.loss(ctx, cfg, student, max_batch)), -kl, rel_tol=1e-5)
        # and the min loss adds alpha * KL_T on the retain batch
        kl_r = float(distill_kl(student(xr), ctx.original(xr), cfg.kd_T))
        ce = float(F.cross_entropy(student(xr), yr))
        assert math.isclose(float(method.loss(ctx, cfg, student, min_batch)), 0.7 * ce + 3.0 * kl_r, rel_tol=1e-4)


# --- Bad Teacher ----------------------------------------------------------------------------------
def test_bad_teacher_loss_hand_computed():
    student = torch.tensor([[math.log(3.0), 0.0], [math.log(3.0), 0.0]])   # [.75, .25]
    good = torch.tensor([[math.log(3.0), 0.0], [math.log(3.0), 0.0]])      # [.75, .25]
    bad = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])       # [.25, .75]
    is_forget = torch.tensor([False, True])
    # row 0: KL(good || s) = 0; row 1: KL(bad || s) = .25 ln(1/3) + .75 ln 3 = .5 ln 3; batch mean
    assert math.isclose(float(bad_teacher_loss(student, good, bad, is_forget)), 0.25 * math.log(3.0), rel_tol=1e-6)
    assert float(bad_teacher_loss(student, good, bad, torch.tensor([False, False]))) < 1e-7


def test_bad_teacher_data_mix(class_ctx):
    ctx, _ = class_ctx
    method, cfg = BadTeacher(), BadTeacher.parse_config({"retain_ratio": 2.0})
    model = copy.deepcopy(ctx.original)
    method.prepare(ctx, cfg, model)
    nf = len(ctx.plan.forget)
    assert len(method.indices) == 3 * nf and len(np.unique(method.indices)) == 3 * nf
    assert np.isin(method.indices[nf:], ctx.plan.retain).all()
    seen = [b.extra["is_forget"] for b in method.batches(ctx, cfg, 0, ctx.generator(1))]
    assert int(torch.cat(seen).sum()) == nf and len(torch.cat(seen)) == 3 * nf
    # the incompetent teacher is a fresh model, reproducible from the context seed
    x, _ = ctx.data.batch(torch.as_tensor(ctx.plan.forget[:8]))
    assert not torch.allclose(method.bad(x), ctx.original.eval()(x))
    other = BadTeacher()
    other.prepare(ctx, cfg, model)
    torch.testing.assert_close(other.bad(x), method.bad(x))
    np.testing.assert_array_equal(other.indices, method.indices)


# --- SSD ------------------------------------------------------------------------------------------
def test_ssd_dampen_hand_computed():
    theta = {"w": torch.tensor([1.0, 2.0, 3.0])}
    imp_d = {"w": torch.tensor([1.0, 1.0, 1.0])}
    imp_f = {"w": torch.tensor([5.0, 20.0, 40.0])}
    # alpha = 10: select imp_f > 10 imp_d -> [no, yes, yes]; beta = 1 * 1 / imp_f -> [-, 0.05, 0.025]
    counts = ssd_dampen(theta, imp_d, imp_f, alpha=10.0, lam=1.0)
    torch.testing.assert_close(theta["w"], torch.tensor([1.0, 0.1, 0.075]))
    assert counts == {"w": 2}
    # lambda = 30: beta = [-, 1.5 -> clamped to 1, 0.75]: never amplified
    theta = {"w": torch.tensor([1.0, 2.0, 3.0])}
    ssd_dampen(theta, imp_d, imp_f, alpha=10.0, lam=30.0)
    torch.testing.assert_close(theta["w"], torch.tensor([1.0, 2.0, 2.25]))
    # exponent 2: beta = (1/20)^2, (1/40)^2
    theta = {"w": torch.tensor([1.0, 2.0, 3.0])}
    ssd_dampen(theta, imp_d, imp_f, alpha=10.0, lam=1.0, exponent=2.0)
    torch.testing.assert_close(theta["w"], torch.tensor([1.0, 2.0 / 400, 3.0 / 1600]))


def test_batch_importance_is_mean_squared_batch_gradient(class_ctx):
    ctx, _ = class_ctx
    model = copy.deepcopy(ctx.original).eval()
    idx = ctx.plan.forget[:40]
    imp = batch_importance(model, ctx.data, idx, 16)            # batches of 16, 16, 8
    expected = torch.zeros_like(model.fc.weight)
    for start in (0, 16, 32):
        x, y = ctx.data.batch(torch.as_tensor(idx[start:start + 16]))
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        expected += model.fc.weight.grad ** 2
    torch.testing.assert_close(imp["fc.weight"], expected / 3)


# --- Fisher forgetting ----------------------------------------------------------------------------
def test_fisher_mean_var_hand_computed():
    # 1-D parameter, random forgetting: 1/(F + 1e-8) clamped at 1e3, x alpha, x10 for 1-D
    p = torch.tensor([1.0, 2.0])
    mu, var = fisher_mean_var(p, torch.tensor([0.0, 1.0]), alpha=1e-6, head=False)
    torch.testing.assert_close(mu, p)
    torch.testing.assert_close(var, torch.tensor([1e-2, 1e-5]), rtol=1e-6, atol=0)
    # head weight (3 classes x 2): clamp at 1e2, alpha = 1, mean over dim 1 per row
    w = torch.ones(3, 2)
    fisher = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, 1.5]])
    rows = torch.tensor([100.0, 1.0, (2.0 + 1 / 1.5) / 2])
    _, var = fisher_mean_var(w, fisher, alpha=1.0, head=True)
    torch.testing.assert_close(var, rows.view(3, 1).expand(3, 2), rtol=1e-6, atol=0)
    # class-wise, class 1: its row gets mu = 0 and var 1e-4, then head var x10
    mu, var = fisher_mean_var(w, fisher, alpha=1.0, head=True, forget_class=1)
    torch.testing.assert_close(mu, torch.tensor([[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]))
    torch.testing.assert_close(var[:, 0], torch.tensor([1000.0, 1e-3, 10 * rows[2].item()]), rtol=1e-6, atol=0)
    # class-wise, non-head 2-D parameter: no x10
    _, var = fisher_mean_var(torch.ones(2, 2), torch.ones(2, 2), alpha=1.0, head=False, forget_class=1)
    torch.testing.assert_close(var, torch.ones(2, 2), rtol=1e-6, atol=0)


def test_diag_fisher_matches_the_reference_loop(class_ctx):
    ctx, _ = class_ctx
    model = copy.deepcopy(ctx.original).eval()
    idx = ctx.plan.retain[:6]
    true_ref = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    emp_ref = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in idx:  # the reference: batch size 1, one backward per class
        x, y = ctx.data.batch(torch.as_tensor([i]))
        out = model(x)
        prob = F.softmax(out, -1).detach()
        for c in range(10):
            model.zero_grad()
            F.cross_entropy(out, torch.tensor([c])).backward(retain_graph=True)
            for n, p in model.named_parameters():
                true_ref[n] += prob[0, c] * p.grad ** 2
                if c == int(y):
                    emp_ref[n] += p.grad ** 2
    for kind, ref in (("true", true_ref), ("empirical", emp_ref)):
        got = diag_fisher(model, ctx.data, idx, kind, chunk=4)
        for n in ref:
            torch.testing.assert_close(got[n], ref[n] / len(idx), rtol=1e-3, atol=1e-9)


def test_fisher_is_reproducible(random_ctx):
    ctx, _ = random_ctx
    a = unlearn("fisher", {"max_samples": 40}, ctx).model
    b = unlearn("fisher", {"max_samples": 40}, ctx).model
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, msg=n)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), ctx.original.parameters()))


# --- behaviour on digits --------------------------------------------------------------------------
# Every method's forgetting and utility on digits (class 3 and a random 10 %) is tested once, for all
# registered methods, in tests/test_methods_behaviour.py.
