"""One plain PyTorch training loop for originals, retrains, shadows and fine-tuning.

Direct and readable in the style of airbench: data already on the device, batched augmentation,
SGD (Nesterov) or AdamW, a per-step cosine / one-cycle / step / constant schedule with linear warm-up,
label smoothing, bf16 autocast and channels_last on CUDA, optional ``torch.compile``. It imports no
Ray: Ray Train and Tune plug in through the per-epoch ``callback``.
"""
from __future__ import annotations

import math
import os
import random
import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from expunge import seeds
from expunge.config import TrainConfig
from expunge.data.device import DeviceData

EpochCallback = Callable[[dict[str, Any]], None]


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from expunge.errors import ConfigError

        raise ConfigError(f"device={name}: CUDA is not available on this machine (use device=cpu or auto)")
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for shuffling and augmentation."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.Generator().manual_seed(seed)


def build_optimizer(params, cfg: TrainConfig, lr: float | None = None) -> torch.optim.Optimizer:
    lr = cfg.lr if lr is None else lr
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           nesterov=cfg.nesterov and cfg.momentum > 0)


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


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def train(model: nn.Module, data: DeviceData, indices: np.ndarray, cfg: TrainConfig, seed: int = 0,
          callback: EpochCallback | None = None, start_epoch: int = 0,
          optimizer_state: dict | None = None) -> list[dict[str, Any]]:
    """Train ``model`` in place on dataset positions ``indices``; return per-epoch metrics.

    ``start_epoch`` and ``optimizer_state`` let a checkpointed run (Ray Train) resume where it stopped;
    the shuffling generator is re-seeded per epoch so a resumed run sees the same batches.
    """
    device = data.device
    if cfg.data_init and start_epoch == 0 and hasattr(model, "init_from_data"):
        # data-dependent first-layer init (fastnet's patch whitening) from a seeded sample of the data
        sample = torch.as_tensor(np.asarray(indices))[torch.randperm(len(indices),
                                                                     generator=torch.Generator().manual_seed(seed))]
        model.init_from_data(data.batch(sample[:5000])[0])
    model.train()
    step_model = torch.compile(model) if cfg.compile else model
    optimizer = build_optimizer(model.parameters(), cfg)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    n = len(indices)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total = steps_per_epoch * cfg.epochs
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    history = []
    for epoch in range(start_epoch, cfg.epochs):
        gen = torch.Generator().manual_seed(seeds.epoch(seed, epoch))
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        seen = 0
        for i, (x, y, _) in enumerate(data.loader(indices, cfg.batch_size, shuffle=True, augment=cfg.augment,
                                                  generator=gen)):
            step = epoch * steps_per_epoch + i
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(cfg.schedule, step, total, warmup)
            with _autocast(device, cfg.bf16):
                logits = step_model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
        record = {"epoch": epoch + 1, "loss": float(loss_sum) / max(1, seen),
                  "train_acc": float(correct) / max(1, seen), "lr": optimizer.param_groups[0]["lr"],
                  "seconds": time.perf_counter() - t0}
        history.append(record)
        if callback is not None:
            callback({**record, "_model": model, "_optimizer": optimizer})
    model.eval()
    return history


@torch.no_grad()
def evaluate(model: nn.Module, data: DeviceData, indices: np.ndarray, batch_size: int = 1024,
             augment: bool = False, generator: torch.Generator | None = None) -> np.ndarray:
    """Per-sample logits ``[len(indices), C]`` (float32, eval mode, no augmentation by default)."""
    was_training = model.training
    model.eval()
    out = []
    device = data.device
    for x, _, _ in data.loader(indices, batch_size, augment=augment, generator=generator):
        with _autocast(device, True):
            out.append(model(x).float().cpu())
    model.train(was_training)
    if not out:
        return np.zeros((0, data.num_classes), dtype=np.float32)
    return torch.cat(out).numpy()


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        return float("nan")
    return float((np.asarray(logits).argmax(1) == np.asarray(labels)).mean())
