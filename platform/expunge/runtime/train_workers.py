"""Ray Train glue for code that runs a data-parallel loop without importing Ray itself.

:func:`fit` runs ``loop(config)`` on ``num_workers`` workers with ``TorchTrainer`` (restarted from the
last reported checkpoint after a lost worker, up to ``max_failures`` times); inside the loop,
:func:`worker_context` gives the worker's rank, world size, device, whether the group was restarted,
a ``report`` function (metrics, optionally with a checkpoint directory) and DDP's ``prepare_model``.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

import ray.train
import ray.train.torch


@dataclass(frozen=True)
class WorkerContext:
    rank: int
    world: int
    device: str
    restarted: bool
    node: str

    @staticmethod
    def report(metrics: dict[str, Any], checkpoint_files: dict[str, str] | None = None) -> None:
        """Report ``metrics``; with ``checkpoint_files`` ({name: text}), also a checkpoint holding them."""
        if checkpoint_files is None:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            for name, text in checkpoint_files.items():
                with open(os.path.join(d, name), "w") as f:
                    f.write(text)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))

    @staticmethod
    def prepare_model(model: Any, strategy: str = "ddp") -> Any:
        """The model moved to the worker's device and wrapped for data parallelism: ``ddp`` (Ray Train's
        DistributedDataParallel wrapper) or ``fsdp`` (sharded in place, :mod:`expunge.train.sharding`)."""
        return PREPARE[strategy](model)


def _shard(model: Any) -> Any:
    from expunge.train.sharding import shard_model

    return shard_model(model.to(ray.train.torch.get_device()))


#: how a worker's model is prepared, per data-parallel strategy
PREPARE: dict[str, Callable[[Any], Any]] = {"ddp": lambda model: ray.train.torch.prepare_model(model), "fsdp": _shard}


def worker_context() -> WorkerContext:
    """This Ray Train worker's context (call inside the loop that :func:`fit` runs)."""
    ctx = ray.train.get_context()
    return WorkerContext(rank=ctx.get_world_rank(), world=ctx.get_world_size(),
                         device=str(ray.train.torch.get_device()), restarted=ray.train.get_checkpoint() is not None,
                         node=ray.get_runtime_context().get_node_id())


def fit(loop: Callable[[dict[str, Any]], None], config: dict[str, Any], *, num_workers: int, use_gpu: bool,
        cpus_per_worker: float, max_failures: int, name: str, storage: str, keep_checkpoints: int = 2,
        placement_strategy: str = "PACK") -> dict[str, Any]:
    """Run ``loop(config)`` under ``TorchTrainer``; returns the last reported metrics (raises the run's error)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        loop, train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cpus_per_worker},
                                     placement_strategy=placement_strategy),
        run_config=RunConfig(name=name, storage_path=storage, failure_config=FailureConfig(max_failures=max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=keep_checkpoints)))
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    return dict(result.metrics or {})
