"""Seeded synthetic images with learnable class structure.

Each class gets a random smooth prototype image; a sample is its class prototype plus per-sample
Gaussian noise and a random brightness shift, clipped to uint8. ``noise`` controls how hard the task
is: low noise is easy to generalise, high noise forces the model to memorise (useful for MIAs).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from expunge.data.base import ImageDataset, register_dataset
from expunge.errors import DataError


@register_dataset("synthetic")
def synthetic(root: str | None = None, n: int = 2000, num_classes: int = 10,
              shape: tuple[int, int, int] | list[int] = (3, 16, 16), noise: float = 0.35,
              seed: int = 0) -> ImageDataset:
    """Seeded synthetic images: smooth class prototypes plus noise; any shape, class count and size."""
    c, h, w = (int(v) for v in shape)
    if n < num_classes or num_classes < 2:
        raise DataError(f"synthetic: need num_classes >= 2 and n >= num_classes (got n={n}, "
                        f"num_classes={num_classes})")
    if min(c, h, w) < 1 or noise < 0:
        raise DataError(f"synthetic: invalid shape {shape} or noise {noise}")
    g = torch.Generator().manual_seed(seed)
    # low-resolution random fields upsampled -> smooth, distinguishable prototypes
    coarse = torch.rand(num_classes, c, max(2, h // 4), max(2, w // 4), generator=g)
    protos = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=g)]
    x = protos[labels] + noise * torch.randn(n, c, h, w, generator=g)
    x = x + 0.1 * torch.randn(n, 1, 1, 1, generator=g)
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    mean = tuple(float(v) for v in images.float().div(255).mean(dim=(0, 2, 3)))
    std = tuple(float(v) for v in images.float().div(255).std(dim=(0, 2, 3)))
    return ImageDataset("synthetic", images, labels, num_classes, mean, std,
                        classes=[str(i) for i in range(num_classes)], crop_pad=max(1, h // 8), flip=True)
