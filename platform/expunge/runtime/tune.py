"""Ray Tune glue for sweeps: search-space domains, searchers, schedulers, the Tuner and its callback.

The sweep logic (spaces, scoring, resumption policy, results) lives in :mod:`expunge.sweep` and
imports no Ray; this module is where it meets Tune.
"""
from __future__ import annotations

import importlib.util
from typing import Any, Callable

from ray import tune
from ray.tune import Callback

from expunge.config import SweepConfig
from expunge.errors import ConfigError
from expunge.unlearn.space import Domain

_MAKERS = {"grid": lambda a: tune.grid_search(list(a)), "choice": lambda a: tune.choice(list(a)),
           "uniform": lambda a: tune.uniform(*a), "loguniform": lambda a: tune.loguniform(*a),
           "randint": lambda a: tune.randint(*a)}


def to_tune(space: dict[str, Domain], search: str) -> dict[str, Any]:
    """Ray Tune domains. ``grid`` search needs grid / choice dimensions (each point runs once);
    Optuna and HyperOpt cannot take ``grid`` dimensions (use ``choice``)."""
    out: dict[str, Any] = {}
    for name, d in space.items():
        kind = d.kind
        if search == "grid":
            if kind not in ("grid", "choice"):
                raise ConfigError(f"sweep: grid search needs grid or choice dimensions; {name} is {kind}")
            kind = "grid"
        elif kind == "grid" and search != "random":
            raise ConfigError(f"sweep: search {search} cannot take grid dimensions ({name}); use choice")
        out[name] = _MAKERS[kind](d.args)
    return out


def search_algorithm(sweep: SweepConfig, seed: int):
    """Random / grid: Tune's variant generator (seeded); Optuna / HyperOpt when installed."""
    from ray.tune.search.basic_variant import BasicVariantGenerator

    if sweep.search in ("random", "grid"):
        return BasicVariantGenerator(random_state=seed, max_concurrent=sweep.max_concurrent)
    if importlib.util.find_spec(sweep.search) is None:
        raise ConfigError(f"sweep.search: {sweep.search} is not installed (pip install {sweep.search})")
    if sweep.search == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(seed=seed)
    from ray.tune.search.hyperopt import HyperOptSearch

    return HyperOptSearch(random_state_seed=seed)


def tune_trial(params: dict[str, Any], run: Callable[..., Any], **kwargs: Any) -> None:
    """The function trainable: ``run(params, report=tune.report, **kwargs)`` (``tune.with_parameters``
    binds ``run`` and ``kwargs``). Tune names trial directories after this function."""
    from expunge import faults
    from expunge.runtime.tasks import current_node

    # which node ran which trial, for the multi-node tests (a no-op without EXPUNGE_FAULTS)
    faults.record("trial_start", f"{tune.get_context().get_trial_id()}:{current_node()}")
    run(params, report=tune.report, **kwargs)


def trainable(run: Callable[..., Any], cpus: float, gpus: float, **kwargs: Any):
    """:func:`tune_trial` bound to ``run`` and its keyword arguments, with per-trial resources."""
    return tune.with_resources(tune.with_parameters(tune_trial, run=run, **kwargs), {"cpu": cpus, "gpu": gpus})


class TrialEndCallback(Callback):
    """Calls ``on_end(trials, trial, error)`` whenever a trial completes or fails (progress lines)."""

    def __init__(self, on_end: Callable[[list, Any, bool], None]) -> None:
        self.on_end = on_end

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.on_end(trials, trial, False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.on_end(trials, trial, True)


def can_restore(path: str) -> bool:
    return tune.Tuner.can_restore(path)


def restore_tuner(path: str, trainable_: Any):
    """A Tuner resumed from ``path``, unfinished and errored trials included (check the seal first)."""
    return tune.Tuner.restore(path, trainable_, resume_unfinished=True, restart_errored=True)


def new_tuner(trainable_: Any, space: dict[str, Domain], sweep: SweepConfig, name: str, tune_root: str, seed: int,
              on_trial_end: Callable[[list, Any, bool], None] | None, max_t: int):
    """A Tuner minimising ``sweep_score`` with ASHA (over epochs, up to ``max_t``) or FIFO."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    scheduler = (ASHAScheduler(time_attr="training_iteration", max_t=max_t,
                               grace_period=sweep.grace_period, reduction_factor=sweep.reduction_factor)
                 if sweep.scheduler == "asha" else FIFOScheduler())
    return tune.Tuner(
        trainable_,
        param_space=to_tune(space, sweep.search),
        tune_config=tune.TuneConfig(metric="sweep_score", mode="min", scheduler=scheduler,
                                    search_alg=search_algorithm(sweep, seed),
                                    num_samples=1 if sweep.search == "grid" else sweep.num_samples,
                                    # the variant generator limits itself; searchers get Tune's limiter
                                    max_concurrent_trials=None if sweep.search in ("random", "grid")
                                    else sweep.max_concurrent,
                                    # a finished trial's worker takes the next one: no new process, no
                                    # re-import of torch and expunge, its experiment kept (trial.prepared)
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=tune_root, verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
                                  callbacks=[TrialEndCallback(on_trial_end)] if on_trial_end else []))
