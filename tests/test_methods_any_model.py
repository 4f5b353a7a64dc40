"""Every method runs on every kind of registered model (BatchNorm cnn, BN-free mlp, timm-wrapped vit,
fastnet's scaled head) and returns a model whose weights load into a fresh instance."""
from __future__ import annotations

import pytest
import torch

from expunge.config import TrainConfig
from expunge.data import DeviceData, SplitPlan, load_dataset
from expunge.models import create_model
from expunge.unlearn import METHODS, UnlearnContext, unlearn

MODELS = {"mlp": {"hidden": 32}, "vit": {"patch_size": 4, "embed_dim": 16, "depth": 1, "num_heads": 2},
          "fastnet": {"width": 0.125}}


def _one_epoch(name: str) -> dict:
    """The shortest run of ``name``: one epoch (one round for PRU), ``min_steps`` 0 (one pass)."""
    fields = METHODS.get(name).Config.model_fields
    if "rounds" in fields:
        return {"rounds": 1}
    short = {"min_steps": 0} if "min_steps" in fields else {}
    return {**short, "epochs": 1} if "epochs" in fields and name != "ssd" and name != "fisher" else short


@pytest.fixture(scope="module")
def synth():
    ds = load_dataset("synthetic", n=240, num_classes=4, shape=(3, 8, 8), seed=1)
    return ds, DeviceData(ds, "cpu"), SplitPlan.create(ds, 0, "class:1")


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("method", METHODS.names())
def test_method_runs_on_model(method, model_name, synth):
    ds, data, plan = synth
    kwargs = MODELS[model_name]
    torch.manual_seed(0)
    original = create_model(model_name, 4, ds.in_shape, **kwargs).eval()
    recipe = TrainConfig(epochs=1, batch_size=64)
    ctx = UnlearnContext(original, data, plan, recipe, lambda: create_model(model_name, 4, ds.in_shape, **kwargs))
    res = unlearn(method, _one_epoch(method), ctx)
    fresh = create_model(model_name, 4, ds.in_shape, **kwargs)
    fresh.load_state_dict(res.model.state_dict())  # strict: same keys and shapes as the registered model
    x, _ = data.batch(torch.as_tensor(plan.forget[:4]))
    assert torch.isfinite(fresh.eval()(x)).all()
