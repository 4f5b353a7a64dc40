"""The small memorising bench the metric tests share: a 64-64-10 MLP fitted full-batch on digits with
Adam, long enough (no augmentation, no regularisation) to memorise flipped labels."""
from __future__ import annotations

import numpy as np
import torch

EPOCHS, LR = 200, 2e-2


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))


def fit(x: np.ndarray, y: np.ndarray, seed: int) -> torch.nn.Module:
    """A seeded :func:`mlp` trained on ``(x, y)``: full batch, ``EPOCHS`` Adam steps at ``LR``."""
    torch.manual_seed(seed)
    m = mlp()
    opt = torch.optim.Adam(m.parameters(), lr=LR)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    for _ in range(EPOCHS):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(xt), yt).backward()
        opt.step()
    return m
