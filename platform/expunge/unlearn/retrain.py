"""Retrain: exact unlearning, training from scratch on the retain set only (the gold standard)."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from pydantic import Field
from torch import nn

from expunge.data.device import DeviceData
from expunge.unlearn.space import Domain
from expunge.train.engine import train
from expunge.unlearn.base import MethodConfig, UnlearnContext, UnlearnMethod, register_method


class RetrainConfig(MethodConfig):
    #: None: the original's epochs; lr and batch size also come from the original's recipe
    epochs: int | None = Field(None, ge=1)

    @classmethod
    def search_space(cls) -> dict[str, Domain]:
        return {}


class ForgetGuardedData(DeviceData):
    """A DeviceData view that fails loudly if any forget sample is ever drawn into a batch."""

    def __init__(self, inner: DeviceData, forbidden: np.ndarray) -> None:
        self.__dict__.update(inner.__dict__)
        self._forbidden = torch.as_tensor(forbidden, dtype=torch.int64)

    def batch(self, idx: torch.Tensor, augment: bool = False, generator: torch.Generator | None = None):
        if torch.isin(idx.cpu(), self._forbidden).any():
            raise AssertionError("a forget sample reached the retrain data loader")
        return super().batch(idx, augment=augment, generator=generator)

    def loader(self, indices, *args, **kwargs) -> Iterator:
        if np.isin(np.asarray(indices), self._forbidden.numpy()).any():
            raise AssertionError("retrain was asked to train on forget samples")
        return super().loader(indices, *args, **kwargs)


@register_method("retrain")
class Retrain(UnlearnMethod):
    """Retrain from scratch on the retain set with the original's recipe (exact unlearning)."""

    Config = RetrainConfig
    shared_loop = False

    def run(self, ctx: UnlearnContext, cfg: RetrainConfig) -> nn.Module:
        model = ctx.model_factory().to(ctx.device)
        recipe = ctx.train_cfg if cfg.epochs is None else ctx.train_cfg.model_copy(update={"epochs": cfg.epochs})
        guarded = ForgetGuardedData(ctx.data, ctx.plan.forget)
        train(model, guarded, ctx.plan.retain, recipe, seed=ctx.seed + 1, callback=ctx.callback)
        return model
