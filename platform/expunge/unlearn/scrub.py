"""SCRUB: teacher–student unlearning with alternating max (forget) and min (retain) steps.

Kurmanji, Triantafillou, Hayes & Triantafillou, "Towards Unbounded Machine Unlearning", NeurIPS
2023. The student starts as a copy of the original; the teacher is the frozen original. With
KL_T(t‖s) = T² · KL(softmax(t/T) ‖ softmax(s/T)) averaged over the batch (RepDistiller's
``DistillKL``), each epoch e runs

* if e < ``msteps``: one pass over D_f of *max-steps*, minimising  −KL_T(teacher ‖ student)  on B_f
  (pushing the student away from the teacher on the forget set);
* one pass over D_r of *min-steps*, minimising  γ·CE(student(B_r), y_r) + α·KL_T(teacher ‖ student).

The data mix is :meth:`SCRUB.batches`: tagged ``Batch`` es, all ``"max"`` forget batches of the epoch
first, then the ``"min"`` retain batches; :meth:`SCRUB.loss` branches on the tag. Everything runs
in the shared loop with one SGD optimizer, as in both reference implementations.

**Defaults** follow the CPU reference's SCRUB command (``--msteps 5 --kd_T 2 --beta 1 --gamma 1.0``
[CODE CPU:unlearn.py scrub, train_distill], ``seed-methods.md`` §1.5): T = 2, γ = 1, KL weight 1
(the CPU code calls it ``beta``; the SCRUB paper and code call the KL weight ``alpha`` and use
``beta`` for an unused extra distillation term, so here it is ``alpha``), SGD momentum 0.9, weight
decay 5e-4, constant learning rate (CPU: no scheduler). lr 5e-4 is SCRUB's ``sgda_learning_rate``;
10 epochs is SCRUB's small-scale ``sgda_epochs``. Differences from the CPU code, on purpose:
``epoch < msteps`` (CPU: ``epoch <= msteps``, i.e. msteps + 1 max epochs) so ``msteps`` is exactly
the number of epochs with max-steps; and max steps are skipped when ``msteps = 0``.
"""
from __future__ import annotations

import copy
import math
from typing import Iterator, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from expunge.unlearn.space import Domain, loguniform, randint, uniform
from expunge.unlearn.base import Batch, MethodConfig, UnlearnContext, UnlearnMethod, register_method


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """T² · KL(softmax(t/T) ‖ softmax(s/T)), summed over classes, averaged over the batch."""
    log_ps = F.log_softmax(student_logits.float() / T, dim=1)
    pt = F.softmax(teacher_logits.float() / T, dim=1)
    return F.kl_div(log_ps, pt, reduction="sum") * (T ** 2) / student_logits.shape[0]


class SCRUBConfig(MethodConfig):
    epochs: int = Field(10, ge=1)
    lr: float = Field(5e-4, gt=0)
    schedule: Literal["constant", "cosine", "onecycle", "step"] = "constant"
    #: number of leading epochs that run max-steps on D_f (epoch < msteps)
    msteps: int = Field(5, ge=0)
    #: distillation temperature T
    kd_T: float = Field(2.0, gt=0)
    #: weight of CE on D_r in the min-steps
    gamma: float = Field(1.0, ge=0, description="SCRUB: weight of CE on D_r in the min-steps")
    #: weight of KL(teacher ‖ student) on D_r in the min-steps (the CPU code's ``beta``)
    alpha: float = Field(1.0, ge=0, description="SCRUB: weight of KL(teacher ‖ student) on D_r in the min-steps")
    #: batch size of the max-steps on D_f (None: ``batch_size``)
    forget_batch_size: int | None = Field(None, ge=1)

    @classmethod
    def search_space(cls) -> dict[str, Domain]:
        return {"lr": loguniform(1e-4, 1e-1), "epochs": randint(2, 11), "msteps": randint(1, 6),
                "kd_T": uniform(1.0, 4.0), "alpha": loguniform(1e-3, 1.0), "gamma": uniform(0.5, 1.0)}


@register_method("scrub")
class SCRUB(UnlearnMethod):
    """SCRUB (Kurmanji et al. 2023): max −KL_T on D_f for epochs < msteps, then γ·CE + α·KL_T on D_r."""

    Config = SCRUBConfig

    def prepare(self, ctx: UnlearnContext, cfg: SCRUBConfig, model: nn.Module) -> None:
        self.teacher = copy.deepcopy(ctx.original).to(ctx.device).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def _forget_bs(self, cfg: SCRUBConfig) -> int:
        return cfg.forget_batch_size or cfg.batch_size

    def steps_per_epoch(self, ctx: UnlearnContext, cfg: SCRUBConfig) -> int:
        retain = math.ceil(len(ctx.plan.retain) / cfg.batch_size)
        forget = math.ceil(len(ctx.plan.forget) / self._forget_bs(cfg))
        max_epochs = min(cfg.msteps, cfg.epochs)
        return max(1, math.ceil((cfg.epochs * retain + max_epochs * forget) / max(1, cfg.epochs)))

    def batches(self, ctx: UnlearnContext, cfg: SCRUBConfig, epoch: int, gen: torch.Generator) -> Iterator[Batch]:
        if epoch < cfg.msteps:
            for x, y, _ in ctx.loader("forget", self._forget_bs(cfg), augment=cfg.augment, generator=gen):
                yield Batch(forget=(x, y), tag="max")
        for x, y, _ in ctx.loader("retain", cfg.batch_size, augment=cfg.augment, generator=gen):
            yield Batch(retain=(x, y), tag="min")

    def loss(self, ctx: UnlearnContext, cfg: SCRUBConfig, model: nn.Module, batch: Batch) -> torch.Tensor:
        if batch.tag == "max":
            x, _ = batch.forget
            with torch.no_grad():
                t = self.teacher(x)
            return -distill_kl(model(x), t, cfg.kd_T)
        x, y = batch.retain
        with torch.no_grad():
            t = self.teacher(x)
        s = model(x)
        return cfg.gamma * F.cross_entropy(s.float(), y) + cfg.alpha * distill_kl(s, t, cfg.kd_T)
