"""Driver of tests/llm/test_llm_fsdp.py, run in its own process: two gloo workers (no Ray) unlearn a
tiny GPT-2 with GradDiff on the same batches under DDP and under FSDP; rank 0 stores FSDP's epoch-1
checkpoint as ``expunge llm-unlearn`` does (``save_pretrained`` weights, the loop state in
safetensors + JSON). Then two fresh workers load that checkpoint and state from disk and resume, as a
restarted Ray Train group does. Writes what rank 0 saw as JSON to argv[1]."""
from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

EPOCHS = 2
TINY = dict(n_layer=2, n_embd=32, n_head=2, n_positions=64, seed=0)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def copied(state: dict) -> dict:
    """The loop state with every tensor copied (the live optimizer changes with the next step)."""
    return {k: ({"state": {i: {n: (t.clone() if torch.is_tensor(t) else t) for n, t in s.items()}
                           for i, s in v["state"].items()}, "param_groups": v["param_groups"]}
                if k == "optimizer" else v) for k, v in state.items()}


def diff(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def run(rank: int, world: int, port: int, folder: str, phase: str) -> None:
    from safetensors.torch import load, save

    from expunge.llm.models import load_causal_lm, tiny_gpt2
    from expunge.llm.unlearn import LLMUnlearnConfig, unlearn_lm
    from expunge.llm.unlearn_run import state_files, state_from_files
    from expunge.train.sharding import is_sharded, shard_model

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    out = Path(folder)
    forget = [f"the secret number {i} is {i * 7}" for i in range(8)]
    retain = [f"a plain sentence number {i}" for i in range(8)]
    cfg = LLMUnlearnConfig(method="grad_diff", epochs=EPOCHS, batch_size=4, lr=1e-3)
    local: dict[str, float] = {}

    def fsdp(model: torch.nn.Module) -> torch.nn.Module:
        full = sum(p.numel() for p in model.parameters())
        sharded = shard_model(model)
        local["fraction"] = sum(p.to_local().numel() for p in sharded.parameters()) / full
        local["sharded"] = float(is_sharded(sharded))
        return sharded

    def train(model: torch.nn.Module, tok, prepare, resume: dict | None = None) -> dict[int, tuple]:
        got: dict[int, tuple] = {}

        def on_epoch(epoch: int, m: torch.nn.Module, state: dict) -> None:
            if rank == 0:
                got[epoch] = (weights(m), copied(state))
                if phase == "train" and prepare is fsdp and epoch == 1:  # the checkpoint phase 2 resumes
                    m.save_pretrained(out / "epoch1")
                    tok.save_pretrained(out / "epoch1")
                    files = state_files(state)
                    (out / "state.safetensors").write_bytes(save(files["train_state.safetensors"]))
                    (out / "state.json").write_text(json.dumps(files["train_state.json"]))

        unlearn_lm(model, tok, forget, retain, cfg, shard=(rank, world), prepare=prepare, on_epoch=on_epoch,
                   resume=resume)
        return got

    if phase == "train":
        ddp = train(*tiny_gpt2(**TINY), lambda m: torch.nn.parallel.DistributedDataParallel(m))
        sharded = train(*tiny_gpt2(**TINY), fsdp)
        if rank == 0:
            def optim_diff(e: int, what: str) -> float:
                a, b = ddp[e][1]["optimizer"], sharded[e][1]["optimizer"]
                assert set(a["state"]) == set(b["state"])
                return max(float((a["state"][i][what] - b["state"][i][what]).abs().max()) for i in a["state"])

            (out / "uninterrupted.safetensors").write_bytes(save(sharded[EPOCHS][0]))
            report = {
                "fraction": local["fraction"], "sharded": local["sharded"],
                "ddp_vs_fsdp": [diff(ddp[e][0], sharded[e][0]) for e in range(1, EPOCHS + 1)],
                "weight_change": diff(ddp[EPOCHS][0], weights(tiny_gpt2(**TINY)[0])),
                "optim_exp_avg": [optim_diff(e, "exp_avg") for e in range(1, EPOCHS + 1)],
                "optim_exp_avg_sq": [optim_diff(e, "exp_avg_sq") for e in range(1, EPOCHS + 1)],
                "groups_equal": ddp[EPOCHS][1]["optimizer"]["param_groups"]
                == sharded[EPOCHS][1]["optimizer"]["param_groups"],
            }
            (out / "train.json").write_text(json.dumps(report))
    else:  # fresh processes: the checkpoint and the loop state read back from disk on every rank
        model, tok = load_causal_lm(str(out / "epoch1"), device="cpu", dtype=torch.float32)
        files = {"train_state.safetensors": load((out / "state.safetensors").read_bytes()),
                 "train_state.json": json.loads((out / "state.json").read_text())}
        resumed = train(model, tok, fsdp, resume=state_from_files(files.__getitem__))
        if rank == 0:
            final = resumed[EPOCHS][0]
            report = {"resumed_epochs": sorted(resumed),
                      "resumed_finite": all(bool(torch.isfinite(v).all()) for v in final.values()),
                      "resumed_vs_uninterrupted": diff(final, load((out / "uninterrupted.safetensors").read_bytes()))}
            (out / "resume.json").write_text(json.dumps(report))
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:  # a free loopback port for the process group's rendezvous
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    folder = Path(sys.argv[1]).parent
    for phase in ("train", "resume"):
        mp.spawn(run, args=(2, free_port(), str(folder), phase), nprocs=2)
    result = {**json.loads((folder / "train.json").read_text()), **json.loads((folder / "resume.json").read_text())}
    Path(sys.argv[1]).write_text(json.dumps(result))
