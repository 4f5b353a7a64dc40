"""``--dry-run``: what a config would run, stage by stage, without touching data or compute.

Validates the whole config (schema, registry names, method hyperparameters, sweep spaces) and lists
the stages a pipeline, fleet or sweep would run. Real-data configs (CIFAR, Tiny-ImageNet) are checked
this way on machines that do not hold the data.
"""
from __future__ import annotations

from typing import Any

from expunge.config import ExperimentConfig


def describe_plan(cfg: ExperimentConfig) -> list[dict[str, Any]]:
    """One entry per stage: its name and what it would do (pure; no data, no Ray)."""
    from expunge.sweep.space import method_space
    from expunge.unlearn import METHODS

    d, t = cfg.data, cfg.train
    stages: list[dict[str, Any]] = [
        {"stage": "split", "what": f"{d.dataset} (root {d.root or '-'}), forget {d.forget}, held-out sizes "
                                   f"{d.sizes.model_dump()}, seed {cfg.seed}"},
        {"stage": "original", "what": f"{cfg.model.name}{' ' + str(cfg.model.kwargs) if cfg.model.kwargs else ''}, recipe {t.recipe or 'standard'}: "
                                      f"{t.epochs} epochs, batch {t.batch_size}, {t.optimizer} lr {t.lr}, "
                                      f"{t.schedule}; " + (f"Ray Train with {cfg.scaling.num_workers} workers"
                                                           f"{' on GPUs' if cfg.scaling.use_gpu else ''}"
                                                           if cfg.scaling.distributed else "one process")},
    ]
    if cfg.fleet.size:
        f = cfg.fleet
        stages.append({"stage": "fleet", "what": f"{f.size} {f.kind} models ({f.policy}), "
                                                 f"{f.cpus_per_model} CPU / {f.gpus_per_model} GPU each"})
    for spec in cfg.unlearn.methods:
        params = METHODS.get(spec.name).parse_config(spec.params).model_dump()
        stages.append({"stage": f"unlearn {spec.name}", "what": ", ".join(f"{k}={v}" for k, v in params.items())})
    if cfg.audit.shadows:
        stages.append({"stage": "audit shadows", "what": f"{cfg.audit.shadows} OUT-only models on "
                                                         f"{cfg.audit.shadow_fraction:.0%} of the shadow pool"})
    if cfg.unlearn.methods:
        stages.append({"stage": "audit", "what": f"metrics {', '.join(cfg.audit.metrics)}"})
    for m in cfg.sweep.methods:
        space = method_space(m)
        stages.append({"stage": f"sweep {m.name}", "what": f"{cfg.sweep.num_samples} trials ({cfg.sweep.search}, "
                       f"{cfg.sweep.scheduler}) over " + ", ".join(f"{k}~{d.kind}{list(d.args)}" for k, d in space.items())})
    stages.append({"stage": "storage", "what": cfg.run_dir})
    return stages


def print_plan(*cfgs: ExperimentConfig) -> None:
    for cfg in cfgs:
        print(f"dry run of {cfg.name}: the config is valid; nothing was read or computed")
        for s in describe_plan(cfg):
            print(f"  {s['stage']:<24} {s['what']}")
