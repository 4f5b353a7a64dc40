"""Relearning attacks: one harness, two protocols.

* **PRU relearn test** (Zhang et al., ACML 2024, ``train_relearn.py``): fine-tune the unlearned model
  on *remaining-class* data the original never saw, with plain SGD (lr 1e-3, momentum 0.9, batch 64,
  optimizer re-created every epoch, no schedule), and record the forgotten class's test accuracy after
  epochs 1, 5 and 10. Relearning succeeds when that accuracy climbs back although no forget-class
  sample is used.
* **Relearning convergence delay** (RCD; Tran & Woo, CVPR 2026 Findings, arXiv 2604.09391). The
  paper's definition is not public: this is **our formalisation**, labelled as such in every report.
  Relearn on the forget set with plain SGD (no momentum, fixed lr, the setting of the paper's
  gradient-descent analysis); RCD = the number of steps until forget accuracy reaches
  ``tau`` x the original model's forget accuracy, capped at ``max_steps``. Along the way the curve of
  ||theta_t - theta_orig||_2 and ||theta_t - theta_unlearned||_2 is recorded, so a weight-space variant
  can be computed from the same run.

The harness runs models (it lives in ``audit/``); what it returns are plain arrays for ``metrics/``.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from expunge.data.device import DeviceData
from expunge.train.engine import accuracy, evaluate, run_steps
from expunge.train.optim import OptimizerSpec, build_optimizer


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).float() for p in model.parameters()])


@dataclass
class RelearnCurve:
    """Evaluation points of one relearning run (``step`` counts optimizer steps)."""

    step: list[int] = field(default_factory=list)
    epoch: list[float] = field(default_factory=list)
    acc: dict[str, list[float]] = field(default_factory=dict)
    dist_original: list[float] = field(default_factory=list)
    dist_start: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "acc": self.acc, "dist_original": self.dist_original,
                "dist_start": self.dist_start}


def relearn(model: nn.Module, data: DeviceData, train_idx: np.ndarray, eval_sets: dict[str, np.ndarray], *,
            epochs: int = 10, lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 0.0,
            batch_size: int = 64, eval_epochs: tuple[int, ...] | None = None, eval_every_steps: int | None = None,
            max_steps: int | None = None, stop_when: tuple[str, float] | None = None,
            original: nn.Module | None = None, reset_optimizer_each_epoch: bool = True,
            seed: int = 0) -> RelearnCurve:
    """Fine-tune a *copy* of ``model`` on ``train_idx`` and evaluate ``eval_sets`` along the way.

    Evaluation happens at step 0, after each epoch in ``eval_epochs`` (all epochs if None) and every
    ``eval_every_steps`` steps; ``stop_when=(set, accuracy)`` ends the run at the first evaluation that
    reaches it, ``max_steps`` caps the steps.
    """
    work = copy.deepcopy(model).to(data.device)
    start = flat_params(work)
    orig = flat_params(original).to(start.device) if original is not None else None
    labels = data.dataset.labels.numpy()
    curve = RelearnCurve(acc={k: [] for k in eval_sets})
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = max(1, math.ceil(len(train_idx) / batch_size))

    def record(step: int) -> bool:
        curve.step.append(step)
        curve.epoch.append(step / steps_per_epoch)
        for name, idx in eval_sets.items():
            curve.acc[name].append(accuracy(evaluate(work, data, idx), labels[idx]))
        p = flat_params(work)
        curve.dist_start.append(float(torch.linalg.vector_norm(p - start)))
        curve.dist_original.append(float(torch.linalg.vector_norm(p - orig)) if orig is not None else float("nan"))
        return stop_when is not None and curve.acc[stop_when[0]][-1] >= stop_when[1]

    stopped = False

    def on_step(step: int, loss: torch.Tensor) -> bool:  # evaluate on schedule; True ends the run
        nonlocal stopped
        if eval_every_steps and step % eval_every_steps == 0 and record(step):
            stopped = True
        elif max_steps is not None and step >= max_steps:
            record(step)
            stopped = True
        return stopped

    if record(0):
        return curve
    step = 0
    opt = None
    for epoch in range(1, epochs + 1):
        if opt is None or reset_optimizer_each_epoch:
            opt = build_optimizer(work.parameters(), OptimizerSpec("sgd", lr, momentum, weight_decay))
        work.train()
        step += len(run_steps(opt, data.loader(train_idx, batch_size, shuffle=True, generator=gen),
                              lambda batch: F.cross_entropy(work(batch[0]), batch[1]), step=step, on_step=on_step))
        if stopped:
            return curve
        if (eval_epochs is None or epoch in eval_epochs) and (not eval_every_steps or step % eval_every_steps):
            if record(step):
                return curve
    return curve


def pru_relearn_test(model: nn.Module, data: DeviceData, relearn_idx: np.ndarray, forget_class: int,
                     test_idx: np.ndarray, *, epochs: int = 10, lr: float = 1e-3, batch_size: int = 64,
                     seed: int = 0) -> RelearnCurve:
    """PRU's protocol: relearn on remaining-class samples of a split the original never trained on.

    ``relearn_idx`` is filtered to the remaining classes here, so no forget-class sample is ever used.
    Reports forget-class and remaining-class test accuracy after epochs 1, 5 and 10 (and step 0).
    """
    labels = data.dataset.labels.numpy()
    remain = relearn_idx[labels[relearn_idx] != forget_class]
    sets = {"forget_class_test": test_idx[labels[test_idx] == forget_class],
            "remaining_test": test_idx[labels[test_idx] != forget_class]}
    return relearn(model, data, remain, sets, epochs=epochs, lr=lr, momentum=0.9, batch_size=batch_size,
                   eval_epochs=tuple(e for e in (1, 5, 10) if e <= epochs) or (epochs,), seed=seed)


def relearn_convergence_delay(model: nn.Module, original: nn.Module, data: DeviceData, forget_idx: np.ndarray,
                              *, tau: float = 0.95, lr: float = 0.01, batch_size: int = 64, max_steps: int = 200,
                              eval_every_steps: int = 1, seed: int = 0) -> dict:
    """RCD, our formalisation (see the module docstring): steps of plain SGD on D_f until
    Acc(D_f) >= tau * Acc_original(D_f), capped at ``max_steps`` (then ``reached`` is False)."""
    labels = data.dataset.labels.numpy()
    target = tau * accuracy(evaluate(original, data, forget_idx), labels[forget_idx])
    epochs = math.ceil(max_steps / max(1, math.ceil(len(forget_idx) / batch_size)))
    curve = relearn(model, data, forget_idx, {"forget": forget_idx}, epochs=epochs, lr=lr, momentum=0.0,
                    batch_size=batch_size, eval_every_steps=eval_every_steps, max_steps=max_steps,
                    stop_when=("forget", target), original=original, reset_optimizer_each_epoch=False, seed=seed)
    reached = curve.acc["forget"][-1] >= target
    return {"rcd_steps": curve.step[-1] if reached else max_steps, "reached": bool(reached),
            "target_acc": target, "curve": curve.to_dict(), "definition": "expunge formalisation (paper not public)"}
