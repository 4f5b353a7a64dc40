"""The training engine: ``train`` and ``evaluate`` (per-sample logits), the step core ``run_steps`` every
training loop shares, and the optimiser pieces (``expunge.train.optim``)."""
from expunge.train.engine import accuracy, evaluate, resolve_device, run_steps, seed_everything, train
from expunge.train.optim import OptimizerSpec, autocast, build_optimizer, lr_factor

__all__ = ["OptimizerSpec", "accuracy", "autocast", "build_optimizer", "evaluate", "lr_factor", "resolve_device",
           "run_steps", "seed_everything", "train"]
