"""scikit-learn's bundled handwritten digits: 1,797 real 8x8 grey images, 10 classes, no download."""
from __future__ import annotations

import numpy as np
import torch

from expunge.data.base import ImageDataset, register_dataset


@register_dataset("digits")
def digits(root: str | None = None) -> ImageDataset:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes); embedded, no download."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # pixel values are 0..16; scale to the uint8 range so every dataset shares one normalisation path
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    mean = float(images.mean() / 255.0)
    std = float(images.std() / 255.0)
    return ImageDataset("digits", torch.from_numpy(images), torch.from_numpy(labels), 10,
                        (mean,), (std,), classes=[str(i) for i in range(10)], crop_pad=1, flip=False)
