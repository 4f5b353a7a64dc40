"""PRU: Perception Revising Unlearning (class unlearning from the forget data only).

Zhang, Chen, Zhang, Xu, "Countering Relearning with Perception Revising Unlearning", ACML 2024,
PMLR 260:1336-1351; reference code: the ``DATA-Transpose/PRU`` repository (method
``embedding_shift``: ``unlearn_methods/embedding_shift.py``, ``train_unlearn.py``,
``config_unlearn.py``). The paper body was not reachable, so everything below follows that code.

For a forget-class image x (class c), the frozen original f_0 (eval mode) gives p = softmax(f_0(x))
and the **redistributed soft label** (the forget mass spread proportionally over the other classes)::

    p̃_k = p_k + p_c · p_k / Σ_{j≠c} p_j = p_k / (1 − p_c)  (k ≠ c),   p̃_c = 0,   ŷ = argmax_k p̃_k

With z = ``features(x)`` (penultimate embedding), h = logits, groups G_k = {i : ŷ_i = k}, K the
groups present in the batch and μ_k their centroids::

    Eq.3  D_c = Σ_{k≠l ∈ K} ||μ_k − μ_l||₂ / (|K|(|K|−1) + 1e-6) / λ_shift ,  L_cluster = 1/(D_c + 1e-6)
    Eq.4  L_sample = mean_{k: |G_k|≥2} Σ_{i,j ∈ G_k} ||z_i − z_j||₂ / (|G_k|(|G_k|−1))   (0 if no such group)
    Eq.5  L_task = KL(p̃ || softmax(h)) = F.kl_div(log(softmax(h) + 1e-6), p̃, "batchmean")

Procedure, as the reference's ``embedding_shift_unlearning_correspond``: ``rounds`` (its
``shift_epoch``) times, one *embedding-shift* epoch (§4.2.1: L_task + L_cluster + L_sample, lr
``shift_lr``) followed by ``refine_epochs`` *boundary-refine* epochs (§4.2.2: L_task, lr
``refine_lr``). SGD with momentum 0.9 and weight decay 1e-4, no schedule, a **new optimizer every
epoch** (the reference builds it inside each stage's epoch loop, so momentum never carries over), batch
128 (2 × the reference configs' 64), shuffled, all training images of the forget class, soft labels
recomputed every batch on the same (training-transform) images, model in train mode, reference in
eval mode. No retain data is touched anywhere. The shift stage runs the model **twice** per batch, as
the reference does (``get_representation(x)`` for z, then ``model(x)`` for h): the gradient is that of
one pass, but BatchNorm's running statistics take two updates per step, which changes the eval-mode
model. The method applies to ``class:<c>`` forget specs only.

Parameter freezing: the reference freezes every parameter whose name contains ``classifier`` (the last
linear layer of its AllCNN and ResNet-18) in **both** stages, although its boundary-refine comment
says "fix the feature extractor". ``refine_freeze="classifier"`` (default) follows the code (the
linear head ``fc`` stays at the original's weights); ``"features"`` follows the comment (only ``fc``
is trained while refining).

Reference rows (``config_unlearn.py``), shift_epoch / shift_lr / λ_shift / refine_epoch / refine_lr:

=================  =====  ======  ===  =  ======
mnist-AllCNN       10     5e-3    1    1  1e-1
cifar10-AllCNN     10     1e-2    1    1  1e-5
cifar10-ResNet18   10     4e-4    1    1  1e-4
=================  =====  ======  ===  =  ======

Defaults: the mnist-AllCNN row (the small-model row). For ResNet-18 on CIFAR-10 use the
cifar10-ResNet18 row (shift_lr 4e-4, refine_lr 1e-4).

Remaining differences from the reference code, each with its reason:

* One group in a batch: the reference's L_cluster is then the constant 1/1e-6 = 1e6 with zero
  gradient; we return 0 (same zero gradient) so the logged loss stays readable.
* Distances: the reference's ``torch.cdist`` switches to the matrix-product formula for more than 25
  points, whose zero diagonal carries float32 rounding noise (about 1e-3); we sum exact pairwise
  distances over i ≠ j. The formula is the same.
* Soft labels come from a softmax with class c masked out, which equals p_k / (1 − p_c) exactly and
  stays finite when p_c rounds to 1 (the reference divides by Σ_{k≠c} p_k).
* The frozen head is the model's ``fc`` rather than "parameters named classifier": the same layer for
  the reference's AllCNN and ResNet-18 (its ViT aliases ``classifier`` to ``backbone.heads``, whose
  parameters are named after the first attribute, so nothing is frozen there: a reference bug).
* Augmentation: the reference draws the forget images through its training transform (crop + flip
  on CIFAR-10, none on MNIST); ``augment=None`` (default) follows the original model's recipe
  (``train.augment``) the same way.
* ``schedule`` and ``optimizer`` are generalisations (defaults: constant lr and SGD, as the
  reference); ``MethodConfig.epochs`` and ``lr`` do not apply (use rounds / refine_epochs / shift_lr /
  refine_lr) and setting them is refused. The shared loop's ``min_steps`` does not apply either: PRU
  runs exactly rounds × (1 + refine_epochs) epochs, as the reference.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from expunge.errors import ConfigError
from expunge.unlearn.space import Domain, choice, loguniform, randint
from expunge.train.engine import run_steps
from expunge.train.optim import OptimizerSpec, build_optimizer, lr_factor
from expunge.unlearn.base import MethodConfig, UnlearnContext, UnlearnMethod, register_method


# --- the pure pieces ---------------------------------------------------------------------------
def soft_targets(p: torch.Tensor, c: int, eps: float = 1e-12) -> torch.Tensor:
    """Redistribute class ``c``'s probability: p̃_k = p_k / (1 − p_c) for k ≠ c, p̃_c = 0.

    1 − p_c is computed as Σ_{k≠c} p_k and clamped at ``eps``, so p_c → 1 does not divide by zero.
    """
    q = p.clone()
    q[:, c] = 0
    return q / q.sum(dim=1, keepdim=True).clamp_min(eps)


def soft_targets_from_logits(logits: torch.Tensor, c: int) -> torch.Tensor:
    """``soft_targets(softmax(logits), c)`` computed stably: a softmax with class ``c`` masked out."""
    masked = logits.float().clone()
    masked[:, c] = float("-inf")
    return torch.softmax(masked, dim=1)


def _pair_distance_sum(points: torch.Tensor) -> torch.Tensor:
    """Σ over ordered pairs i ≠ j of ||points_i − points_j||₂."""
    i, j = torch.triu_indices(len(points), len(points), offset=1, device=points.device)
    return 2.0 * (points[i] - points[j]).norm(dim=1).sum()


def cluster_loss(z: torch.Tensor, groups: torch.Tensor, lambda_shift: float = 1.0) -> torch.Tensor:
    """Eq.3: L = 1 / (D_c + 1e-6), D_c the mean pairwise centroid distance over present groups / λ_shift.

    Returns 0 (with a graph to ``z``) when fewer than two groups are present; see the module docstring.
    """
    labels = torch.unique(groups)
    if len(labels) < 2:
        return z.sum() * 0.0
    centroids = torch.stack([z[groups == k].mean(0) for k in labels])
    k = len(labels)
    d_c = _pair_distance_sum(centroids) / (k * (k - 1) + 1e-6) / lambda_shift
    return 1.0 / (d_c + 1e-6)


def sample_loss(z: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Eq.4: mean over groups with ≥ 2 members of their mean pairwise distance (0 if there is none)."""
    terms = []
    for k in torch.unique(groups):
        members = z[groups == k]
        n = len(members)
        if n >= 2:
            terms.append(_pair_distance_sum(members) / (n * (n - 1)))
    if not terms:
        return z.sum() * 0.0
    return torch.stack(terms).mean()


def task_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq.5: KL(p̃ || softmax(h)) as the reference computes it."""
    return F.kl_div(torch.log(torch.softmax(logits.float(), dim=1) + 1e-6), targets, reduction="batchmean")


# --- the method --------------------------------------------------------------------------------
class PRUConfig(MethodConfig):
    #: shift_epoch: rounds of [1 embedding-shift epoch, refine_epochs boundary-refine epochs]
    rounds: int = Field(10, ge=1, le=10_000)
    refine_epochs: int = Field(1, ge=0, le=10_000)
    shift_lr: float = Field(5e-3, gt=0, le=100)
    refine_lr: float = Field(1e-1, gt=0, le=100)
    lambda_shift: float = Field(1.0, gt=0)
    #: which part is frozen while refining (the shift stage always freezes ``fc``); see the docstring
    refine_freeze: Literal["classifier", "features"] = "classifier"
    batch_size: int = Field(128, ge=1)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    schedule: Literal["constant", "cosine", "onecycle", "step"] = "constant"
    #: augment the forget images (None: as the original's training recipe, ``train.augment``)
    augment: bool | None = None

    @model_validator(mode="after")
    def _no_generic_epochs_or_lr(self) -> "PRUConfig":
        used = {"epochs", "lr"} & self.model_fields_set
        if used:
            raise ValueError(f"PRU does not use {', '.join(sorted(used))}: set rounds, refine_epochs, "
                             "shift_lr and refine_lr")
        return self

    @classmethod
    def search_space(cls) -> dict[str, Domain]:
        return {"shift_lr": loguniform(1e-4, 1e-1), "refine_lr": loguniform(1e-5, 1e-1),
                "rounds": randint(1, 11), "lambda_shift": choice(0.1, 1.0, 10.0)}


@register_method("pru")
class PRU(UnlearnMethod):
    """PRU (Zhang et al., ACML 2024): soft-label redistribution + embedding shift, forget data only."""

    Config = PRUConfig
    shared_loop = False
    forget_kinds = ("class",)

    @classmethod
    def check(cls, plan, cfg) -> None:
        super().check(plan, cfg)
        if not plan.spec.classwise:
            raise ConfigError(f"method {cls.name} needs a forget class; got {plan.forget_spec}")

    def steps_per_epoch(self, ctx: UnlearnContext, cfg: PRUConfig) -> int:
        return max(1, math.ceil(len(ctx.plan.forget) / cfg.batch_size))

    def prepare(self, ctx: UnlearnContext, cfg: PRUConfig, model: nn.Module) -> None:
        self.reference = copy.deepcopy(ctx.original).to(ctx.device).eval()
        self.reference.requires_grad_(False)
        self.forget_class = int(ctx.plan.forget_class)

    def stage_loss(self, cfg: PRUConfig, model: nn.Module, x: torch.Tensor, stage: str) -> torch.Tensor:
        with torch.no_grad():
            targets = soft_targets_from_logits(self.reference(x), self.forget_class)
        if stage == "refine":
            return task_loss(model(x), targets)
        # two forward passes, as the reference (get_representation, then forward): one gradient,
        # but two BatchNorm running-statistics updates per step
        zf = model.features(x).float()
        logits = model(x)
        groups = targets.argmax(1)
        return task_loss(logits, targets) + cluster_loss(zf, groups, cfg.lambda_shift) + sample_loss(zf, groups)

    def _freeze(self, model: nn.Module, stage: str, cfg: PRUConfig) -> list[nn.Parameter]:
        head = {id(p) for p in model.fc.parameters()}
        train_head = stage == "refine" and cfg.refine_freeze == "features"
        for p, flag in zip(model.parameters(), self.trainable):
            p.requires_grad_(flag and (id(p) in head) == train_head)
        return [p for p in model.parameters() if p.requires_grad]

    def run(self, ctx: UnlearnContext, cfg: PRUConfig) -> nn.Module:
        model = copy.deepcopy(ctx.original).to(ctx.device)
        self.prepare(ctx, cfg, model)
        steps = self.steps_per_epoch(ctx, cfg)
        augment = ctx.train_cfg.augment if cfg.augment is None else cfg.augment
        self.trainable = trainable = [p.requires_grad for p in model.parameters()]
        epoch = 0
        try:
            for rnd in range(cfg.rounds):
                for stage, lr, n_epochs in (("shift", cfg.shift_lr, 1), ("refine", cfg.refine_lr, cfg.refine_epochs)):
                    if n_epochs == 0:
                        continue
                    params = self._freeze(model, stage, cfg)
                    spec = OptimizerSpec(cfg.optimizer, lr, cfg.momentum, cfg.weight_decay)
                    total, step = max(1, n_epochs * steps), 0
                    for _ in range(n_epochs):
                        epoch += 1
                        # a new optimizer every epoch: the reference builds it inside each stage's epoch loop
                        optimizer = build_optimizer(params, spec)
                        model.train()
                        t0 = time.perf_counter()
                        losses = run_steps(
                            optimizer, ctx.loader("forget", cfg.batch_size, augment=augment,
                                                  generator=ctx.generator(epoch)),
                            lambda batch: self.stage_loss(cfg, model, batch[0], stage),
                            lr_at=lambda i: lr * lr_factor(cfg.schedule, min(i, total - 1), total, 0),
                            step=step, device=ctx.device, bf16=ctx.train_cfg.bf16,
                            diverged=f"pru: loss diverged in round {rnd + 1} ({stage}); lower {stage}_lr")
                        step += len(losses)
                        if ctx.callback is not None:
                            ctx.callback({"epoch": epoch, "round": rnd + 1, "stage": stage,
                                          "loss": sum(float(loss) for loss in losses) / max(1, len(losses)),
                                          "seconds": time.perf_counter() - t0, "_model": model})
        finally:
            for p, flag in zip(model.parameters(), trainable):
                p.requires_grad_(flag)
        model.eval()
        return model
