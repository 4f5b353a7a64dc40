"""Metrics: pure functions over cached per-sample outputs."""
from expunge.metrics.base import METRICS, AuditInputs, Metric, MetricResult, Outputs, register_metric

from expunge.metrics import accuracy, audit_metrics  # noqa: E402,F401  isort: skip

__all__ = ["METRICS", "AuditInputs", "Metric", "MetricResult", "Outputs", "register_metric"]
