"""NegGrad+ (NG+): descend on the retain set while ascending on the forget set.

Kurmanji, Triantafillou, Hayes & Triantafillou, "Towards Unbounded Machine Unlearning" (SCRUB
paper), NeurIPS 2023, where NegGrad+ is the strengthened negative-gradient baseline. Each step takes
a retain batch B_r paired with a forget batch B_f (:func:`~expunge.unlearn.base.paired_batches`;
the forget set is cycled)::

    L(θ) = CE(f_θ(B_r)) − β · CE(f_θ(B_f))

**Formulation.** ``beta`` is the *forget weight* ("retain CE minus β times forget CE"). Kurmanji et
al. write the same objective as α·CE_r − (1 − α)·CE_f; the two agree up to an overall scale 1/α with
α = 1/(1 + β), so β = 0.001 is their α ≈ 0.999.

**Defaults.** β = 0.001 is the CPU reference's ``ga_plus`` (``loss_retain - 0.001*loss_forget``,
[CODE CPU:unlearn.py training_step_ga_plus], see ``seed-methods.md`` §1.5), with its optimizer: SGD,
momentum 0.9, weight decay 5e-4, cosine learning rate. The CPU code mixes forget and retain samples
in one shuffled loader; here every retain batch is paired with a whole forget batch, so the forget
set is revisited about |D_r|/|D_f| times per epoch (the per-step scale of each term is the same,
both being batch means). lr 0.01 and 5 epochs are ours (the SalUn README's fine-tuning lr; the CPU
script's lr is a command-line argument, default 0.1, which diverges on small models).
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from expunge.unlearn.space import Domain, loguniform, randint
from expunge.unlearn.base import (Batch, MethodConfig, UnlearnContext, UnlearnMethod, paired_batches,
                                  register_method)


def neggrad_plus_loss(retain_logits: torch.Tensor, retain_labels: torch.Tensor, forget_logits: torch.Tensor,
                      forget_labels: torch.Tensor, beta: float) -> torch.Tensor:
    """CE(retain) − β · CE(forget), each the batch mean."""
    loss = F.cross_entropy(retain_logits.float(), retain_labels)
    if beta > 0:
        loss = loss - beta * F.cross_entropy(forget_logits.float(), forget_labels)
    return loss


class NegGradPlusConfig(MethodConfig):
    epochs: int = Field(5, ge=1)
    lr: float = Field(0.01, gt=0)
    #: forget weight: L = CE(D_r) − beta · CE(D_f) (CPU ga_plus: 0.001)
    beta: float = Field(0.001, ge=0)
    #: forget batch size paired with each retain batch (None: ``batch_size``)
    forget_batch_size: int | None = Field(None, ge=1)

    @classmethod
    def search_space(cls) -> dict[str, Domain]:
        return {"lr": loguniform(1e-3, 1e-1), "epochs": randint(1, 11), "beta": loguniform(1e-4, 1.0)}


@register_method("neggrad+")
class NegGradPlus(UnlearnMethod):
    """NegGrad+: CE(D_r) − β·CE(D_f) on paired batches (Kurmanji et al. 2023); β = 0.001 (CPU ga_plus)."""

    Config = NegGradPlusConfig

    def batches(self, ctx: UnlearnContext, cfg: NegGradPlusConfig, epoch: int,
                gen: torch.Generator) -> Iterator[Batch]:
        return paired_batches(ctx, cfg, gen, primary="retain", forget_batch_size=cfg.forget_batch_size)

    def loss(self, ctx: UnlearnContext, cfg: NegGradPlusConfig, model: nn.Module, batch: Batch) -> torch.Tensor:
        (xr, yr), (xf, yf) = batch.retain, batch.forget
        logits = model(torch.cat([xr, xf]))
        return neggrad_plus_loss(logits[:len(xr)], yr, logits[len(xr):], yf, cfg.beta)
