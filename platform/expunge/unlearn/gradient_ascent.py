"""Gradient ascent (GA): maximise the cross-entropy of the forget set.

L = -CE(f(x_f), y_f) on D_f only (Thudi et al., 2022; Graves et al., 2021). SGD with momentum and
no schedule, as in the CPU reference code; the SalUn README uses lr 1e-4 for 5 epochs on CIFAR.
"""
from __future__ import annotations

import math
from typing import Iterator, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from expunge.unlearn.space import Domain, loguniform, randint
from expunge.unlearn.base import Batch, MethodConfig, UnlearnContext, UnlearnMethod, register_method


class GAConfig(MethodConfig):
    epochs: int = Field(5, ge=1)
    lr: float = Field(1e-4, gt=0)
    schedule: Literal["constant", "cosine", "onecycle", "step"] = "constant"

    @classmethod
    def search_space(cls) -> dict[str, Domain]:
        return {"lr": loguniform(1e-5, 1e-2), "epochs": randint(1, 11)}


@register_method("ga")
class GradientAscent(UnlearnMethod):
    """Gradient ascent on the forget set: minimise -CE(D_f)."""

    Config = GAConfig

    def steps_per_epoch(self, ctx: UnlearnContext, cfg: GAConfig) -> int:
        return max(1, math.ceil(len(ctx.plan.forget) / cfg.batch_size))

    def batches(self, ctx: UnlearnContext, cfg: GAConfig, epoch: int, gen: torch.Generator) -> Iterator[Batch]:
        for x, y, _ in ctx.loader("forget", cfg.batch_size, augment=cfg.augment, generator=gen):
            yield Batch(forget=(x, y))

    def loss(self, ctx: UnlearnContext, cfg: GAConfig, model: nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch.forget
        return -F.cross_entropy(model(x), y)
