"""The in-memory dataset type and the dataset registry.

Every dataset is held as tensors: ``images`` uint8 ``[N, C, H, W]`` and ``labels`` int64 ``[N]``.
Loaders return the whole pool (train and test parts concatenated, ``is_test`` marking the official
test part where the source has one) and the :class:`~expunge.data.splits.SplitPlan` carves it up.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from expunge.errors import DataError
from expunge.registry import Registry

DATASETS: Registry[Callable[..., "ImageDataset"]] = Registry("dataset")
register_dataset = DATASETS.register


@dataclass
class ImageDataset:
    """Images as uint8 tensors with their labels and normalisation constants."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    is_test: np.ndarray | None = None
    classes: list[str] | None = None
    #: default augmentation for training (random crop padding in pixels, horizontal flip)
    crop_pad: int = 0
    flip: bool = False
    #: positions whose label was corrupted (:func:`expunge.data.noise.with_label_noise`), and the true labels
    noisy: np.ndarray | None = None
    clean_labels: torch.Tensor | None = None
    _fingerprint: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DataError(f"dataset {self.name}: images must be uint8 [N, C, H, W], got "
                            f"{self.images.dtype} {tuple(self.images.shape)}")
        self.labels = self.labels.to(torch.int64)
        if self.labels.shape != (self.images.shape[0],):
            raise DataError(f"dataset {self.name}: {self.images.shape[0]} images but "
                            f"{tuple(self.labels.shape)} labels")
        if len(self) == 0:
            raise DataError(f"dataset {self.name} is empty")
        lo, hi = int(self.labels.min()), int(self.labels.max())
        if lo < 0 or hi >= self.num_classes:
            raise DataError(f"dataset {self.name}: labels span {lo}..{hi} but num_classes={self.num_classes}")
        if len(self.mean) != self.images.shape[1] or len(self.std) != self.images.shape[1]:
            raise DataError(f"dataset {self.name}: mean/std need {self.images.shape[1]} channels")
        if self.is_test is not None:
            self.is_test = np.asarray(self.is_test, dtype=bool)
            if self.is_test.shape != (len(self),):
                raise DataError(f"dataset {self.name}: is_test has the wrong length")
        if self.noisy is not None:
            self.noisy = np.asarray(self.noisy, dtype=bool)
            if self.noisy.shape != (len(self),):
                raise DataError(f"dataset {self.name}: the label-noise mask has the wrong length")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def in_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def fingerprint(self) -> str:
        """sha256 over name, shape, pixel bytes, labels and the official test mask."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(f"{self.name}|{tuple(self.images.shape)}|{self.num_classes}".encode())
            h.update(self.images.contiguous().numpy().tobytes())
            h.update(self.labels.numpy().astype("<i8").tobytes())
            if self.is_test is not None:
                h.update(np.packbits(self.is_test).tobytes())
            if self.noisy is not None:
                h.update(b"noisy")
                h.update(np.packbits(self.noisy).tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


def load_dataset(name: str, root: str | None = None, **kwargs) -> ImageDataset:
    """Load a registered dataset; ``hf:<name or path>`` goes through Hugging Face ``datasets``."""
    if name.startswith("hf:"):
        factory = DATASETS.get("hf")
        return factory(root=root, path=name[3:], **kwargs)
    return DATASETS.get(name)(root=root, **kwargs)
