"""Fisher forgetting (FF): Gaussian weight noise shaped by the inverse diagonal Fisher of D_r.

Golatkar, Achille & Soatto, "Eternal Sunshine of the Spotless Net: Selective Forgetting in Deep
Networks", CVPR 2020, as implemented in the CPU reference ``FisherForgetting`` ([CODE CPU:unlearn.py],
``seed-methods.md`` §1.5; identical to the SSD authors' copy). No training loop:

1. Diagonal Fisher of the retain set, per sample and in expectation over *all* classes weighted by
   the model's own predicted probabilities (the "true" Fisher, as the reference does)::

       F = 1/|D_r| Σ_{x ∈ D_r} Σ_y p_θ(y|x) · (∇_θ CE(f_θ(x), y))²

   The reference runs C backward passes per sample at batch size 1; here each chunk of samples gets
   its per-sample, per-class log-softmax Jacobian at once with ``torch.func`` (``vmap`` of ``jacrev``
   over ``functional_call``; model in eval mode). ``fisher="empirical"`` uses only the true label
   (Σ_y p_y(·)² → (∇ CE(x, y_x))²), one per-sample gradient instead of C; ``max_samples`` subsamples D_r.
2. Per parameter tensor p (:func:`fisher_mean_var`)::

       var = clamp(1 / (F + 1e-8), max=1e3);   head (``fc``) tensors: clamp(max=1e2);   var *= α
       tensors with ndim > 1: var ← its mean over dim 1, broadcast back (per output row/filter)
       class-wise forgetting (spec ``class:c``): head rows of class c get μ = 0 and var = 1e-4,
                                                then head and 1-D tensors var *= 10
       otherwise:                               1-D tensors var *= 10
       θ ← μ + sqrt(var) · ε,   ε ~ N(0, I)     (μ = θ except the zeroed head rows)

   ε comes from a CPU generator seeded from the context seed, so a run is reproducible.

**Defaults**: α = 1e-6 (the reference's hard-coded value; its ``get_mean_var`` default 3e-6 is always
overridden). The reference finds the head by ``p.size(0) == num_classes``; we use the model's ``fc``
(every expunge classifier has one) and fall back to that shape test for other models.
``class_percentage`` forget specs are treated like random forgetting (only a full class is removed).
The inherited ``epochs``/``lr``/optimizer fields are unused.
"""
from __future__ import annotations

import copy
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

from expunge import seeds
from expunge.data.device import DeviceData
from expunge.unlearn.space import Domain, choice, loguniform
from expunge.unlearn.base import MethodConfig, UnlearnContext, UnlearnMethod, register_method

#: memory budget for one chunk of per-sample (per-class) gradients: small chunks are faster on a CPU
_CHUNK_BYTES = {"cpu": 64 * 2 ** 20, "cuda": 1024 * 2 ** 20}


def diag_fisher(model: nn.Module, data: DeviceData, indices: np.ndarray, kind: str = "true",
                chunk: int | None = None) -> dict[str, torch.Tensor]:
    """Per-sample diagonal Fisher of CE over ``indices`` (mean over samples), per named parameter.

    ``kind="true"``: Σ_y p(y|x)·(∇ CE(x, y))²; ``kind="empirical"``: (∇ CE(x, y_x))².
    """
    model.eval()
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())
    n_params = sum(p.numel() for p in params.values())
    num_classes = int(data.num_classes)
    per_sample = n_params * 4 * (num_classes if kind == "true" else 1)
    budget = _CHUNK_BYTES.get(data.device.type, _CHUNK_BYTES["cpu"])
    chunk = chunk or max(1, min(256, budget // max(1, per_sample)))

    def log_probs(pr: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (pr, buffers), (x.unsqueeze(0),))
        return F.log_softmax(out.float(), dim=1).squeeze(0)

    def ce(pr: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return -log_probs(pr, x).gather(0, y.view(1)).squeeze(0)

    jac = vmap(jacrev(log_probs), in_dims=(None, 0))        # n -> [B, C, *shape]
    per_grad = vmap(grad(ce), in_dims=(None, 0, 0))          # n -> [B, *shape]
    fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    count = 0
    for x, y, _ in data.loader(indices, chunk, shuffle=False):
        if kind == "true":
            with torch.no_grad():
                probs = F.softmax(model(x).float(), dim=1)               # [B, C]
            J = jac(params, x)
            for n, g in J.items():
                fisher[n] += torch.einsum("bc,bc...->...", probs, g.float().pow(2))
        else:
            G = per_grad(params, x, y)
            for n, g in G.items():
                fisher[n] += g.float().pow(2).sum(0)
        count += len(y)
    for v in fisher.values():
        v /= max(1, count)
    return fisher


def fisher_mean_var(p: torch.Tensor, fisher: torch.Tensor, *, alpha: float, head: bool,
                    forget_class: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's ``get_mean_var``: the mean and variance of the new value of parameter ``p``.

    ``forget_class`` is the removed class for class-wise forgetting, None otherwise.
    """
    var = (1.0 / (fisher.float() + 1e-8)).clamp(max=1e3)
    if head:
        var = var.clamp(max=1e2)
    var = alpha * var
    if p.ndim > 1:
        var = var.mean(dim=1, keepdim=True).expand_as(p).clone()
    mu = p.detach().float().clone()
    if forget_class is not None:
        if head:
            mu[forget_class] = 0
            var[forget_class] = 1e-4
        if head or p.ndim == 1:
            var = var * 10
    elif p.ndim == 1:
        var = var * 10
    return mu, var


def _head_params(model: nn.Module, num_classes: int) -> set[int]:
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Module):
        return {id(p) for p in fc.parameters()}
    return {id(p) for p in model.parameters() if p.ndim >= 1 and p.size(0) == num_classes}


class FisherConfig(MethodConfig):
    #: noise scale α (var = α / F, clamped; see module docstring)
    alpha: float = Field(1e-6, gt=0)
    #: "true": expectation over all classes under the model's probabilities (reference); "empirical"
    fisher: Literal["true", "empirical"] = "true"
    #: estimate F on at most this many retain samples (None: all of D_r)
    max_samples: int | None = Field(None, ge=1)
    #: samples per vectorised per-sample-gradient chunk (None: fit 64 MiB on a CPU, 1 GiB on a GPU)
    chunk_size: int | None = Field(None, ge=1)

    @classmethod
    def search_space(cls) -> dict[str, Domain]:
        return {"alpha": loguniform(1e-8, 1e-4), "fisher": choice("true", "empirical")}


@register_method("fisher")
class FisherForgetting(UnlearnMethod):
    """Fisher forgetting (Golatkar et al. 2020): θ ← μ + sqrt(clamp(α/F_r)) · ε, the CPU reference's recipe."""

    Config = FisherConfig
    shared_loop = False

    def run(self, ctx: UnlearnContext, cfg: FisherConfig) -> nn.Module:
        model = copy.deepcopy(ctx.original).to(ctx.device).eval()
        retain = np.asarray(ctx.plan.retain)
        if cfg.max_samples is not None and cfg.max_samples < len(retain):
            pick = torch.randperm(len(retain), generator=ctx.generator(salt=seeds.Salt.FISHER_SAMPLE))[:cfg.max_samples].numpy()
            retain = np.sort(retain[pick])
        fisher = diag_fisher(model, ctx.data, retain, cfg.fisher, cfg.chunk_size)
        num_classes = int(ctx.data.num_classes)
        head = _head_params(model, num_classes)
        kind = ctx.plan.spec.kind
        forget_class = ctx.plan.forget_class if kind == "class" else None
        gen = ctx.generator(salt=seeds.Salt.FISHER_NOISE)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if not p.requires_grad:
                    continue
                mu, var = fisher_mean_var(p, fisher[n], alpha=cfg.alpha, head=id(p) in head,
                                          forget_class=forget_class)
                eps = torch.randn(p.shape, generator=gen).to(p.device)
                p.copy_((mu + var.sqrt() * eps).to(p.dtype))
        return model
