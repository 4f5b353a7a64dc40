"""SalUn: saliency-based unlearning (Fan et al., ICLR 2024).

1. Saliency: g = grad_theta of -CE(D_f) accumulated over one pass of the forget set (original model,
   eval mode, as SalUn's ``generate_mask.py``); rank |g| globally over all parameters and keep the top
   ``mask_ratio`` fraction as 1 (the rest 0).
2. Random Labels with masked updates: gradients are multiplied by the mask, and masked-out entries are
   put back to their original values after every step, so weight decay and momentum cannot move them
   either (SalUn's RL restores masked-out weights to theta_0).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from expunge.unlearn.space import Domain, choice, loguniform, randint
from expunge.unlearn.base import MethodConfig, UnlearnContext, register_method
from expunge.unlearn.random_labels import RandomLabels, RLConfig


class SalUnConfig(RLConfig):
    mask_ratio: float = Field(0.5, gt=0, le=1)

    @classmethod
    def search_space(cls) -> dict[str, Domain]:
        return {"lr": loguniform(1e-3, 1e-1), "epochs": randint(1, 11), "mask_ratio": choice(0.1, 0.3, 0.5, 0.7, 0.9)}


def saliency_mask(grads: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Boolean masks keeping exactly round(ratio x total) entries with the largest |g| (ties: earlier first)."""
    names = list(grads)
    flat = torch.cat([grads[n].detach().abs().reshape(-1).float().cpu() for n in names])
    k = int(round(ratio * flat.numel()))
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    if k > 0:
        keep[torch.argsort(-flat, stable=True)[:k]] = True
    out, start = {}, 0
    for n in names:
        size = grads[n].numel()
        out[n] = keep[start:start + size].reshape(grads[n].shape).to(grads[n].device)
        start += size
    return out


def forget_gradients(model: nn.Module, ctx: UnlearnContext, batch_size: int) -> dict[str, torch.Tensor]:
    """Accumulated gradients of -CE over D_f (summed over batches, like SalUn's generate_mask)."""
    was = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    for x, y, _ in ctx.loader("forget", batch_size, shuffle=False):
        (-F.cross_entropy(model(x), y)).backward()
    grads = {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
             for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    model.train(was)
    return grads


@register_method("salun")
class SalUn(RandomLabels):
    """SalUn: Random Labels restricted to the most forget-salient weights (top mask_ratio of |grad|)."""

    Config = SalUnConfig

    def prepare(self, ctx: UnlearnContext, cfg: SalUnConfig, model: nn.Module) -> None:
        super().prepare(ctx, cfg, model)
        self.mask = saliency_mask(forget_gradients(model, ctx, cfg.batch_size), cfg.mask_ratio)
        self.theta0 = {n: p.detach().clone() for n, p in model.named_parameters() if n in self.mask}

    def before_step(self, ctx: UnlearnContext, cfg: MethodConfig, model: nn.Module, epoch: int) -> None:
        for n, p in model.named_parameters():
            if p.grad is not None and n in self.mask:
                p.grad.mul_(self.mask[n])

    @torch.no_grad()
    def after_step(self, ctx: UnlearnContext, cfg: MethodConfig, model: nn.Module, epoch: int) -> None:
        for n, p in model.named_parameters():
            if n in self.mask:
                p.copy_(torch.where(self.mask[n], p, self.theta0[n]))

    def kept_fraction(self) -> float:
        total = sum(m.numel() for m in self.mask.values())
        return sum(int(m.sum()) for m in self.mask.values()) / max(1, total)
