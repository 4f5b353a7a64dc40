"""``--dry-run``: what a config would run, stage by stage, without touching data or compute.

Validates the whole config (schema, registry names, method hyperparameters, sweep spaces) and lists
the stages a pipeline, fleet or sweep would run. Real-data configs (CIFAR, Tiny-ImageNet) are checked
this way on machines that do not hold the data.
"""
from __future__ import annotations

from typing import Any

from expunge.config import ExperimentConfig, TrainConfig

#: what retrain+cpu takes from the original's recipe: epochs and lr when unset (None), batch_size and
#: weight_decay when not set explicitly (``expunge.unlearn.cpu.RetrainLoop.run``)
RECIPE_WHEN_NONE = ("epochs", "lr")
RECIPE_WHEN_UNSET = ("batch_size", "weight_decay")


def recipe_text(t: TrainConfig, epochs: int | None = None) -> str:
    """A training recipe in one line: the values the training loop reads."""
    return (f"recipe {t.recipe or 'standard'}: {epochs or t.epochs} epochs, batch {t.batch_size}, {t.optimizer} "
            f"lr {t.lr} (momentum {t.momentum}{', nesterov' if t.nesterov else ''}), weight decay "
            f"{t.weight_decay}, {t.schedule}"
            + (f" after {t.warmup_epochs:g} warm-up epochs" if t.warmup_epochs else "")
            + (f", label smoothing {t.label_smoothing:g}" if t.label_smoothing else "")
            + (", augmented" if t.augment else ", no augmentation"))


def method_settings(name: str, params: dict[str, Any] | None = None, train: TrainConfig | None = None) -> str:
    """The hyperparameters a method actually trains with, in one line.

    Most methods train with their own ``Config``. ``retrain`` trains with the original's recipe
    (``train:``; only ``epochs`` can differ), so its ``Config`` defaults are not what it uses; for
    ``retrain+cpu`` the recipe fills :data:`RECIPE_WHEN_NONE` / :data:`RECIPE_WHEN_UNSET`. Without
    ``train`` (``expunge info``) the line says where those values come from instead."""
    from expunge.unlearn import METHODS
    from expunge.unlearn.cpu import RetrainLoopConfig
    from expunge.unlearn.retrain import RetrainConfig

    cls = METHODS.get(name)
    cfg = cls.parse_config(params)
    if isinstance(cfg, RetrainConfig):
        if train is None:
            return ("uses the original's train recipe (train.*: epochs, batch_size, optimizer, lr, schedule, ...); "
                    "method.epochs overrides its epochs")
        ignored = ", ".join(f"{k}={getattr(cfg, k)!r}" for k in sorted(cfg.model_fields_set - {"epochs"}))
        return (f"uses the original's train recipe, {recipe_text(train, cfg.epochs)}"
                + (f" (ignored: {ignored})" if ignored else ""))
    values = cfg.model_dump()
    if not cls.shared_loop:  # its own procedure: the shared loop's step rule does not apply
        values.pop("min_steps", None)
    if not isinstance(cfg, RetrainLoopConfig):
        return ", ".join(f"{k}={v!r}" for k, v in values.items())
    from_recipe = [k for k in RECIPE_WHEN_NONE if values[k] is None]
    from_recipe += [k for k in RECIPE_WHEN_UNSET if k not in cfg.model_fields_set]
    if train is None:
        shown = {k: v for k, v in values.items() if k not in from_recipe}
        return (", ".join(f"{k}={v!r}" for k, v in shown.items())
                + f"; {', '.join(from_recipe)} from the original's train recipe unless set")
    return ", ".join(f"{k}={getattr(train, k)!r} (train)" if k in from_recipe else f"{k}={v!r}"
                     for k, v in values.items())


def describe_plan(cfg: ExperimentConfig) -> list[dict[str, Any]]:
    """One entry per stage: its name and what it would do (pure; no data, no Ray)."""
    from expunge.resolve import method_space

    d, t = cfg.data, cfg.train
    stages: list[dict[str, Any]] = [
        {"stage": "split", "what": f"{d.dataset} (root {d.root or '-'}), forget {d.forget}, held-out sizes "
                                   f"{d.sizes.model_dump()}, seed {cfg.seed}"},
        {"stage": "original", "what": f"{cfg.model.name}{' ' + str(cfg.model.kwargs) if cfg.model.kwargs else ''}, "
                                      f"{recipe_text(t)}; " + (f"Ray Train with {cfg.scaling.num_workers} workers"
                                                           f"{' on GPUs' if cfg.scaling.use_gpu else ''}"
                                                           if cfg.scaling.distributed else "one process")},
    ]
    if cfg.fleet.size:
        f = cfg.fleet
        stages.append({"stage": "fleet", "what": f"{f.size} {f.kind} models ({f.policy}), "
                                                 f"{f.cpus_per_model} CPU / {f.gpus_per_model} GPU each"})
    for spec in cfg.unlearn.methods:
        stages.append({"stage": f"unlearn {spec.name}", "what": method_settings(spec.name, spec.params, t)})
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
