"""The training engine: ``train`` and ``evaluate`` (per-sample logits)."""
from expunge.train.engine import accuracy, evaluate, resolve_device, seed_everything, train

__all__ = ["accuracy", "evaluate", "resolve_device", "seed_everything", "train"]
