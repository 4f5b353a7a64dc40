"""Random Labels (RL): train on D_r together with D_f relabelled at random.

Golatkar et al. (CVPR 2020) / Hayase et al.; as implemented in SalUn and the CPU reference code: each
forget sample gets a uniformly random label different from its true one, drawn once per run with the
run's seed, and the model is fine-tuned with CE on D_r ∪ {(x_f, y~_f)}, shuffled together.
Defaults: SalUn's RL setting for CIFAR-10 (lr 0.01, 10 epochs; the CPU repo's lr 0.1 / 20 epochs is
for its own schedule).
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
from expunge import seeds
from expunge.unlearn.base import Batch, MethodConfig, UnlearnContext, UnlearnMethod, register_method
from expunge.unlearn.finetune import FinetuneConfig


class RLConfig(FinetuneConfig):
    """FT's defaults and search space (lr 0.01, 10 epochs, augmentation on), as SalUn's RL setting."""


def random_other_labels(labels: np.ndarray, num_classes: int, generator: torch.Generator) -> np.ndarray:
    """A label != y for every y, uniform over the other classes: (y + U{1..C-1}) mod C."""
    shift = torch.randint(1, num_classes, (len(labels),), generator=generator).numpy()
    return (np.asarray(labels) + shift) % num_classes


@register_method("rl")
class RandomLabels(UnlearnMethod):
    """Random Labels: fine-tune on D_r plus D_f with random wrong labels."""

    Config = RLConfig

    def prepare(self, ctx: UnlearnContext, cfg: MethodConfig, model: torch.nn.Module) -> None:
        forget = ctx.plan.forget
        labels = ctx.data.dataset.labels.numpy()
        relabel = np.full(len(ctx.data), -1, dtype=np.int64)
        relabel[forget] = random_other_labels(labels[forget], ctx.data.num_classes, ctx.generator(seeds.Salt.RANDOM_LABELS))
        self.relabel = torch.as_tensor(relabel, device=ctx.device)
        self.indices = np.concatenate([ctx.plan.retain, forget])

    def steps_per_epoch(self, ctx: UnlearnContext, cfg: MethodConfig) -> int:
        return max(1, math.ceil(len(self.indices) / cfg.batch_size))

    def batches(self, ctx: UnlearnContext, cfg: MethodConfig, epoch: int, gen: torch.Generator) -> Iterator[Batch]:
        for x, y, idx in ctx.data.loader(self.indices, cfg.batch_size, shuffle=True, augment=cfg.augment,
                                         generator=gen):
            new = self.relabel[idx.to(ctx.device)]
            yield Batch(retain=(x, torch.where(new >= 0, new, y)))
