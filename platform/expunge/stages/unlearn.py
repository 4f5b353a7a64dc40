"""The unlearning stage: the requested methods on the stored original (trained first when the store
lacks it), audited against the original, through the pipeline stage."""
from __future__ import annotations

from typing import Any

from expunge.config import ExperimentConfig
from expunge.experiment import Experiment, log
from expunge.stages.pipeline import run_pipeline


def run_unlearn(cfg: ExperimentConfig, rebuild: bool = False, use_ray: bool = True) -> dict[str, Any]:
    result = run_pipeline(cfg, rebuild, use_ray)
    ex = Experiment(cfg)
    for spec in cfg.unlearn.methods:
        log(f"unlearned model ({spec.name}): {ex.store.path('models', ex.unlearned_key(spec))}")
    return result
