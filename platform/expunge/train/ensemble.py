"""Several models of one architecture trained together on one device: a batched ensemble.

The members' parameters and buffers are stacked (``torch.func.stack_module_state``) and one
``torch.func.vmap``-ed forward and backward pass per step trains all of them, each on its own batch of
its own samples. On a GPU this turns K small kernels into one large one (the fleet path's answer
to models too small to fill a device); on a CPU it saves little, since the work is the same.

Each member sees exactly what :func:`expunge.train.engine.train` would show it: the same seeded
initialisation (the caller builds it), the same shuffling generator per epoch
(``seed * 100_003 + epoch``), the same augmentation, learning-rate schedule and optimizer, with the
loss summed over members so every member's gradient is its own. The result equals sequential
training up to floating-point reassociation of the batched kernels. BatchNorm running statistics
are batched buffers and update per member. Members must train on the same number of samples (the
fleet groups them so), since a step stacks one batch of each.

The loop does not go through the step core :func:`expunge.train.engine.run_steps`, only through the
optimiser pieces of :mod:`expunge.train.optim`: a step here trains K models, not one. Its batch is
one batch from each of K loaders, its loss a vector of K member losses recorded per member, and its
parameters are stacked tensors of no module; autocast covers the vmapped forward only (the loss is
computed outside it). Fitting that into the core's one-model, one-loss step would hide what differs.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state

from expunge import seeds as derive
from expunge.config import TrainConfig
from expunge.data.device import DeviceData
from expunge.errors import ConfigError
from expunge.train.optim import autocast, build_optimizer, lr_factor, set_lr


def check_ensemble(cfg: TrainConfig) -> None:
    """Options the batched path does not implement, refused rather than silently ignored."""
    if cfg.grad_clip:
        raise ConfigError("fleet.ensemble: train.grad_clip is not supported for batched ensembles (set fleet.ensemble=1)")
    if cfg.compile:
        raise ConfigError("fleet.ensemble: train.compile is not supported for batched ensembles (set fleet.ensemble=1)")


def train_ensemble(models: list[nn.Module], data: DeviceData, member_indices: list[np.ndarray], cfg: TrainConfig,
                   seeds: list[int]) -> list[list[dict[str, Any]]]:
    """Train ``models`` (already initialised, on ``data.device``) together, in place; per-member histories."""
    check_ensemble(cfg)
    sizes = {len(ix) for ix in member_indices}
    if len(models) != len(member_indices) or len(models) != len(seeds) or len(sizes) != 1:
        raise ValueError("train_ensemble needs one index set and seed per model, all of one size")
    n = sizes.pop()
    for model, idx, seed in zip(models, member_indices, seeds):
        if cfg.data_init and hasattr(model, "init_from_data"):  # as train() does, per member
            sample = torch.as_tensor(np.asarray(idx))[torch.randperm(len(idx), generator=torch.Generator().manual_seed(seed))]
            model.init_from_data(data.batch(sample[:5000])[0])
        model.train()
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def forward(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (x,))

    batched = torch.vmap(forward, randomness="different")
    optimizer = build_optimizer(list(params.values()), cfg)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total = steps_per_epoch * cfg.epochs
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    k = len(models)
    histories: list[list[dict[str, Any]]] = [[] for _ in models]
    for epoch in range(cfg.epochs):
        gens = [torch.Generator().manual_seed(derive.epoch(seed, epoch)) for seed in seeds]
        loaders = [data.loader(idx, cfg.batch_size, shuffle=True, augment=cfg.augment, generator=g)
                   for idx, g in zip(member_indices, gens)]
        t0 = time.perf_counter()
        loss_sum = torch.zeros(k, device=data.device)
        correct = torch.zeros(k, device=data.device)
        seen = 0
        for i, batches in enumerate(zip(*loaders)):
            step = epoch * steps_per_epoch + i
            set_lr(optimizer, cfg.lr * lr_factor(cfg.schedule, step, total, warmup))
            x = torch.stack([b[0] for b in batches])
            y = torch.stack([b[1] for b in batches])
            with autocast(data.device, cfg.bf16):
                logits = batched(params, buffers, x).float()
            losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), label_smoothing=cfg.label_smoothing,
                                     reduction="none").view(k, -1).mean(dim=1)
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()  # each member's gradient is that of its own mean loss
            optimizer.step()
            loss_sum += losses.detach() * y.shape[1]
            correct += (logits.argmax(-1) == y).sum(dim=1)
            seen += y.shape[1]
        seconds = time.perf_counter() - t0
        for m in range(k):
            histories[m].append({"epoch": epoch + 1, "loss": float(loss_sum[m]) / max(1, seen),
                                 "train_acc": float(correct[m]) / max(1, seen), "lr": optimizer.param_groups[0]["lr"],
                                 "seconds": seconds / k, "ensemble": k})
    with torch.no_grad():
        for m, model in enumerate(models):
            model.load_state_dict({**{name: p[m] for name, p in params.items()},
                                   **{name: b[m] for name, b in buffers.items()}})
            model.eval()
    return histories
