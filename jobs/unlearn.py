"""One unlearning method on a config's original model.

``python -m expunge.jobs.unlearn --config configs/experiments/digits.yaml --method finetune+cpu
--forget class:3 method.lam=0.5 train.epochs=10``: ``method.<param>=value`` sets the method's
hyperparameters, any other ``key=value`` overrides the experiment config. The original is trained
first if the store does not have it; the table compares the method with the original.
"""
from __future__ import annotations

import argparse

from expunge.config import ExperimentConfig

from expunge.resolve import load_config
from expunge.errors import ConfigError
from expunge.jobs.common import (add_runtime_args, dry_run, find_config, main_wrapper, parse_with_overrides,
                                 single_seed, split_method_overrides, start_ray)
from expunge.stages.unlearn import run_unlearn

DEFAULT_CONFIG = "experiments/digits.yaml"


def unlearn_config(config: str | None, method: str | None, forget: str | None, overrides: list[str]) -> ExperimentConfig:
    """The experiment config with ``unlearn.methods`` replaced by the one requested method; without a
    method, the config's own ``unlearn.methods`` (a sweep's ``best_*.yaml`` lists retrain and its best)."""
    method_params, rest = split_method_overrides(overrides)
    for item in rest:
        if item.startswith("unlearn."):
            raise ConfigError(f"override {item!r}: use --method NAME and method.<param>=value with `unlearn`")
    if forget is not None:
        rest.append(f"data.forget={forget}")
    base = single_seed(load_config(find_config(config or DEFAULT_CONFIG), rest), "expunge unlearn")
    if method is None:
        if method_params:
            raise ConfigError("method.<param>=value needs --method NAME")
        if config is None or not base.unlearn.methods:
            raise ConfigError("--method: name a method, or give a --config that lists unlearn.methods")
        return base
    data = base.model_dump()
    data["unlearn"] = {"methods": [{"name": method, "params": method_params}]}
    from expunge.resolve import validate

    return validate(ExperimentConfig, data, source="unlearn")


def add_unlearn_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", "-m", default=None,
                   help="a registered method (expunge info), e.g. salun (default: the config's unlearn.methods)")
    p.add_argument("--forget", "-f", default=None, help="forget spec: random:0.1, class:3, class_percentage:3:0.5, "
                                                          "indices:FILE (default: the config's)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="method.<param>=value for the method, section.key=value for the experiment")
    add_runtime_args(p)


@main_wrapper
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m expunge.jobs.unlearn", description=__doc__)
    p.add_argument("--config", "-c", default=None, help=f"experiment YAML (default: configs/{DEFAULT_CONFIG})")
    add_unlearn_args(p)
    args = parse_with_overrides(p, argv)
    cfg = unlearn_config(args.config, args.method, args.forget, args.overrides)
    if not dry_run(args, cfg):
        run_unlearn(cfg, args.rebuild, start_ray(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
