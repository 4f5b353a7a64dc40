"""Vision Transformer (Dosovitskiy et al., ICLR 2021) sized for 32x32 inputs with 4x4 patches.

Built with timm's ``VisionTransformer`` (never pretrained): embed 192, depth 6, 3 heads, MLP ratio 4
by default, a size that trains from scratch on CIFAR in the regime the unlearning papers use for ViT
(64 patch tokens + a class token). ``features`` is the class-token embedding after the final norm,
``fc`` is timm's own ``head``.
"""
from __future__ import annotations

from expunge.errors import ExpungeError
from expunge.models.base import register_model
from expunge.models.timm_models import TimmClassifier


@register_model("vit")
def vit(num_classes: int, in_shape: tuple[int, int, int], patch_size: int = 4, embed_dim: int = 192,
        depth: int = 6, num_heads: int = 3, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0,
        **kwargs) -> TimmClassifier:
    """ViT for small images (patch 4, embed 192, depth 6, 3 heads; Dosovitskiy et al. 2021) via timm."""
    from timm.models.vision_transformer import VisionTransformer

    c, h, w = in_shape
    if patch_size < 1 or h % patch_size or w % patch_size:
        # timm would silently crop the remainder pixels
        raise ExpungeError(f"vit: patch_size {patch_size} does not divide the image size {h}x{w}")
    if embed_dim % num_heads:
        raise ExpungeError(f"vit: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
    net = VisionTransformer(img_size=(h, w), patch_size=patch_size, in_chans=c, num_classes=num_classes,
                            embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                            drop_path_rate=drop_path_rate, **kwargs)
    return TimmClassifier(net)
