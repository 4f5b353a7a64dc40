"""A dataset moved to the device once, with batched normalisation and augmentation."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from expunge.data.augment import augment as _augment
from expunge.data.base import ImageDataset


class DeviceData:
    """Holds a dataset's uint8 images and labels on ``device`` and serves normalised batches.

    Images stay uint8 on the device (4x less memory than float); each batch is converted, augmented
    and normalised on the device when it is drawn.
    """

    def __init__(self, dataset: ImageDataset, device: str | torch.device = "cpu",
                 channels_last: bool = False) -> None:
        self.dataset = dataset
        self.device = torch.device(device)
        self.images = dataset.images.to(self.device)
        self.labels = dataset.labels.to(self.device)
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(dataset.mean, device=self.device).view(shape)
        self.std = torch.tensor(dataset.std, device=self.device).view(shape)
        self.channels_last = channels_last and self.device.type == "cuda"

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    def __len__(self) -> int:
        return len(self.dataset)

    def batch(self, idx: torch.Tensor, augment: bool = False,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float images and labels for the dataset positions ``idx``."""
        idx = idx.to(self.device)
        x = self.images[idx].float().div_(255.0)
        if augment:
            x = _augment(x, self.dataset.crop_pad, self.dataset.flip, generator)
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels[idx]

    def loader(self, indices: np.ndarray | torch.Tensor, batch_size: int, shuffle: bool = False,
               augment: bool = False, generator: torch.Generator | None = None,
               drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y, idx)`` batches over ``indices`` (dataset positions)."""
        idx = torch.tensor(np.asarray(indices), dtype=torch.int64)  # a copy: Ray hands out read-only arrays
        if shuffle:
            idx = idx[torch.randperm(len(idx), generator=generator)]
        n = len(idx)
        stop = n - (n % batch_size) if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            b = idx[start:start + batch_size]
            x, y = self.batch(b, augment=augment, generator=generator)
            yield x, y, b
