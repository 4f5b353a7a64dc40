"""SSD: Selective Synaptic Dampening (retrain-free, one pass of importance estimates).

Foster, Schoepf & Brintrup, "Fast Machine Unlearning Without Retraining Through Selective Synaptic
Dampening", AAAI 2024. No training loop. With the diagonal Fisher-style importance

    I_D = mean over mini-batches B of D of (∇_θ CE(f_θ(B)))²          (elementwise; model in eval mode)

computed on the forget set D_f (I_f) and on the full training data D = D_f ∪ D_r (I_D, ``plan.train``)
with the same batch size, every parameter θ_i with  I_f,i > α · I_D,i  (selection) is scaled by

    β_i = min( (λ · I_D,i / I_f,i)^exponent , lower_bound )        (dampening; ≤ 1, never amplified)

and all other parameters are left untouched. This is :func:`ssd_dampen`, following
[CODE CPU:unlearn.py ParameterPerturber.calc_importance/modify_weight], itself the SSD authors' code.

**Defaults** (``seed-methods.md`` §1.5, the SSD paper's ResNet settings): λ (``dampening_constant``)
= 1, α (``selection_weighting``) = 10 (the CPU code uses 5 for ViT on CIFAR-100), exponent 1,
lower bound 1. The importance batch size is ours (128, the shared default); as in the reference it is
a batch-level squared gradient, so D_f and D must use the same batch size for the ratio to mean
anything. α is model-dependent (the paper tunes it): on ``cnn``/digits, forgetting class 3, α = 10
selects ~30 % of the weights and leaves 22 % accuracy on the other classes, α = 50 selects ~4 % and
forgets the class with 97.5 % kept. The inherited ``epochs``/``lr``/optimizer fields are unused, and
no per-epoch callback is made.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from expunge.data.device import DeviceData
from expunge.unlearn.space import Domain, loguniform
from expunge.unlearn.base import MethodConfig, UnlearnContext, UnlearnMethod, register_method


def batch_importance(model: nn.Module, data: DeviceData, indices: np.ndarray,
                     batch_size: int) -> dict[str, torch.Tensor]:
    """Mean over mini-batches of the squared mini-batch CE gradient, per named parameter."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    imp = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    n_batches = 0
    for x, y, _ in data.loader(indices, batch_size, shuffle=False):
        loss = F.cross_entropy(model(x).float(), y)
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for (n, _), g in zip(params.items(), grads):
            if g is not None:
                imp[n] += g.detach().float().pow(2)
        n_batches += 1
    for v in imp.values():
        v /= max(1, n_batches)
    return imp


@torch.no_grad()
def ssd_dampen(params: dict[str, torch.Tensor], imp_d: dict[str, torch.Tensor], imp_f: dict[str, torch.Tensor],
               alpha: float = 10.0, lam: float = 1.0, exponent: float = 1.0,
               lower_bound: float = 1.0) -> dict[str, int]:
    """Dampen ``params`` in place; return how many entries of each were selected.

    θ_i ← θ_i · min((λ·imp_D,i / imp_f,i)^exponent, lower_bound)  where  imp_f,i > α·imp_D,i.
    """
    counts = {}
    for name, p in params.items():
        d, f = imp_d[name].to(p.device), imp_f[name].to(p.device)
        sel = f > alpha * d
        weight = (lam * d[sel] / f[sel]).pow(exponent).clamp(max=lower_bound)
        p[sel] = p[sel] * weight.to(p.dtype)
        counts[name] = int(sel.sum())
    return counts


class SSDConfig(MethodConfig):
    #: batch size of the importance passes (same for D_f and D)
    batch_size: int = Field(128, ge=1)
    #: α: select parameters with imp_f > α · imp_D
    selection_weighting: float = Field(10.0, gt=0)
    #: λ: dampening factor β = min((λ · imp_D / imp_f)^exponent, lower_bound)
    dampening_constant: float = Field(1.0, gt=0)
    exponent: float = Field(1.0, gt=0)
    lower_bound: float = Field(1.0, gt=0)

    @classmethod
    def search_space(cls) -> dict[str, Domain]:
        return {"selection_weighting": loguniform(1.0, 100.0), "dampening_constant": loguniform(0.1, 10.0)}


@register_method("ssd")
class SSD(UnlearnMethod):
    """Selective Synaptic Dampening (Foster et al. 2024): dampen weights far more important to D_f than D."""

    Config = SSDConfig
    shared_loop = False

    def run(self, ctx: UnlearnContext, cfg: SSDConfig) -> nn.Module:
        model = copy.deepcopy(ctx.original).to(ctx.device).eval()
        imp_f = batch_importance(model, ctx.data, ctx.plan.forget, cfg.batch_size)
        imp_d = batch_importance(model, ctx.data, ctx.plan.train, cfg.batch_size)
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        ssd_dampen(params, imp_d, imp_f, cfg.selection_weighting, cfg.dampening_constant, cfg.exponent,
                   cfg.lower_bound)
        return model
