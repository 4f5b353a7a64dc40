"""ResNet for small images (He et al., CVPR 2016) with the CIFAR stem.

The variant the unlearning literature trains on CIFAR (SalUn, CPU, IAM code): a 3x3 stride-1 stem
with no max-pool, BasicBlocks, widths 64-128-256-512, global average pool, linear head. ``width``
scales every stage (tests use 8).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from expunge.errors import ExpungeError
from expunge.models.base import Classifier, register_model


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(Classifier):
    """CIFAR-stem ResNet: ``depths`` BasicBlocks per stage, stage ``i`` has ``width * 2**i`` channels.

    Every stage after the first halves the map, so 32x32 ends at 4x4 and 8x8 at 1x1 before pooling.
    """

    def __init__(self, num_classes: int, in_shape: tuple[int, int, int], depths: tuple[int, ...] = (2, 2, 2, 2),
                 width: int = 64) -> None:
        super().__init__()
        if int(width) != width or width < 1:
            raise ExpungeError(f"resnet: width must be a positive integer, got {width}")
        if not depths or any(n < 1 for n in depths):
            raise ExpungeError(f"resnet: depths must be positive block counts, got {depths}")
        width = int(width)
        c = in_shape[0]
        self.conv1 = nn.Conv2d(c, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages = []
        cin = width
        for i, n in enumerate(depths):
            cout = width * 2 ** i
            blocks = []
            for j in range(n):
                # with no stem max-pool, stage 1 runs at full input resolution; each later stage halves it
                blocks.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)


#: BasicBlocks per stage, by depth (He et al. 2016, Table 1)
RESNET_DEPTHS: dict[int, tuple[int, ...]] = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


@register_model("resnet18")
def resnet18(num_classes: int, in_shape: tuple[int, int, int], width: int = 64) -> ResNet:
    """ResNet-18, CIFAR variant (3x3 stem, no max-pool; He et al. 2016)."""
    return ResNet(num_classes, in_shape, RESNET_DEPTHS[18], width)
