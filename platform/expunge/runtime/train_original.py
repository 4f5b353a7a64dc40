"""The original model under Ray Train: ``TorchTrainer`` running the same engine as one process.

Each worker holds the dataset in memory, takes its shard of the training split (a seeded global
permutation, rank-strided, so shards are disjoint and together cover every sample; each worker
reshuffles its shard every epoch), wraps the model in DDP (``ray.train.torch.prepare_model``) and
calls :func:`expunge.train.engine.train`. Rank 0 reports a checkpoint every epoch (weights as
safetensors, optimizer state, epoch); after a lost worker, ``FailureConfig`` restarts the group and
every worker resumes from the last checkpoint. The driver then stores the final weights as the
experiment's ``original`` artifact, exactly as single-process training would.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np
import torch

from expunge import faults
from expunge.config import ExperimentConfig
from expunge.experiment import Experiment, log

CKPT_WEIGHTS, CKPT_OPTIM, CKPT_STATE = "weights.safetensors", "optimizer.pt", "state.json"
def train_loop_per_worker(config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch
    from safetensors.torch import load_file, save_file

    from expunge.data import DeviceData
    from expunge.train.engine import seed_everything, train

    cfg = ExperimentConfig.model_validate(config["cfg"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    ex = Experiment(cfg, verbose=rank == 0)
    device = ray.train.torch.get_device()
    data = DeviceData(ex.dataset, device)
    seed_everything(cfg.seed)  # the same initial weights on every rank
    model = ex.model_factory().to(device)
    start_epoch, optim_state = 0, None
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            model.load_state_dict(load_file(os.path.join(d, CKPT_WEIGHTS)))
            optim_state = torch.load(os.path.join(d, CKPT_OPTIM), weights_only=True)
            start_epoch = json.loads(open(os.path.join(d, CKPT_STATE)).read())["epoch"]
        faults.record("train_worker", f"{rank}:{start_epoch}")  # which epoch a restarted worker resumed
    faults.record("train_node", f"{rank}:{ray.get_runtime_context().get_node_id()}")  # where each rank ran
    ddp = ray.train.torch.prepare_model(model)
    perm = np.random.default_rng(cfg.seed).permutation(ex.plan.train)
    shard = np.sort(perm[rank::world])

    def report(rec: dict[str, Any]) -> None:
        metrics = {k: v for k, v in rec.items() if not k.startswith("_")}
        if rank != 0:
            ray.train.report(metrics)
            # a moment after the report: Ray Train registers checkpoints asynchronously, and a test
            # should not race that registration
            faults.maybe_die("train_worker", delay_s=3.0, rank=rank, epoch=rec["epoch"])
            return
        with tempfile.TemporaryDirectory() as d:
            inner = rec["_model"].module if hasattr(rec["_model"], "module") else rec["_model"]
            save_file({k: v.detach().cpu().contiguous() for k, v in inner.state_dict().items()},
                      os.path.join(d, CKPT_WEIGHTS))
            torch.save(rec["_optimizer"].state_dict(), os.path.join(d, CKPT_OPTIM))
            with open(os.path.join(d, CKPT_STATE), "w") as f:
                json.dump({"epoch": rec["epoch"]}, f)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))

    train(ddp, data, shard, cfg.train, seed=cfg.seed + rank, callback=report, start_epoch=start_epoch,
          optimizer_state=optim_state)


def run_original_ray_train(cfg: ExperimentConfig, rebuild: bool = False) -> dict[str, Any]:
    """Train the original with TorchTrainer (or reuse the stored one) and store it as ``original``."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from safetensors.torch import load_file

    ex = Experiment(cfg, rebuild=rebuild)

    def fit(model: torch.nn.Module) -> list[dict[str, Any]]:
        sc = cfg.scaling
        storage = os.path.abspath(os.path.join(ex.store.uri, "ray_train")) if "://" not in ex.store.uri \
            else f"{ex.store.uri.rstrip('/')}/ray_train"
        trainer = TorchTrainer(
            train_loop_per_worker, train_loop_config={"cfg": cfg.model_dump()},
            scaling_config=ScalingConfig(num_workers=sc.num_workers, use_gpu=sc.use_gpu,
                                         resources_per_worker={"CPU": sc.cpus_per_worker},
                                         placement_strategy=sc.placement_strategy),
            run_config=RunConfig(name=f"{cfg.name}-original", storage_path=storage,
                                 failure_config=FailureConfig(max_failures=sc.max_failures)))
        log(f"original: Ray Train with {sc.num_workers} worker(s){' on GPUs' if sc.use_gpu else ''}")
        result = trainer.fit()
        if result.error is not None:
            raise result.error
        with result.checkpoint.as_directory() as d:
            model.load_state_dict(load_file(os.path.join(d, CKPT_WEIGHTS)))
        return [dict(result.metrics or {})]

    art = ex.original(fit=fit)
    return {"path": art.path, "run_time_s": art.manifest.get("run_time_s"), "content_hash": art.manifest["content_hash"]}
