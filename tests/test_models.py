"""Every registered model honours the Classifier contract: forward == head(features), shapes, grads."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from expunge.errors import ExpungeError
from expunge.models import MODELS, create_model

# tiny settings so the whole file runs in seconds on a CPU
CASES = [
    ("mlp", {}), ("cnn", {}), ("resnet18", {"width": 8}),
    ("vit", {"embed_dim": 32, "depth": 1, "num_heads": 2}),
    ("fastnet", {"width": 0.25}), ("timm:resnet10t", {}),
    ("timm:vit_tiny_patch16_224", {"depth": 1}),
]
VIT_LIKE = {"vit", "timm:vit_tiny_patch16_224"}


def build(name: str, kwargs: dict, shape: tuple[int, int, int], num_classes: int = 7):
    if name in VIT_LIKE:  # the patch must divide the image: 4 for 32x32, 2 for 8x8
        kwargs = {**kwargs, "patch_size": 4 if shape[1] == 32 else 2}
    return create_model(name, num_classes, shape, **kwargs)


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 8, 8)])
@pytest.mark.parametrize("name, kwargs", CASES)
def test_forward_features_head(name, kwargs, shape):
    torch.manual_seed(0)
    model = build(name, kwargs, shape).eval()
    assert sum(p.numel() for p in model.parameters()) > 0
    x = torch.randn(2, *shape)
    with torch.no_grad():
        out = model(x)
        z = model.features(x)
        assert out.shape == (2, 7) and z.shape == (2, model.embed_dim)
        assert torch.allclose(model.head(z), out, atol=1e-6)
        if hasattr(model, "net"):  # timm-backed: the split reproduces timm's own forward (head applied once)
            assert model.fc is model.net.get_classifier()
            assert torch.allclose(model.net(x), out, atol=1e-6)
    model.train()
    model(x).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    # weights round-trip through a plain state dict into a fresh instance, each tensor stored once
    state = model.state_dict()
    assert len({t.data_ptr() for t in state.values() if t.numel()}) == len([t for t in state.values() if t.numel()])
    again = build(name, kwargs, shape)
    again.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(again.eval()(x), model.eval()(x), atol=1e-5)


def test_every_registered_model_is_covered():
    assert {n for n, _ in CASES if not n.startswith("timm:")} | {"timm"} == set(MODELS.names())
    assert all(MODELS.describe().values())  # `expunge info` shows a line for each


def test_resnet18_is_the_cifar_variant():
    model = create_model("resnet18", 10, (3, 32, 32), width=8)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert [len(stage) for stage in model.layers] == [2, 2, 2, 2] and model.embed_dim == 64


def test_fastnet_scales_logits():
    model = create_model("fastnet", 10, (3, 32, 32), width=0.25).eval()
    z = model.features(torch.randn(2, 3, 32, 32))
    assert model.logit_scale == pytest.approx(1 / 9)
    assert torch.allclose(model.head(z), model.fc(z) / 9, atol=1e-6)


def test_timm_head_can_be_replaced_through_fc():
    model = create_model("timm:resnet10t", 5, (3, 8, 8))
    model.fc = nn.Linear(model.embed_dim, 3)
    assert model.net.get_classifier() is model.fc and "fc.weight" not in model.state_dict()
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 3)


@pytest.mark.parametrize("name, kwargs, needle", [
    ("resnet19", {}, "did you mean resnet18"),
    ("timm:resnet_does_not_exist", {}, "unknown timm model"),
    ("timm:", {}, "give a name"),
    ("timm:resnet10t", {"no_such_arg": 1}, "bad keyword"),
    ("vit", {"patch_size": 5}, "patch_size 5 does not divide the image size 32x32"),
    ("vit", {"embed_dim": 30, "num_heads": 4}, "not divisible"),
    ("cnn", {"no_such_arg": 1}, "bad keyword"),
    ("resnet18", {"width": 0}, "width"),
    ("fastnet", {"width": 0}, "width"),
])
def test_bad_models(name, kwargs, needle):
    with pytest.raises(ExpungeError, match=needle):
        create_model(name, 10, (3, 32, 32), **kwargs)


def test_unknown_timm_model_suggests_close_names():
    with pytest.raises(ExpungeError, match="did you mean .*resnet10t"):
        create_model("timm:resnet10x", 10, (3, 32, 32))


@pytest.mark.parametrize("name", ["cnn", "resnet18", "timm:resnet10t"])
def test_too_few_classes(name):
    with pytest.raises(ExpungeError, match="num_classes"):
        create_model(name, 1, (3, 32, 32))
