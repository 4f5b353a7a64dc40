"""The original under Ray Train: 2 DDP workers on CPU, checkpoints, stored like a local original."""
from __future__ import annotations

import pytest

from expunge.config import load_config
from expunge.store import Store


@pytest.mark.slow
@pytest.mark.ray
def test_original_with_two_ddp_workers(repo_root, tmp_path, ray_local):
    from expunge.jobs.original import run_original

    cfg = load_config(repo_root / "configs/experiments/digits.yaml",
                      [f"storage={tmp_path}", "train.epochs=10", "scaling.num_workers=2", "scaling.max_failures=0"])
    res = run_original(cfg, use_ray=True)
    store = Store(str(tmp_path / "digits"))
    art = store.get("models", "original", verify=True)
    assert art.path == res["path"] and art.manifest["config"]["role"] == "original"
    out = store.get("outputs", "original").read("logits_test.npy")
    labels = store.get("outputs", "original").read("labels_test.npy")
    assert (out.argmax(1) == labels).mean() >= 0.85  # DDP over two half-shards learns digits
    ckpts = list((tmp_path / "digits" / "ray_train").rglob("weights.safetensors"))
    assert ckpts  # per-epoch checkpoints in the run's storage
    # a second call reuses the stored original instead of starting Ray Train again
    again = run_original(cfg, use_ray=True)
    assert again["content_hash"] == res["content_hash"]
