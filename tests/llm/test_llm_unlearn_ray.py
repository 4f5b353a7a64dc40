"""``expunge llm-unlearn`` under Ray Train: two FSDP workers (gloo on CPU) on a tiny GPT-2, one of them
lost after an epoch, the group resumed from the last stored epoch.

One test, because every TorchTrainer start costs ~20 s on the project's 2-core machine: the run it
checks is the fault-tolerant one.
"""
from __future__ import annotations

import json

import pytest

from expunge.store import Store

EPOCHS = 3


@pytest.fixture()
def inputs(tmp_path):
    """An original model trained on forget + retain canaries, and the three sets as JSON lines."""
    import torch

    from expunge.llm.corpus import make_corpus
    from expunge.llm.models import tiny_gpt2
    from expunge.llm.train import train_lm

    c = make_corpus(n_docs=64, n_members=24, n_nonmembers=8, n_population=2, canary_words=5, seed=1)
    forget, retain, held = c.members[:8], c.members[8:] + c.docs[:8], c.nonmembers
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, tok = tiny_gpt2(n_layer=1, n_embd=32, n_head=2, n_positions=96, seed=0)
        train_lm(model, tok, c.docs + (forget + c.members[8:]) * 4, steps=150, batch_size=16, lr=1e-2, seed=0)
    finally:
        torch.set_num_threads(old)
    model.save_pretrained(tmp_path / "original")
    tok.save_pretrained(tmp_path / "original")
    paths = {"model": str(tmp_path / "original")}
    for name, texts in (("forget", forget), ("retain", retain), ("heldout", held)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        paths[name] = str(tmp_path / f"{name}.jsonl")
    return paths


@pytest.mark.slow
@pytest.mark.ray
def test_two_fsdp_workers_survive_a_lost_worker_and_store_every_epoch(inputs, tmp_path, ray_local, faults):
    """Worker 1 dies shortly after reporting epoch 2; FailureConfig restarts the group and both workers
    continue from the last epoch rank 0 stored (1 or 2), never from the original. Every epoch ends up
    in the store, verified, with the per-epoch table and the best epoch, as a local run would.

    The workers run FSDP, whose restart is the harder one: the full optimizer state rank 0 stored is
    sliced back into each worker's shards. DDP differs only in how a worker wraps its model (Ray
    Train's ``prepare_model``); DDP and FSDP train alike (``tests/llm/test_llm_fsdp.py``), and one
    TorchTrainer run costs ~35 s, so the suite runs this one."""
    from expunge.llm.unlearn_run import KIND, RESULT_KIND, checkpoint_key, load_job_config, run_llm_unlearn

    fired = faults.arm("train_worker", rank=1, epoch=2)
    cfg = load_job_config("configs/llm/unlearn_tiny.yaml", [
        f"model={inputs['model']}", f"forget={inputs['forget']}", f"retain={inputs['retain']}",
        f"heldout={inputs['heldout']}", f"storage={tmp_path / 'runs'}", "name=ray", "unlearn.method=grad_diff",
        f"unlearn.epochs={EPOCHS}", "unlearn.batch_size=4", "unlearn.lr=1e-3", "audit.n_boot=0",
        "scaling.num_workers=2", "scaling.max_failures=1", "select.utility_drop_max=100",
        "scaling.strategy=fsdp"])
    res = run_llm_unlearn(cfg, use_ray=True)
    assert fired.exists()
    resumed = sorted((fired.parent / "train_worker.log").read_text().split())
    assert len(resumed) == 2 and {r.split(":")[0] for r in resumed} == {"0", "1"}
    epochs = {int(r.split(":")[1]) for r in resumed}
    assert len(epochs) == 1 and epochs <= {1, 2}

    store = Store(str(tmp_path / "runs" / "ray"))
    for e in range(1, EPOCHS + 1):
        assert store.get(KIND, checkpoint_key("grad_diff", e), verify=True).manifest["epoch"] == e
    table = store.get(RESULT_KIND, "grad_diff", verify=True).read("epochs.parquet")
    loss = table.set_index("model")["forget_loss"]
    assert all(loss[f"epoch {e}"] > loss["original"] for e in range(1, EPOCHS + 1))
    assert res["best"]["objective"] == "forgetting" and 1 <= res["best"]["epoch"] <= EPOCHS
    # rank 0 scored each epoch into the store's log-prob cache: the driver loaded no checkpoint
    assert res["passes"]["store"] >= 3 * EPOCHS
    assert list((tmp_path / "runs" / "ray" / "ray_train").rglob("epoch.json"))  # Ray Train's own checkpoints
