"""Bad Teacher: distil from an incompetent teacher on D_f and the original on (a subset of) D_r.

Chundawat, Tarun, Mandal & Kankanhalli, "Can Bad Teaching Induce Forgetting? Unlearning in Deep
Networks Using an Incompetent Teacher", AAAI 2023. The student starts as a copy of the original; the
*competent* teacher is the frozen original, the *incompetent* teacher a freshly initialised model
(``ctx.model_factory()``, seeded from the context seed). One loader shuffles D_f together with a
random retain subset S_r ⊂ D_r (drawn once); for each sample the target is the incompetent teacher's
distribution if it is a forget sample and the original's otherwise::

    t(x)  = softmax(bad(x)/T)        if x ∈ D_f
          = softmax(orig(x)/T)       if x ∈ S_r
    L(θ)  = KL( t(x) ‖ softmax(f_θ(x)/T) )    averaged over the batch

**Defaults** follow [CODE CPU:unlearn.py teacher, blindspot_unlearner, UnlearnerLoss]
(``seed-methods.md`` §1.5) and the original bad-teaching code: T = 1, Adam with lr 1e-4 (the CPU
code's comment on ``learning_rate``), 1 epoch, batch size 256; |S_r| = |D_f| (CPU;
``retain_ratio`` = |S_r| / |D_f| = 1; the original bad-teaching code uses 30 % of D_r instead).
The shared loop offers SGD or AdamW, so Adam is AdamW with weight decay 0 (identical updates), with a
constant learning rate. The reference reduces the KL with ``F.kl_div``'s default elementwise mean,
i.e. the batch-mean KL divided by the number of classes; we use the batch-mean KL (Adam is invariant to
that constant factor up to its ε).
"""
from __future__ import annotations

import copy
import math
from typing import Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from expunge import seeds
from expunge.unlearn.space import Domain, loguniform, randint, uniform
from expunge.unlearn.base import (Batch, MethodConfig, UnlearnContext, UnlearnMethod, forget_mask,
                                  register_method)


def bad_teacher_loss(student_logits: torch.Tensor, good_logits: torch.Tensor, bad_logits: torch.Tensor,
                     is_forget: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """Batch-mean KL(t ‖ softmax(s/T)), t the bad teacher's softmax on forget rows, the good one's else."""
    good = F.softmax(good_logits.float() / T, dim=1)
    bad = F.softmax(bad_logits.float() / T, dim=1)
    target = torch.where(is_forget.view(-1, 1), bad, good)
    return F.kl_div(F.log_softmax(student_logits.float() / T, dim=1), target, reduction="batchmean")


class BadTeacherConfig(MethodConfig):
    epochs: int = Field(1, ge=1)
    lr: float = Field(1e-4, gt=0)
    batch_size: int = Field(256, ge=1)
    optimizer: Literal["sgd", "adamw"] = "adamw"
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "cosine", "onecycle", "step"] = "constant"
    #: distillation temperature T
    kd_T: float = Field(1.0, gt=0)
    #: retain subset size as a multiple of |D_f| (capped at |D_r|)
    retain_ratio: float = Field(1.0, gt=0)

    @classmethod
    def search_space(cls) -> dict[str, Domain]:
        return {"lr": loguniform(1e-5, 1e-2), "epochs": randint(1, 11), "retain_ratio": uniform(0.5, 5.0)}


@register_method("bad_teacher")
class BadTeacher(UnlearnMethod):
    """Bad Teacher (Chundawat et al. 2023): KL to a random-init teacher on D_f, to the original on S_r."""

    Config = BadTeacherConfig

    def _subset_size(self, ctx: UnlearnContext, cfg: BadTeacherConfig) -> int:
        return min(len(ctx.plan.retain), max(1, int(round(cfg.retain_ratio * len(ctx.plan.forget)))))

    def prepare(self, ctx: UnlearnContext, cfg: BadTeacherConfig, model: nn.Module) -> None:
        self.good = copy.deepcopy(ctx.original).to(ctx.device).eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeds.stream(ctx.seed, seeds.Salt.BAD_TEACHER_INIT))
            self.bad = ctx.model_factory().to(ctx.device).eval()
        for teacher in (self.good, self.bad):
            for p in teacher.parameters():
                p.requires_grad_(False)
        gen = ctx.generator(salt=seeds.Salt.BAD_TEACHER_BATCHES)
        retain = np.asarray(ctx.plan.retain)
        pick = torch.randperm(len(retain), generator=gen)[:self._subset_size(ctx, cfg)].numpy()
        self.indices = np.concatenate([np.asarray(ctx.plan.forget), np.sort(retain[pick])])

    def steps_per_epoch(self, ctx: UnlearnContext, cfg: BadTeacherConfig) -> int:
        return max(1, math.ceil((len(ctx.plan.forget) + self._subset_size(ctx, cfg)) / cfg.batch_size))

    def batches(self, ctx: UnlearnContext, cfg: BadTeacherConfig, epoch: int,
                gen: torch.Generator) -> Iterator[Batch]:
        for x, y, idx in ctx.data.loader(self.indices, cfg.batch_size, shuffle=True, augment=cfg.augment,
                                         generator=gen):
            yield Batch(retain=(x, y), extra={"is_forget": forget_mask(ctx.plan, idx).to(x.device)})

    def loss(self, ctx: UnlearnContext, cfg: BadTeacherConfig, model: nn.Module, batch: Batch) -> torch.Tensor:
        x, _ = batch.retain
        with torch.no_grad():
            good, bad = self.good(x), self.bad(x)
        return bad_teacher_loss(model(x), good, bad, batch.extra["is_forget"], cfg.kd_T)
