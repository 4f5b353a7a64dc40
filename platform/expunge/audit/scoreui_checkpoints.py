"""ScoreUI's ground truth of partial membership (IAM paper, ``new_records_internal.py``).

A model initialised from a shadow that never saw the target data is trained on the target set; after
every ``epochs / breaks`` epochs its weights are a checkpoint b, whose ground-truth membership for
every target sample is b / breaks (b = 0 ... breaks). Each checkpoint then plays the audited model,
and :func:`expunge.metrics.scoreui.scoreui` correlates the scores with b / breaks.

The reference saves the best-validation-accuracy-so-far state at each break, so a checkpoint is not
always the weights at that epoch; here checkpoint b is exactly the weights after b * epochs / breaks
epochs, which is what the b / breaks ground truth assumes.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from expunge.config import TrainConfig
from expunge.data.device import DeviceData
from expunge.train.engine import train


def partial_membership_checkpoints(init_model: nn.Module, data: DeviceData, target_idx: np.ndarray,
                                   cfg: TrainConfig, breaks: int = 20,
                                   seed: int = 0) -> list[tuple[float, dict[str, torch.Tensor]]]:
    """``[(b / breaks, state_dict)]`` for b = 0 ... breaks, training a copy of ``init_model`` on
    ``target_idx`` with the engine; ``cfg.epochs`` must be a multiple of ``breaks``."""
    if breaks < 1 or cfg.epochs % breaks:
        from expunge.errors import ConfigError

        raise ConfigError(f"ScoreUI: train.epochs={cfg.epochs} must be a positive multiple of breaks={breaks}")
    model = copy.deepcopy(init_model).to(data.device)
    out = [(0.0, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})]
    every = cfg.epochs // breaks

    def keep(rec: dict) -> None:
        if rec["epoch"] % every == 0:
            out.append((rec["epoch"] / cfg.epochs,
                        {k: v.detach().cpu().clone() for k, v in rec["_model"].state_dict().items()}))

    # one run of the whole schedule, so the learning-rate schedule spans all epochs as in the reference
    train(model, data, target_idx, cfg, seed=seed, callback=keep)
    return out
