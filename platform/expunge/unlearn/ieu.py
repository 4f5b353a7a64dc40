"""IEU: Influence Eliminating Unlearning (OUR formalisation; the paper's exact method is not public).

Tran & Woo, "Efficient Unlearning through Maximizing Relearning Convergence Delay", CVPR 2026
Findings, arXiv 2604.09391. **The paper's code and full text were not available when this was
written. What follows is our operationalisation of the abstract** ("removes the influence of the
forgetting set by degrading its performance and incorporates weight decay and injecting noise into
the model's weights, while maintaining accuracy on the retaining set"); it is *not* the authors'
algorithm, and results must be reported as "IEU (our formalisation)".

Each step takes a retain batch B_r paired with a forget batch B_f (``paired_batches``)::

    L(θ) = CE(f_θ(B_r)) − β · CE(f_θ(B_f)) + (λ_wd / 2) · ||θ||²
    θ ← θ − η ∇L(θ)                      (SGD; optimizer weight decay fixed at 0)
    θ ← θ + σ_t · ε,   ε ~ N(0, I)       (every trainable parameter, after every step)

with σ_t = ``noise_sigma(sigma, t, T, noise_schedule)`` over the loop's T planned steps (epochs ×
passes × steps per pass, ``LoopPlan.total_steps``):
'constant' σ, 'linear' σ(1 − t/T), 'cosine' σ·½(1 + cos(π t/T)). The weight decay is the explicit
λ_wd term only: ``weight_decay`` must stay 0, so decay is not counted twice. The noise comes from a
generator seeded from the context seed, so a run is reproducible.

The noise schedule is ``noise_schedule`` (``schedule`` is the shared loop's learning-rate schedule).

Defaults are ours (no reference values exist): the shared loop's SGD (momentum 0.9, cosine lr),
lr 0.01 and 5 epochs as fine-tuning (the SalUn README's FT lr); β = 0.1, small enough that the
unbounded −CE term does not diverge on class forgetting within 5 epochs; λ_wd = 5e-4, the usual SGD
weight decay; σ = 1e-3 per step with a cosine decay (a total random-walk std of σ√(3T/8) per weight),
which perturbs the weights without hurting retain accuracy on small models. With these defaults
``cnn`` on digits, class 3, goes from 97.5 % to 0 % forget-class test accuracy, the remaining classes
from 98.7 % to 99.4 %; β = 1 instead drops the remaining classes to 66 %.
"""
from __future__ import annotations

import math
from typing import Iterator, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from expunge import seeds
from expunge.unlearn.space import Domain, choice, loguniform, randint
from expunge.unlearn.base import (Batch, MethodConfig, UnlearnContext, UnlearnMethod, paired_batches,
                                  plan_loop, register_method)

NoiseSchedule = Literal["constant", "linear", "cosine"]


def noise_sigma(sigma: float, step: int, total: int, schedule: str) -> float:
    """Noise scale σ_t at ``step`` (0-based) of ``total``: constant, linear or cosine decay to 0 at T."""
    if schedule == "constant":
        return float(sigma)
    t = min(max(step, 0), total) / max(1, total)
    if schedule == "linear":
        return float(sigma) * (1.0 - t)
    if schedule == "cosine":
        return float(sigma) * 0.5 * (1.0 + math.cos(math.pi * t))
    raise ValueError(f"unknown noise schedule {schedule!r} (allowed: constant, linear, cosine)")


class IEUConfig(MethodConfig):
    epochs: int = Field(5, ge=1)
    lr: float = Field(0.01, gt=0)
    #: the optimizer's weight decay; must be 0 (IEU's decay is the explicit ``lambda_wd`` term)
    weight_decay: float = Field(0.0, ge=0)
    #: weight of the forget-set ascent term −β·CE(D_f)
    beta: float = Field(0.1, ge=0)
    #: explicit L2 penalty (λ_wd/2)||θ||²
    lambda_wd: float = Field(5e-4, ge=0)
    #: std of the Gaussian weight noise added after each step (before the schedule)
    sigma: float = Field(1e-3, ge=0)
    noise_schedule: NoiseSchedule = "cosine"
    #: forget batch size paired with each retain batch (None: ``batch_size``)
    forget_batch_size: int | None = Field(None, ge=1)

    @field_validator("weight_decay")
    @classmethod
    def _no_double_decay(cls, v: float) -> float:
        if v != 0:
            raise ValueError("must be 0 for IEU: its weight decay is the explicit lambda_wd term (set lambda_wd)")
        return v

    @classmethod
    def search_space(cls) -> dict[str, Domain]:
        return {"lr": loguniform(1e-3, 1e-1), "epochs": randint(1, 11), "beta": loguniform(1e-3, 1.0),
                "lambda_wd": loguniform(1e-5, 1e-2), "sigma": loguniform(1e-5, 1e-2),
                "noise_schedule": choice("constant", "linear", "cosine")}


@register_method("ieu")
class IEU(UnlearnMethod):
    """IEU, our formalisation: CE(D_r) − β·CE(D_f) + (λ/2)||θ||², then θ += σ_t·N(0, I) each step."""

    Config = IEUConfig

    def prepare(self, ctx: UnlearnContext, cfg: IEUConfig, model: nn.Module) -> None:
        self.step = 0
        # T of the noise schedule: the shared loop's planned steps, passes added by ``min_steps`` included
        self.total = plan_loop(self, ctx, cfg).total_steps
        device = next(model.parameters()).device
        self.noise_gen = torch.Generator(device=device).manual_seed(seeds.stream(ctx.seed, seeds.Salt.IEU_NOISE))

    def batches(self, ctx: UnlearnContext, cfg: IEUConfig, epoch: int, gen: torch.Generator) -> Iterator[Batch]:
        return paired_batches(ctx, cfg, gen, primary="retain", forget_batch_size=cfg.forget_batch_size)

    def loss(self, ctx: UnlearnContext, cfg: IEUConfig, model: nn.Module, batch: Batch) -> torch.Tensor:
        (xr, yr), (xf, yf) = batch.retain, batch.forget
        logits = model(torch.cat([xr, xf])).float()
        loss = F.cross_entropy(logits[:len(xr)], yr)
        if cfg.beta > 0:
            loss = loss - cfg.beta * F.cross_entropy(logits[len(xr):], yf)
        if cfg.lambda_wd > 0:
            sq = sum(p.float().pow(2).sum() for p in model.parameters() if p.requires_grad)
            loss = loss + 0.5 * cfg.lambda_wd * sq
        return loss

    @torch.no_grad()
    def after_step(self, ctx: UnlearnContext, cfg: IEUConfig, model: nn.Module, epoch: int) -> None:
        sigma_t = noise_sigma(cfg.sigma, self.step, self.total, cfg.noise_schedule)
        self.step += 1
        if sigma_t <= 0:
            return
        for p in model.parameters():
            if p.requires_grad:
                noise = torch.randn(p.shape, generator=self.noise_gen, device=p.device, dtype=p.dtype)
                p.add_(noise, alpha=sigma_t)
