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

    def probs(self) -> np.ndarray:
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def correct(self) -> np.ndarray:
        return self.logits.argmax(axis=1) == self.labels


@dataclass
class MetricResult:
    per_sample: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict[str, float] = field(default_factory=dict)


@dataclass
class Metric:
    name: str
    fn: Callable[..., MetricResult]
    #: set names of the audited model the metric reads
    requires: tuple[str, ...]
    doc: str = ""

    def __call__(self, outputs: dict[str, Outputs], **params) -> MetricResult:
        return self.fn(outputs, **params)


METRICS: Registry[Metric] = Registry("metric")


def register_metric(name: str, requires: tuple[str, ...]):
    def deco(fn: Callable[..., MetricResult]) -> Callable[..., MetricResult]:
        METRICS.register(name)(Metric(name, fn, requires, (fn.__doc__ or "").strip()))
        return fn

    return deco
