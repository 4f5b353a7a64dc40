"""The optimiser pieces every training loop shares: the optimizer, the learning-rate schedules and bf16
autocast.

``build_optimizer`` reads five hyperparameters (optimizer, lr, momentum, weight_decay, nesterov) from a
:class:`~expunge.config.TrainConfig` as it is, or from an :class:`OptimizerSpec` where there is no
training config (an unlearning method's config, the relearning attack, the language-model loops).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch

from expunge.config import TrainConfig


@dataclass(frozen=True)
class OptimizerSpec:
    """Optimizer hyperparameters on their own: ``"sgd"`` (momentum, Nesterov when asked and momentum > 0)
    or ``"adamw"`` (lr and weight decay only)."""

    optimizer: str
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False


def build_optimizer(params: Iterable[torch.nn.Parameter], hp: TrainConfig | OptimizerSpec) -> torch.optim.Optimizer:
    """SGD or AdamW over ``params`` with ``hp``'s hyperparameters."""
    if hp.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
    return torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay,
                           nesterov=hp.nesterov and hp.momentum > 0)


def lr_factor(schedule: str, step: int, total: int, warmup: int) -> float:
    """Multiplier of the base learning rate at ``step`` of ``total``.

    cosine: 0.5 (1 + cos(pi t)); onecycle: linear up to 1 over the first 25% then linear down to 0
    (the triangular schedule of the fast CIFAR scripts); step: x0.1 at 50% and 75% of training.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
    if schedule == "onecycle":
        peak = 0.25
        return t / peak if t < peak else max(0.0, (1.0 - t) / (1.0 - peak))
    if schedule == "step":
        return 0.01 if t >= 0.75 else 0.1 if t >= 0.5 else 1.0
    return 1.0


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate to ``lr``."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """bf16 autocast on CUDA when ``enabled``; elsewhere a disabled autocast context."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")
