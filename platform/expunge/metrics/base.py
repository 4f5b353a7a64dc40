"""The metric contract: pure functions on arrays, registered by name.

A metric declares the model outputs it needs (``requires``: which models and sets), so the audit
stage knows what to collect, and computes ``fn(outputs, **params) -> MetricResult``. It never sees a
model or a data loader.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from expunge.registry import Registry


@dataclass
class Outputs:
    """One model's cached per-sample outputs on one set."""

    logits: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    #: logits of augmented views [V, n, C] (random crop / flip), when the audit asked for them
    aug_logits: np.ndarray | None = None

    def probs(self) -> np.ndarray:
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def correct(self) -> np.ndarray:
        return self.logits.argmax(axis=1) == self.labels


@dataclass
class AuditInputs:
    """Everything a metric may read: cached outputs only, never a model.

    ``target`` is the audited (e.g. unlearned) model, ``original`` the model before unlearning (the IN
    reference for online attacks), ``shadows`` OUT reference models that never trained on the
    original's training set. Each is ``{set name: Outputs}``.
    """

    target: dict[str, Outputs]
    original: dict[str, Outputs] | None = None
    shadows: list[dict[str, Outputs]] = field(default_factory=list)
    forget_class: int | None = None
    #: dataset positions each shadow trained on (IAM-Off's anchor reads their own training samples)
    shadow_members: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        # outputs made without the optional ``forget_heldout`` set (e.g. by hand) read as an empty set
        for outputs in [self.target, self.original, *self.shadows]:
            if outputs is not None and "forget_heldout" not in outputs and "forget" in outputs:
                c = outputs["forget"].logits.shape[1]
                views = outputs["forget"].aug_logits
                outputs["forget_heldout"] = Outputs(
                    np.zeros((0, c), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64),
                    None if views is None else np.zeros((views.shape[0], 0, c), np.float32))


@dataclass
class MetricResult:
    per_sample: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict[str, float] = field(default_factory=dict)


@dataclass
class Metric:
    name: str
    fn: Callable[..., MetricResult]
    #: the model roles the metric reads ("target", "original", "shadows")
    requires: tuple[str, ...]
    doc: str = ""

    def __call__(self, inputs: AuditInputs, **params) -> MetricResult:
        if "original" in self.requires and inputs.original is None:
            from expunge.errors import ExpungeError

            raise ExpungeError(f"metric {self.name} needs the original model's outputs")
        if "shadows" in self.requires and not inputs.shadows:
            from expunge.errors import ExpungeError

            raise ExpungeError(f"metric {self.name} needs shadow models (set audit.shadows >= 1)")
        return self.fn(inputs, **params)


METRICS: Registry[Metric] = Registry("metric")


def register_metric(name: str, requires: tuple[str, ...]):
    def deco(fn: Callable[..., MetricResult]) -> Callable[..., MetricResult]:
        METRICS.register(name)(Metric(name, fn, requires, (fn.__doc__ or "").strip()))
        return fn

    return deco
