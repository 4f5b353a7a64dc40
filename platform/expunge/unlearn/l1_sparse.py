"""ℓ1-sparse unlearning: fine-tune on the retain set with a decaying ℓ1 penalty on the weights.

Jia, Liu, Ram, Yao, Liu, Liu, Sharma & Liu, "Model Sparsity Can Simplify Machine Unlearning",
NeurIPS 2023 ("sparsity-aware unlearning"; ``FT_prune`` / ``FT_l1`` in the Unlearn-Sparse code)::

    L_t(θ) = CE(f_θ(D_r)) + α_t · ||θ||₁            (||θ||₁: sum of |θ| over all parameters)
    α_t    = α · (1 − t / (E − n))   for epoch t < E − n   (linear decay to 0)
           = α                       if E − n = 0          (the reference's special case)
           = 0                       otherwise (the last n = ``no_l1_epochs`` epochs are plain FT)

The decay is :func:`l1_alpha`, following [CODE SPARSE:unlearn/FT.py FT_iter] (non-ImageNet branch).

**Defaults.** lr 0.01, 10 epochs and SGD (momentum 0.9, weight decay 5e-4) are the Unlearn-Sparse
README's ``FT_prune`` command (the learning-rate schedule is the shared cosine, as for ``finetune``);
``no_l1_epochs`` 0 is the SalUn/Sparse argument parser's default. α = 5e-4 is our choice: the README
leaves ``--alpha ${alpha}`` to the user, and the arg-parser default α = 0.2 is the shared "unlearn
noise" knob of Fisher forgetting, not a sparsity weight. The norm is *unnormalised*, so each weight
feels α·sign(θ) per step whatever the model size, and the total shrinkage is about
lr·α·steps/(1 − momentum)·⅓ (⅓: the mean of the linear α decay times the cosine learning rate).
α = 0.2 leaves ``cnn`` on digits at chance level (12 % on the remaining classes after 10 epochs).
α = 5e-4 shrinks each weight by ~0.03 over 10 CIFAR-10 epochs at the reference's batch 256 (1 760
steps; twice that at the shared batch 128), a firm but not destructive prior; with few steps per
epoch (digits: 8) it is correspondingly weak, and α ≈ 0.02–0.05 is needed for a visible effect.
Sweep ``alpha`` on a log scale (``search_space``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from expunge.unlearn.space import Domain, loguniform, randint
from expunge.unlearn.base import Batch, MethodConfig, UnlearnContext, UnlearnMethod, register_method


def l1_alpha(alpha: float, epoch: int, epochs: int, no_l1_epochs: int) -> float:
    """α_t of the reference: linear decay from α at epoch 0 to 0 at epoch E − n, then 0.

    ``epoch`` is 0-based. If E − n = 0 the reference keeps α constant (its ``elif`` branch).
    """
    span = epochs - no_l1_epochs
    if epoch < span:
        return float(alpha) * (1.0 - epoch / span)
    if span == 0:
        return float(alpha)
    return 0.0


def l1_norm(model: nn.Module) -> torch.Tensor:
    """||θ||₁ over all trainable parameters (the reference's ``l1_regularization``)."""
    return sum(p.float().abs().sum() for p in model.parameters() if p.requires_grad)


class L1SparseConfig(MethodConfig):
    epochs: int = Field(10, ge=1)
    lr: float = Field(0.01, gt=0)
    #: initial ℓ1 weight α (decays linearly to 0; see module docstring)
    alpha: float = Field(5e-4, ge=0)
    #: final epochs trained without the ℓ1 term
    no_l1_epochs: int = Field(0, ge=0)

    @classmethod
    def search_space(cls) -> dict[str, Domain]:
        return {"lr": loguniform(1e-3, 1e-1), "epochs": randint(1, 11), "alpha": loguniform(1e-5, 1e-1)}


@register_method("l1_sparse")
class L1Sparse(UnlearnMethod):
    """ℓ1-sparse (Jia et al. 2023): CE(D_r) + α_t·||θ||₁, α_t decaying linearly; lr 0.01, 10 epochs."""

    Config = L1SparseConfig

    def prepare(self, ctx: UnlearnContext, cfg: L1SparseConfig, model: nn.Module) -> None:
        self.alpha_t = l1_alpha(cfg.alpha, 0, cfg.epochs, cfg.no_l1_epochs)

    def batches(self, ctx: UnlearnContext, cfg: L1SparseConfig, epoch: int, gen: torch.Generator):
        self.alpha_t = l1_alpha(cfg.alpha, epoch, cfg.epochs, cfg.no_l1_epochs)
        return super().batches(ctx, cfg, epoch, gen)

    def loss(self, ctx: UnlearnContext, cfg: L1SparseConfig, model: nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch.retain
        loss = F.cross_entropy(model(x).float(), y)
        if self.alpha_t > 0:
            loss = loss + self.alpha_t * l1_norm(model)
        return loss
