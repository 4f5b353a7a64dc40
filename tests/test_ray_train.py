"""The original under Ray Train: 2 DDP workers on CPU, a lost worker, checkpoints, stored like a local original.

One test, because every TorchTrainer start costs ~20 s: the run it checks is the fault-tolerant one.
"""
from __future__ import annotations

import pytest

from expunge.config import load_config
from expunge.store import Store


@pytest.mark.slow
@pytest.mark.ray
def test_two_ddp_workers_survive_a_lost_worker_and_store_the_original(repo_root, tmp_path, ray_local, faults):
    """Worker 1 dies shortly after reporting epoch 2; FailureConfig restarts the group and both workers
    resume from the last registered checkpoint (epoch 1 or 2), never from scratch. The finished run
    learns digits from two half-shards, keeps per-epoch checkpoints in the run's storage, and is stored
    as the original, which a second call reuses without starting Ray Train."""
    from expunge.jobs.original import run_original

    fired = faults.arm("train_worker", rank=1, epoch=2)
    cfg = load_config(repo_root / "configs/experiments/digits.yaml",
                      [f"storage={tmp_path}", "train.epochs=10", "scaling.num_workers=2", "scaling.max_failures=1"])
    res = run_original(cfg, use_ray=True)
    assert fired.exists()
    resumed = sorted((fired.parent / "train_worker.log").read_text().split())
    assert len(resumed) == 2 and {r.split(":")[0] for r in resumed} == {"0", "1"}
    epochs = {int(r.split(":")[1]) for r in resumed}
    assert len(epochs) == 1 and epochs <= {1, 2}

    store = Store(str(tmp_path / "digits"))
    art = store.get("models", "original", verify=True)
    assert art.path == res["path"] and art.manifest["config"]["role"] == "original"
    out = store.get("outputs", "original").read("logits_test.npy")
    labels = store.get("outputs", "original").read("labels_test.npy")
    assert (out.argmax(1) == labels).mean() >= 0.85  # DDP over two half-shards learns digits
    assert list((tmp_path / "digits" / "ray_train").rglob("weights.safetensors"))  # per-epoch checkpoints
    # a second call reuses the stored original instead of starting Ray Train again
    assert run_original(cfg, use_ray=True)["content_hash"] == res["content_hash"]
