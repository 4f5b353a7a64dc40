"""Batched augmentation on the device: one call augments a whole batch, no per-sample Python.

Random crop with zero padding (Krizhevsky et al., 2012, as in every CIFAR ResNet recipe) and random
horizontal flip, both drawn from the caller's seeded generator so training is reproducible.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad ``x`` [B, C, H, W] by ``pad`` pixels with zeros and take one random HxW crop per sample."""
    if pad <= 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    off = torch.randint(0, 2 * pad + 1, (2, b), generator=generator, device="cpu").to(x.device)
    rows = off[0][:, None] + torch.arange(h, device=x.device)  # [B, H]
    cols = off[1][:, None] + torch.arange(w, device=x.device)  # [B, W]
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each sample left-right with probability 1/2."""
    mask = torch.rand(x.shape[0], generator=generator, device="cpu").to(x.device) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


def augment(x: torch.Tensor, crop_pad: int, flip: bool,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Crop then flip, as the standard CIFAR recipe does."""
    x = random_crop(x, crop_pad, generator)
    return random_flip(x, generator) if flip else x
