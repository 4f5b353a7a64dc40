"""Metrics: pure functions over cached per-sample outputs."""
from expunge.metrics.base import METRICS, Metric, MetricResult, Outputs, register_metric

from expunge.metrics import accuracy  # noqa: E402,F401  isort: skip

__all__ = ["METRICS", "Metric", "MetricResult", "Outputs", "register_metric"]
