"""Small models that train in seconds on a CPU (digits, synthetic data)."""
from __future__ import annotations

import math

import torch
from torch import nn

from expunge.models.base import Classifier, register_model


class MLP(Classifier):
    def __init__(self, num_classes: int, in_shape: tuple[int, int, int], hidden: int = 256,
                 depth: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SmallCNN(Classifier):
    """Two or three conv-BN-ReLU blocks with max-pooling, global average pool, linear head."""

    def __init__(self, num_classes: int, in_shape: tuple[int, int, int], width: int = 32,
                 blocks: int | None = None) -> None:
        super().__init__()
        c, h, w = in_shape
        # pool until the map is at most 4x4, so the same model fits 8x8 digits and 32x32 CIFAR
        if blocks is None:
            blocks = max(2, min(4, int(math.log2(max(1, min(h, w) // 2))) + 1))
        layers: list[nn.Module] = []
        cin = c
        for i in range(blocks):
            cout = width * 2 ** i
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            if i < blocks - 1 and min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            cin = cout
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(cin, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@register_model("mlp")
def mlp(num_classes: int, in_shape: tuple[int, int, int], **kwargs) -> MLP:
    """Multi-layer perceptron on flattened pixels (hidden=256, depth=2)."""
    return MLP(num_classes, in_shape, **kwargs)


@register_model("cnn")
def cnn(num_classes: int, in_shape: tuple[int, int, int], **kwargs) -> SmallCNN:
    """Small conv net (conv-BN-ReLU blocks, width 32 doubling), fast on CPU for digits."""
    return SmallCNN(num_classes, in_shape, **kwargs)
