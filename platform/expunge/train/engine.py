"""One plain PyTorch training loop for originals, retrains, shadows and fine-tuning, on the step core
every training loop of the project shares.

Direct and readable in the style of airbench: data already on the device, batched augmentation,
SGD (Nesterov) or AdamW, a per-step cosine / one-cycle / step / constant schedule with linear warm-up,
label smoothing, bf16 autocast and channels_last on CUDA, optional ``torch.compile``. It imports no
Ray: Ray Train and Tune plug in through the per-epoch ``callback``.

:func:`run_steps` is the core: one optimiser step per batch (learning rate, loss under autocast,
backward, clipping, step, finiteness check). :func:`train`, the unlearning methods' shared loop
(:func:`expunge.unlearn.base.run_loop`), PRU, the relearning attack and the language-model loops run
their steps through it; each keeps its own epochs, data and records. The batched ensemble
(:mod:`expunge.train.ensemble`) shares only the optimiser pieces (:mod:`expunge.train.optim`).
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import time
from typing import Any, Callable, Iterable, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from expunge import seeds
from expunge.config import TrainConfig
from expunge.data.device import DeviceData
from expunge.train.optim import autocast, build_optimizer, lr_factor, set_lr

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


B = TypeVar("B")


def run_steps(optimizer: torch.optim.Optimizer, batches: Iterable[B],
              loss_fn: Callable[[B], torch.Tensor | None], *, lr_at: Callable[[int], float] | None = None,
              step: int = 0, device: torch.device | None = None, bf16: bool = False,
              grad_clip: float | None = None, before_step: Callable[[], None] | None = None,
              after_step: Callable[[], None] | None = None,
              on_step: Callable[[int, torch.Tensor], bool | None] | None = None,
              diverged: str | None = None) -> list[torch.Tensor]:
    """One optimiser step per batch of ``batches``; returns each step's loss (detached, on its device).

    Per batch, in this order: the learning rate ``lr_at(step)`` (None: left as it is), where ``step``
    counts the steps taken, starting at ``step``; ``loss_fn(batch)``, under :func:`~expunge.train.optim.autocast`
    when ``device`` is given (None: no autocast context at all); a None loss skips the batch (no step);
    backward; the gradients of the optimizer's parameters clipped to norm ``grad_clip``; ``before_step``;
    the optimizer step; ``after_step``; then ``on_step(steps taken, loss)``, which ends the run early by
    returning True. With ``diverged`` set, a summed loss that is not finite raises FloatingPointError
    with that message once the batches are done.
    """
    losses: list[torch.Tensor] = []
    for batch in batches:
        if lr_at is not None:
            set_lr(optimizer, lr_at(step))
        with autocast(device, bf16) if device is not None else contextlib.nullcontext():
            loss = loss_fn(batch)
        if loss is None:
            continue
        optimizer.zero_grad(set_to_none=True)
        loss.float().backward()
        if grad_clip:
            nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], grad_clip)
        if before_step is not None:
            before_step()
        optimizer.step()
        if after_step is not None:
            after_step()
        losses.append(loss.detach())
        step += 1
        if on_step is not None and on_step(step, losses[-1]):
            break
    if diverged is not None and not math.isfinite(sum(float(loss) for loss in losses)):
        raise FloatingPointError(diverged)
    return losses


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
    # the epoch's running totals, on the device (no host sync per step)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    seen = 0

    def loss_fn(batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        nonlocal seen
        x, y, _ = batch
        logits = step_model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        loss_sum.add_(loss.detach() * len(y))
        correct.add_((logits.argmax(1) == y).sum())
        seen += len(y)
        return loss

    for epoch in range(start_epoch, cfg.epochs):
        gen = torch.Generator().manual_seed(seeds.epoch(seed, epoch))
        t0 = time.perf_counter()
        loss_sum.zero_()
        correct.zero_()
        seen = 0
        run_steps(optimizer, data.loader(indices, cfg.batch_size, shuffle=True, augment=cfg.augment, generator=gen),
                  loss_fn, lr_at=lambda step: cfg.lr * lr_factor(cfg.schedule, step, total, warmup),
                  step=epoch * steps_per_epoch, device=device, bf16=cfg.bf16, grad_clip=cfg.grad_clip)
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
        with autocast(device, True):
            out.append(model(x).float().cpu())
    model.train(was_training)
    if not out:
        return np.zeros((0, data.num_classes), dtype=np.float32)
    return torch.cat(out).numpy()


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        return float("nan")
    return float((np.asarray(logits).argmax(1) == np.asarray(labels)).mean())
