"""CPU: conformal-prediction-guided unlearning (Shi, Liu & Wang, 2025, arXiv 2501.19403).

A Carlini-Wagner-style hinge that pushes each forget sample's true label out of its conformal
prediction set, added to a base method's loss:

    L = L_base + lambda * (1/|B_f|) sum_{i in B_f} max(0, p_{y_i}(x_i) - (1 - q_hat) + delta)

q_hat is the split-conformal quantile of the LAC score 1 - p_y at level ceil((n+1)(1-alpha))/n
("higher"), recalibrated with the current model at the start of every epoch on a calibration set
that is disjoint from the one the CR / MIACR metrics use (those use ``plan.calibration``; the CPU
loss uses a seeded part of ``plan.test``, remaining classes only for class forgetting, as the
reference carves its loss calibration from the test-retain data). Defaults delta=0.01, alpha=0.05,
lambda=0.8 (the reference's argparse defaults).

Fixed relative to the reference code, each with an option to reproduce it:

* ``out_softmax[:, labels]`` in the reference indexes a |B_f| x |B_f| matrix, applying the hinge to
  p_{y_j}(x_i) for every pair; it equals the per-sample formula only when all forget labels in the
  batch agree (class forgetting). expunge gathers per sample (``repo_faithful=True`` reproduces the
  pairwise form).
* The reference calibrates in eval mode and never switches back, so all of its CPU training runs in
  eval mode (frozen BatchNorm statistics); expunge restores training mode (``eval_mode_training=True``
  reproduces it).
* A batch without forget samples gives NaN in the reference (mean of an empty tensor); here it adds 0.

Variants: ``finetune+cpu``, ``rl+cpu``, ``salun+cpu`` and ``retrain+cpu`` (fresh initialisation,
trained on D_r with the hinge on D_f, with the original's recipe unless set). Each step pairs the base
method's batch with a true-label forget sub-batch whose size is the forget share of a shuffled
D_r ∪ D_f batch, as in the reference's concatenated loader, and (for bases whose loss is plain CE on
the batch, i.e. all four) goes through the model in the same forward pass as the base batch, so
BatchNorm sees the mixed batch the reference's single ``model(x)`` sees.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from expunge.data.splits import SplitPlan
from expunge.errors import ConfigError
from expunge.metrics.conformal import conformal_quantile, lac_scores, min_calibration_size
from expunge.search_space import Domain, choice, loguniform, uniform
from expunge.unlearn.base import (METHODS, Batch, MethodConfig, UnlearnContext, UnlearnMethod, register_method,
                                  run_loop)
from expunge.unlearn.finetune import Finetune, FinetuneConfig


class CPUOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    delta: float = Field(0.01, ge=0)
    alpha: float = Field(0.05, gt=0, lt=1)
    lam: float = Field(0.8, ge=0, alias="lambda")
    #: calibration samples for q_hat (None: 1000 for random forgetting, 200 for class forgetting)
    cal_size: int | None = Field(None, ge=1)
    repo_faithful: bool = False
    eval_mode_training: bool = False


CPU_SPACE = {"delta": loguniform(1e-3, 0.2), "alpha": choice(0.05, 0.1, 0.2), "lam": uniform(0.1, 2.0)}


def cpu_hinge(probs: torch.Tensor, labels: torch.Tensor, qhat: float, delta: float,
              repo_faithful: bool = False) -> torch.Tensor:
    """mean_i max(0, p_{y_i}(x_i) - (1 - q_hat) + delta); exactly 0 (with a graph) for an empty batch."""
    if labels.numel() == 0:
        return probs.sum() * 0.0
    p_y = probs[:, labels] if repo_faithful else probs.gather(1, labels[:, None]).squeeze(1)
    return torch.clamp(p_y - (1.0 - qhat) + delta, min=0.0).mean()


def cpu_calibration_indices(plan: SplitPlan, labels: np.ndarray, cal_size: int | None, seed: int) -> np.ndarray:
    """The CPU loss's calibration set: a seeded subset of the test split (remaining classes only for
    class forgetting), at most half of it, disjoint from the metrics' ``plan.calibration``."""
    pool = plan.test
    if plan.forget_class is not None:
        pool = pool[labels[pool] != plan.forget_class]
    default = 200 if plan.forget_class is not None else 1000
    n = min(cal_size or default, len(pool) // 2)
    rng = np.random.default_rng(seed + 4242)
    return np.sort(rng.permutation(pool)[:n])


@torch.no_grad()
def calibrate(model: nn.Module, ctx: UnlearnContext, idx: np.ndarray, alpha: float, keep_eval: bool) -> float:
    was = model.training
    model.eval()
    probs, labels = [], []
    for x, y, _ in ctx.data.loader(idx, 1024):
        probs.append(F.softmax(model(x).float(), dim=1).cpu())
        labels.append(y.cpu())
    model.train(was and not keep_eval)
    return conformal_quantile(lac_scores(torch.cat(probs).numpy(), torch.cat(labels).numpy()), alpha)


def with_cpu(base: type[UnlearnMethod], name: str) -> type[UnlearnMethod]:
    """Register ``name``: ``base`` with the CPU hinge on a true-label forget sub-batch every step."""

    class Config(base.Config, CPUOptions):
        model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

        @classmethod
        def search_space(cls) -> dict[str, Domain]:
            return {**base.Config.search_space(), **CPU_SPACE}

    Config.__name__ = f"{base.Config.__name__}CPU"
    # all four bases minimise the default CE(batch.retain); only then can base + hinge share one forward
    joint = base.loss is UnlearnMethod.loss

    class Variant(base):
        __doc__ = f"{name.split('+')[0]} with the CPU conformal hinge on D_f (delta, alpha, lambda)."

        @classmethod
        def check(cls, plan: SplitPlan, cfg: MethodConfig) -> None:
            super().check(plan, cfg)
            # an upper bound before any compute; calibrate() checks the exact size again
            n = min(cfg.cal_size or (200 if plan.forget_class is not None else 1000), len(plan.test) // 2)
            if n < min_calibration_size(cfg.alpha):
                raise ConfigError(f"method {cls.name}: the CPU calibration set has at most {n} samples, too few for "
                                  f"alpha={cfg.alpha} (need {min_calibration_size(cfg.alpha)})")

        def prepare(self, ctx: UnlearnContext, cfg: MethodConfig, model: nn.Module) -> None:
            super().prepare(ctx, cfg, model)
            self.model = model
            labels = ctx.data.dataset.labels.numpy()
            self.cal_idx = cpu_calibration_indices(ctx.plan, labels, cfg.cal_size, ctx.seed)
            n_f, n_r = len(ctx.plan.forget), len(ctx.plan.retain)
            self.forget_bs = max(1, round(cfg.batch_size * n_f / (n_f + n_r)))
            self.qhats: list[float] = []

        def batches(self, ctx: UnlearnContext, cfg: MethodConfig, epoch: int, gen: torch.Generator) -> Iterator[Batch]:
            self.qhat = calibrate(self.model, ctx, self.cal_idx, cfg.alpha, cfg.eval_mode_training)
            self.qhats.append(self.qhat)

            def forget_stream():
                while True:
                    for x, y, _ in ctx.loader("forget", self.forget_bs, augment=cfg.augment, generator=gen):
                        yield x, y

            stream = forget_stream()
            for batch in super().batches(ctx, cfg, epoch, gen):
                batch.extra["cpu_forget"] = next(stream)
                yield batch

        def loss(self, ctx: UnlearnContext, cfg: MethodConfig, model: nn.Module, batch: Batch) -> torch.Tensor:
            xf, yf = batch.extra["cpu_forget"]
            if joint and batch.retain is not None:
                # One forward over base batch + forget sub-batch, as the reference's concatenated loader
                # does: in train mode BatchNorm then normalises the forget samples with the mixed batch's
                # statistics, not with those of a small (for class forgetting, single-class) sub-batch.
                xr, yr = batch.retain
                logits = model(torch.cat([xr, xf]))
                base_loss = F.cross_entropy(logits[:len(xr)], yr)
                probs = F.softmax(logits[len(xr):].float(), dim=1)
            else:  # a base with its own loss: keep it intact, forget sub-batch in its own forward
                base_loss = super().loss(ctx, cfg, model, batch)
                probs = F.softmax(model(xf).float(), dim=1)
            return base_loss + cfg.lam * cpu_hinge(probs, yf, self.qhat, cfg.delta, cfg.repo_faithful)

    Variant.__name__ = f"{base.__name__}CPU"
    Variant.Config = Config
    return register_method(name)(Variant)


class RetrainLoopConfig(FinetuneConfig):
    """Unset epochs / lr / batch_size / weight_decay come from the original's training recipe."""

    epochs: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)

    @classmethod
    def search_space(cls) -> dict[str, Domain]:
        return {"lr": loguniform(1e-3, 1e-1)}


class RetrainLoop(Finetune):
    """Training from a fresh initialisation on D_r through the shared loop (the base of retrain+cpu)."""

    Config = RetrainLoopConfig

    def run(self, ctx: UnlearnContext, cfg: RetrainLoopConfig) -> nn.Module:
        recipe = ctx.train_cfg
        fill = {k: getattr(recipe, k) for k in ("epochs", "lr") if getattr(cfg, k) is None}
        if "batch_size" not in cfg.model_fields_set:
            fill["batch_size"] = recipe.batch_size
        if "weight_decay" not in cfg.model_fields_set:
            fill["weight_decay"] = recipe.weight_decay
        cfg = cfg.model_copy(update=fill)
        model = ctx.model_factory().to(ctx.device)
        self.prepare(ctx, cfg, model)
        return run_loop(self, ctx, cfg, model)

    def steps_per_epoch(self, ctx: UnlearnContext, cfg: MethodConfig) -> int:
        return max(1, math.ceil(len(ctx.plan.retain) / cfg.batch_size))


with_cpu(Finetune, "finetune+cpu")
with_cpu(METHODS.get("rl"), "rl+cpu")
with_cpu(METHODS.get("salun"), "salun+cpu")
with_cpu(RetrainLoop, "retrain+cpu")
