"""The original stage: train (or import, or reuse) the original model, as a Ray task or with Ray Train."""
from __future__ import annotations

from typing import Any

from expunge.config import ExperimentConfig
from expunge.experiment import Experiment, log


def original_task(cfg: dict[str, Any], rebuild: bool) -> dict[str, Any]:
    """Ray task body: train (or reuse) the original; returns a small summary."""
    ex = Experiment(ExperimentConfig.model_validate(cfg), rebuild=rebuild)
    art = ex.original()
    return {"path": art.path, "run_time_s": art.manifest.get("run_time_s"), "content_hash": art.manifest["content_hash"]}


def run_original(cfg: ExperimentConfig, rebuild: bool = False, use_ray: bool = True) -> dict[str, Any]:
    from expunge.runtime import run_tasks

    Experiment(cfg, rebuild=rebuild).preflight([])  # split and stored-artifact checks before any compute
    if use_ray and cfg.scaling.distributed and cfg.model.weights is None:
        from expunge.runtime.train_original import run_original_ray_train

        res = run_original_ray_train(cfg, rebuild)
    else:
        (res,) = run_tasks(original_task, [{"cfg": cfg.model_dump(), "rebuild": rebuild}], desc="original",
                           use_ray=use_ray)
    log(f"original model: {res['path']}")
    return res

