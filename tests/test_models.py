from __future__ import annotations

import pytest
import torch

from expunge.errors import ExpungeError
from expunge.models import MODELS, create_model

CASES = [
    ("mlp", {}), ("cnn", {}), ("resnet18", {"width": 8}),
    ("vit", {"embed_dim": 32, "depth": 1, "num_heads": 2}),
    ("fastnet", {"width": 0.25}), ("timm:resnet10t", {}),
]


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 8, 8)])
@pytest.mark.parametrize("name, kwargs", CASES)
def test_forward_features_head(name, kwargs, shape):
    if name == "vit" and shape[1] == 8:
        kwargs = {**kwargs, "patch_size": 2}
    torch.manual_seed(0)
    model = create_model(name, 7, shape, **kwargs).eval()
    x = torch.randn(3, *shape)
    out = model(x)
    z = model.features(x)
    assert out.shape == (3, 7) and z.shape == (3, model.embed_dim)
    assert torch.allclose(model.head(z), out, atol=1e-6)
    model.train()
    model(x).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    # weights round-trip through a plain state dict into a fresh instance
    again = create_model(name, 7, shape, **kwargs)
    again.load_state_dict(model.state_dict())
    assert torch.allclose(again.eval()(x), model.eval()(x), atol=1e-5)


def test_every_registered_model_is_covered():
    assert {n for n, _ in CASES if not n.startswith("timm:")} | {"timm"} == set(MODELS.names())


@pytest.mark.parametrize("name, kwargs, needle", [
    ("resnet19", {}, "did you mean resnet18"),
    ("timm:resnet_does_not_exist", {}, "unknown timm model"),
    ("vit", {"patch_size": 5}, "does not divide"),
    ("cnn", {"no_such_arg": 1}, "bad keyword"),
])
def test_bad_models(name, kwargs, needle):
    with pytest.raises(ExpungeError, match=needle):
        create_model(name, 10, (3, 32, 32), **kwargs)


def test_too_few_classes():
    with pytest.raises(ExpungeError, match="num_classes"):
        create_model("cnn", 1, (3, 32, 32))
