"""Fully sharded data parallelism for data-parallel loops: PyTorch's FSDP2 (``fully_shard``).

DDP keeps a whole copy of the weights, gradients and AdamW moments on every worker; FSDP shards all
three over the workers (Zhao et al., "PyTorch FSDP: Experiences on Scaling Fully Sharded Data
Parallel", VLDB 2023), so a model whose training state does not fit one GPU trains on several. Each
block is one all-gather / reduce-scatter unit. A model declares its blocks the Hugging Face way
(``_no_split_modules``), and the root module collects the rest (embeddings, final norm, head).

The gradient of a step is the mean over workers, as under DDP, so with the same per-worker batches
both give the same weights (up to float reduction order). Sharding changes what a state dict is:
each worker holds slices. A checkpoint therefore gathers the full state with collectives that every
worker must enter (:func:`gather_model_state`, :func:`gather_optimizer_state`). The optimizer state
is stored in the unsharded layout, indexed by the position of each trained parameter, exactly as
``optimizer.state_dict()`` of an unsharded model gives it, so a run can resume under either strategy.

Needs an initialised default process group (Ray Train starts one: gloo on CPUs, NCCL on GPUs).
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn


def _options(**kw: bool):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def shard_model(model: nn.Module, block_names: Iterable[str] = ()) -> nn.Module:
    """Shard ``model`` in place over every worker of the default process group: each submodule whose
    class name is in ``block_names`` (default: the model's ``_no_split_modules``) is one FSDP unit,
    then the root; returns the same module (now an ``FSDPModule``)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    device = next(model.parameters()).device
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    blocks = set(block_names) or set(getattr(model, "_no_split_modules", None) or ())
    for module in list(model.modules())[1:]:
        if type(module).__name__ in blocks:
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def unsharded_class(model: nn.Module) -> type:
    """The model's own class (``fully_shard`` swaps in a subclass that also derives from FSDPModule)."""
    from torch.distributed.fsdp import FSDPModule

    return next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))


def gather_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full (unsharded) weights on the CPU of rank 0, an empty dict on the other ranks.
    A collective: every rank must call it."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_options(cpu_offload=True))


def gather_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The full optimizer state on rank 0 in the unsharded layout (``state`` and ``param_groups``
    indexed by the position of each trained parameter, as ``optimizer.state_dict()`` of the plain
    model), an empty dict elsewhere. A collective: every rank must call it.

    Each sharded tensor is all-gathered by hand (``DTensor.full_tensor``) in sorted order, rather than
    through ``torch.distributed.checkpoint``'s optimizer helpers, which walk the state in its dict order:
    a state read back from a safetensors file has its keys in an order that differs between processes,
    and loading it through those helpers swapped moments between parameters (measured on torch 2.14)."""
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor

    sd = optimizer.state_dict()
    # one order on every rank (a state loaded from a file keeps that file's order, which is not
    # the same in every process), so every rank enters the same all-gathers
    full = {i: {k: (v.full_tensor().cpu() if isinstance(v, DTensor) else v) for k, v in sorted(sd["state"][i].items())}
            for i in sorted(sd["state"])}
    return {"state": full, "param_groups": sd["param_groups"]} if dist.get_rank() == 0 else {}


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a full optimizer state in the unsharded layout (:func:`gather_optimizer_state`, or an
    unsharded run's ``optimizer.state_dict()``) into the sharded optimizer: each rank keeps its own
    slice of every tensor (no communication); every rank passes the whole state."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    params = [p for group in optimizer.param_groups for p in group["params"]]  # state_dict's indexing

    def local(v: Any, p: torch.Tensor) -> Any:
        if not (isinstance(p, DTensor) and torch.is_tensor(v) and v.shape == p.shape):
            return v  # AdamW's step count and other scalars are whole on every rank
        return distribute_tensor(v.to(p.device), p.device_mesh, p.placements, src_data_rank=None)

    sharded = {int(i): {k: local(v, params[int(i)]) for k, v in entries.items()} for i, entries in state["state"].items()}
    optimizer.load_state_dict({"state": sharded, "param_groups": state["param_groups"]})
