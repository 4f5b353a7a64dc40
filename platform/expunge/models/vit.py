"""Vision Transformer (Dosovitskiy et al., ICLR 2021) sized for 32x32 inputs with 4x4 patches.

Built with timm's ``VisionTransformer`` (no pretrained weights): embed 192, depth 6, 3 heads by
default, which trains from scratch on CIFAR in the regime the unlearning papers use for ViT.
"""
from __future__ import annotations

import torch

from expunge.errors import ExpungeError
from expunge.models.base import Classifier, register_model


class TimmClassifier(Classifier):
    """Wraps a timm model: ``features`` = pre-logits embedding, ``fc`` = timm's own classifier."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        head = net.get_classifier()
        if not isinstance(head, torch.nn.Linear):
            raise ExpungeError(f"timm model {type(net).__name__}: classifier is {type(head).__name__}, "
                               "expected a Linear head")
        self.fc = head  # the same module object as inside net: one set of head weights

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(z)

    def state_dict(self, *args, **kwargs):
        # fc is net's classifier; drop the alias so weights are stored once
        sd = super().state_dict(*args, **kwargs)
        return type(sd)((k, v) for k, v in sd.items() if not k.startswith("fc."))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.net.load_state_dict({k.removeprefix("net."): v for k, v in state_dict.items()},
                                        strict=strict, assign=assign)


@register_model("vit")
def vit(num_classes: int, in_shape: tuple[int, int, int], patch_size: int = 4, embed_dim: int = 192,
        depth: int = 6, num_heads: int = 3, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0) -> TimmClassifier:
    """ViT for small images (patch 4, embed 192, depth 6; Dosovitskiy et al. 2021) via timm."""
    from timm.models.vision_transformer import VisionTransformer

    c, h, w = in_shape
    if h % patch_size or w % patch_size:
        raise ExpungeError(f"vit: patch_size {patch_size} does not divide the image size {h}x{w}")
    if embed_dim % num_heads:
        raise ExpungeError(f"vit: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
    net = VisionTransformer(img_size=(h, w), patch_size=patch_size, in_chans=c, num_classes=num_classes,
                            embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                            drop_path_rate=drop_path_rate)
    return TimmClassifier(net)
