"""A small, fast CIFAR network in the style of the fastest public CIFAR-10 training scripts.

Inspired by Page's ResNet-9 ("How to train your ResNet", 2018) and Keller Jordan's hlb-CIFAR10 /
airbench family (Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU", 2024): a 2x2 conv stem
(24 channels x ``width``, airbench's patch-whitening layer, here learned from its default
initialisation), then three blocks of [conv-BN-GELU, 2x2 max-pool, conv-BN-GELU, conv-BN-GELU] with
widths (64, 256, 256) x ``width``, a global max-pool and a bias-free linear head. The logits are
multiplied by a fixed ``logit_scale`` (airbench's 1/9), a constant temperature that keeps the initial
logits small. Written from those descriptions; no code is copied.
"""
from __future__ import annotations

import torch
from torch import nn

from expunge.errors import ExpungeError
from expunge.models.base import Classifier, register_model


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU()]


class FastNet(Classifier):
    """airbench-style conv net; ``head(z) = logit_scale * fc(z)`` (``fc`` stays a plain Linear)."""

    def __init__(self, num_classes: int, in_shape: tuple[int, int, int], width: float = 1.0,
                 logit_scale: float = 1 / 9) -> None:
        super().__init__()
        c, h, w = in_shape
        if not width > 0:
            raise ExpungeError(f"fastnet: width must be > 0, got {width}")
        if min(h, w) < 2:
            raise ExpungeError(f"fastnet: images must be at least 2x2 for the 2x2 stem, got {h}x{w}")
        widths = [max(8, int(round(v * width))) for v in (64, 256, 256)]
        stem_w = max(8, int(round(24 * width)))
        layers: list[nn.Module] = [nn.Conv2d(c, stem_w, 2, padding=0, bias=True), nn.GELU()]
        cin, size = stem_w, min(h, w) - 1
        for cout in widths:
            layers += _conv_bn(cin, cout)
            if size >= 2:  # keep pooling only while the map is large enough (8x8 inputs still work)
                layers.append(nn.MaxPool2d(2))
                size //= 2
            layers += _conv_bn(cout, cout) + _conv_bn(cout, cout)
            cin = cout
        self.body = nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.fc = nn.Linear(cin, num_classes, bias=False)
        self.logit_scale = float(logit_scale)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(z) * self.logit_scale

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Patch-whitening initialisation of the 2x2 stem (airbench): the stem's filters become the
        eigenvectors of the covariance of 2x2 training patches, scaled by 1 / sqrt(eigenvalue + eps),
        so the first layer decorrelates its input. Half the filters are the negated other half, as
        airbench does, so GELU keeps both signs; filters beyond 2 x patch dimension stay random."""
        stem: nn.Conv2d = self.body[0]
        c, k = stem.in_channels, stem.kernel_size[0]
        patches = x.float().unfold(2, k, 1).unfold(3, k, 1)  # [B, C, H', W', k, k]
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)
        patches = patches - patches.mean(0, keepdim=True)
        cov = patches.T @ patches / max(1, len(patches) - 1)
        evals, evecs = torch.linalg.eigh(cov)
        filters = (evecs.T / torch.sqrt(evals + eps)[:, None]).flip(0)  # strongest directions first
        filters = torch.cat([filters, -filters]).reshape(-1, c, k, k)
        n = min(stem.out_channels, len(filters))
        stem.weight[:n] = filters[:n].to(stem.weight)
        if stem.bias is not None:
            stem.bias.zero_()


@register_model("fastnet")
def fastnet(num_classes: int, in_shape: tuple[int, int, int], width: float = 1.0,
            logit_scale: float = 1 / 9) -> FastNet:
    """Fast small CIFAR net (airbench / ResNet-9 style; GELU, BN, max-pools, logits x 1/9)."""
    return FastNet(num_classes, in_shape, width, logit_scale)
