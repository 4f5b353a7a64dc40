"""The model registry and the classifier contract.

Every model is a :class:`Classifier`: ``features(x)`` returns the penultimate embedding ``z`` and
``head(z)`` the logits, so ``forward(x) == head(features(x))``. Unlearning methods (boundary
expanding, PRU) and metrics that work in embedding space rely on this split.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import torch
from torch import nn

from expunge.errors import ExpungeError
from expunge.registry import Registry

MODELS: Registry[Callable[..., "Classifier"]] = Registry("model")
register_model = MODELS.register


class Classifier(nn.Module, ABC):
    """Base class: subclasses implement ``features`` and set ``self.fc`` (the linear head)."""

    fc: nn.Linear

    @abstractmethod
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate embedding ``z`` of ``x``."""

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @property
    def embed_dim(self) -> int:
        return int(self.fc.in_features)


def create_model(name: str, num_classes: int, in_shape: tuple[int, int, int] | list[int],
                 **kwargs) -> Classifier:
    """Build a registered model, e.g. ``create_model("cnn", 10, (1, 8, 8))``.

    ``timm:<name>`` builds any timm model (wrapped so it has ``features`` and ``head``).
    """
    if num_classes < 2:
        raise ExpungeError(f"model {name}: num_classes must be >= 2, got {num_classes}")
    in_shape = tuple(int(v) for v in in_shape)
    if len(in_shape) != 3:
        raise ExpungeError(f"model {name}: in_shape must be (C, H, W), got {in_shape}")
    if name.startswith("timm:"):
        return MODELS.get("timm")(num_classes=num_classes, in_shape=in_shape, timm_name=name[5:], **kwargs)
    factory = MODELS.get(name)
    try:
        return factory(num_classes=num_classes, in_shape=in_shape, **kwargs)
    except TypeError as exc:
        raise ExpungeError(f"model {name}: bad keyword arguments {sorted(kwargs)} ({exc})") from None
