"""CPU: conformal-prediction-guided unlearning (Shi, Liu & Wang, 2025, arXiv 2501.19403).

Reference code: the ``TIML-Group/Conformal-Prediction-Unlearning`` repository (``unlearn_cpu.py``,
``main_unlearn_cpu.py``). A Carlini-Wagner-style hinge that pushes each forget sample's true label out
of its conformal prediction set, added to the base method's cross-entropy:

    L = CE(model(x_R), y_R) + lambda * (1/|B_f|) sum_{i in B_f} max(0, p_{y_i}(x_i) - (1 - q_hat) + delta)

(the reference writes the hinge as max(0, q_hat - s + delta) with the LAC score s = 1 - p_y). q_hat is
the split-conformal quantile of s at level ceil((n+1)(1-alpha))/n ("higher"), recalibrated with the
current model in eval mode, without augmentation, at the start of every pass over the data (the
reference's epoch), on a fixed calibration subset of the test data: 1000 samples for random
forgetting, 200 for class forgetting, remaining classes only for class forgetting (the reference's
``random_split`` of its test-retain set). Defaults delta=0.01, alpha=0.05, lam (λ) = 0.8 (the reference's
argparse defaults; its README example uses lambda=0.5).

Batches, as the reference's ``LossData`` loader: one shuffled loader over R ∪ D_f, where R is the base
method's data (D_r for finetune and retrain; D_r ∪ {(x_f, random label)} for rl and salun) with flag 0
and D_f with its true labels with flag 1, ``batch_size`` samples per step, so an epoch has
ceil((|R| + |D_f|) / batch_size) steps and every forget sample meets the hinge once per pass (rl and
salun therefore see D_f twice per pass, once relabelled under CE, once under the hinge). Each batch goes
through the model in one forward pass (BatchNorm normalises the mixed batch, as the reference's single
``model(x)``); CE is the mean over the flag-0 rows, the hinge the mean over the flag-1 rows. SalUn's
gradient mask applies to the whole gradient, hinge included, as in the reference.

Fixed relative to the reference code, each with an option to reproduce it:

* ``out_softmax[:, labels]`` in the reference indexes a |B_f| x |B_f| matrix, applying the hinge to
  p_{y_j}(x_i) for every pair; it equals the per-sample formula only when all forget labels in the
  batch agree (class forgetting). expunge gathers per sample (``repo_faithful=True`` reproduces the
  pairwise form).
* The reference calibrates in eval mode and never switches back, so all of its CPU training runs in
  eval mode (frozen BatchNorm statistics); expunge restores training mode (``eval_mode_training=True``
  reproduces it).
* A batch without forget samples gives NaN in the reference (mean of an empty tensor), one without
  flag-0 samples a NaN cross-entropy; here either term adds 0.

Remaining differences from the reference code, each with its reason:

* Base hyperparameters (epochs, lr, batch size, schedule, augmentation, SalUn's mask ratio) are the
  base method's own defaults, so ``X+cpu`` differs from ``X`` by the hinge alone; the reference's CPU
  script defaults to 20 epochs, lr 0.1, batch 128, SGD (momentum 0.9, weight decay 5e-4) with cosine
  annealing for every base. Set them per method to reproduce that recipe.
* The learning-rate schedule is the shared loop's, per optimiser step; the reference's
  ``CosineAnnealingLR`` steps once per epoch. Base and variant share the loop, so the comparison is
  unaffected.
* The reference's rl / salun materialise one augmented copy of every R sample once for the whole run
  (its ``unlearning_trainset`` list); here R is augmented afresh every pass, as the base rl and salun
  do. SalUn's masked-out weights are held at their original values (the salun module), whereas the
  reference only multiplies gradients, so weight decay still shrinks them there.
* Calibration size: at most half of the candidate test samples (a small test split such as digits'
  cannot hold 1000). The reference excludes its calibration samples from the test accuracy it reports;
  expunge's TA is measured on the whole test split, calibration samples included (their labels only
  set the scalar q_hat), because no spare held-out split exists. The calibration set is disjoint from
  the one the CR / MIACR metrics use (``plan.calibration``), as the reference's.

Variants: ``finetune+cpu``, ``rl+cpu``, ``salun+cpu`` and ``retrain+cpu`` (fresh initialisation,
trained on D_r ∪ D_f with the hinge on D_f, with the original's recipe unless set; the reference's
retrain variant likewise skips loading the original weights).
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from torch import nn

from expunge import seeds
from expunge.data.splits import SplitPlan
from expunge.errors import ConfigError
from expunge.metrics.conformal import conformal_quantile, lac_scores, min_calibration_size
from expunge.unlearn.space import Domain, choice, loguniform, uniform
from expunge.unlearn.base import (Batch, MethodConfig, UnlearnContext, UnlearnMethod, register_method,
                                  run_loop)
from expunge.unlearn.finetune import Finetune, FinetuneConfig
from expunge.unlearn.random_labels import RandomLabels
from expunge.unlearn.salun import SalUn


class CPUOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    delta: float = Field(0.01, ge=0, description="CPU: the hinge's margin δ")
    alpha: float = Field(0.05, gt=0, lt=1, description="CPU: conformal miscoverage level α (q̂ = the 1-α quantile)")
    #: the hinge's weight λ; ``lambda`` (the reference code's and earlier releases' spelling) still
    #: parses, with a DeprecationWarning
    lam: float = Field(0.8, ge=0, validation_alias=AliasChoices("lam", "lambda"), description="CPU: the hinge's weight λ")
    #: calibration samples for q_hat (None: 1000 for random forgetting, 200 for class forgetting)
    cal_size: int | None = Field(None, ge=1)
    repo_faithful: bool = False
    eval_mode_training: bool = False

    @model_validator(mode="before")
    @classmethod
    def _deprecated_lambda(cls, data: Any) -> Any:
        if isinstance(data, dict) and "lambda" in data:
            warnings.warn("CPU's `lambda` is deprecated: name it `lam` (method.lam=..., sweep space lam:)",
                          DeprecationWarning, stacklevel=2)
        return data


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
    if plan.spec.classwise:
        pool = pool[labels[pool] != plan.forget_class]
    default = 200 if plan.spec.classwise else 1000
    n = min(cal_size or default, len(pool) // 2)
    rng = np.random.default_rng(seeds.offset(seed, seeds.Salt.CPU_CALIBRATION))
    return np.sort(rng.permutation(pool)[:n])


@torch.no_grad()
def calibrate(model: nn.Module, ctx: UnlearnContext, idx: np.ndarray, alpha: float, keep_eval: bool) -> float:
    """q_hat of the LAC scores of ``model`` (eval mode, no augmentation) on ``idx``; training mode is
    restored afterwards unless ``keep_eval`` (the reference's behaviour, ``eval_mode_training``)."""
    was = model.training
    model.eval()
    probs, labels = [], []
    for x, y, _ in ctx.data.loader(idx, 1024):
        probs.append(F.softmax(model(x).float(), dim=1).cpu())
        labels.append(y.cpu())
    model.train(was and not keep_eval)
    return conformal_quantile(lac_scores(torch.cat(probs).numpy(), torch.cat(labels).numpy()), alpha)


def _mixed_pool(method: UnlearnMethod, ctx: UnlearnContext) -> tuple[np.ndarray, torch.Tensor | None]:
    """R, the base method's CE data, as dataset positions plus an optional relabelling (-1: keep y)."""
    if isinstance(method, RandomLabels):
        return method.indices, method.relabel
    return ctx.plan.retain, None


def mixed_batches(ctx: UnlearnContext, pool: np.ndarray, relabel: torch.Tensor | None, batch_size: int,
                  augment: bool, gen: torch.Generator
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One pass over R ∪ D_f shuffled together (the reference's ``LossData`` loader): batches
    ``(x, y, is_forget, idx)`` (idx: dataset positions); R rows carry flag False and the (re)labels of ``relabel``, D_f rows flag True
    and their true labels. A position in both (rl's relabelled D_f) appears twice, once per role."""
    positions = torch.as_tensor(np.concatenate([pool, ctx.plan.forget]), dtype=torch.int64)
    flags = torch.arange(len(positions)) >= len(pool)
    order = torch.randperm(len(positions), generator=gen)
    for start in range(0, len(order), batch_size):
        sel = order[start:start + batch_size]
        idx, is_forget = positions[sel], flags[sel].to(ctx.device)
        x, y = ctx.data.batch(idx, augment=augment, generator=gen)
        if relabel is not None:
            new = relabel[idx.to(ctx.device)]
            y = torch.where(~is_forget & (new >= 0), new, y)
        yield x, y, is_forget, idx


def with_cpu(base: type[UnlearnMethod], name: str) -> type[UnlearnMethod]:
    """Register ``name``: ``base`` with the CPU hinge on D_f (see the module docstring)."""

    class Config(base.Config, CPUOptions):
        model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

        @classmethod
        def search_space(cls) -> dict[str, Domain]:
            return {**base.Config.search_space(), **CPU_SPACE}

    Config.__name__ = f"{base.Config.__name__}CPU"
    # The reference's concatenated loader needs a base whose loss is plain CE on its data (D_r, or RL's
    # D_r ∪ relabelled D_f): all four registered bases. Any other base keeps its own batches and loss,
    # with a true-label forget sub-batch (the forget share of a mixed batch) in a separate forward.
    mixed = base.loss is UnlearnMethod.loss and (base.batches is UnlearnMethod.batches
                                                 or issubclass(base, RandomLabels))

    class Variant(base):
        __doc__ = f"{name.split('+')[0]} with the CPU conformal hinge on D_f (delta, alpha, lam)."

        @classmethod
        def check(cls, plan: SplitPlan, cfg: MethodConfig) -> None:
            super().check(plan, cfg)
            # an upper bound before any compute; calibrate() checks the exact size again
            n = min(cfg.cal_size or (200 if plan.spec.classwise else 1000), len(plan.test) // 2)
            if n < min_calibration_size(cfg.alpha):
                raise ConfigError(f"method {cls.name}: the CPU calibration set has at most {n} samples, too few for "
                                  f"alpha={cfg.alpha} (need {min_calibration_size(cfg.alpha)})")

        def prepare(self, ctx: UnlearnContext, cfg: MethodConfig, model: nn.Module) -> None:
            super().prepare(ctx, cfg, model)
            self.model = model
            labels = ctx.data.dataset.labels.numpy()
            self.cal_idx = cpu_calibration_indices(ctx.plan, labels, cfg.cal_size, ctx.seed)
            self.pool, self.pool_relabel = _mixed_pool(self, ctx)
            n_f = len(ctx.plan.forget)
            self.forget_bs = max(1, round(cfg.batch_size * n_f / (n_f + len(self.pool))))
            self.qhats: list[float] = []

        def steps_per_epoch(self, ctx: UnlearnContext, cfg: MethodConfig) -> int:
            if not mixed:
                return super().steps_per_epoch(ctx, cfg)
            pool = self.pool if hasattr(self, "pool") else _mixed_pool(self, ctx)[0]
            return max(1, math.ceil((len(pool) + len(ctx.plan.forget)) / cfg.batch_size))

        def batches(self, ctx: UnlearnContext, cfg: MethodConfig, epoch: int, gen: torch.Generator) -> Iterator[Batch]:
            self.qhat = calibrate(self.model, ctx, self.cal_idx, cfg.alpha, cfg.eval_mode_training)
            self.qhats.append(self.qhat)
            if mixed:
                for x, y, is_forget, _ in mixed_batches(ctx, self.pool, self.pool_relabel, cfg.batch_size,
                                                     cfg.augment, gen):
                    yield Batch(retain=(x[~is_forget], y[~is_forget]), forget=(x[is_forget], y[is_forget]),
                                extra={"cpu_mixed": (x, y, is_forget)})
                return

            def forget_stream():
                while True:
                    for x, y, _ in ctx.loader("forget", self.forget_bs, augment=cfg.augment, generator=gen):
                        yield x, y

            stream = forget_stream()
            for batch in super().batches(ctx, cfg, epoch, gen):
                batch.extra["cpu_forget"] = next(stream)
                yield batch

        def loss(self, ctx: UnlearnContext, cfg: MethodConfig, model: nn.Module, batch: Batch) -> torch.Tensor:
            if "cpu_mixed" in batch.extra:
                x, y, is_forget = batch.extra["cpu_mixed"]
                logits = model(x)
                keep = ~is_forget
                base_loss = F.cross_entropy(logits[keep], y[keep]) if bool(keep.any()) else logits.sum() * 0.0
                probs, yf = F.softmax(logits[is_forget].float(), dim=1), y[is_forget]
            else:
                xf, yf = batch.extra["cpu_forget"]
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
    #: retraining runs the original's recipe as it is (as ``retrain``), never lengthened
    min_steps: int = Field(0, ge=0, le=1_000_000)

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
with_cpu(RandomLabels, "rl+cpu")
with_cpu(SalUn, "salun+cpu")
with_cpu(RetrainLoop, "retrain+cpu")
