"""Per-example epsilon from the command line: ``python -m expunge.jobs.epsilon CONFIG --method NAME
--models M [method.<param>=value ...] [key=value ...] [--local]`` (also ``expunge epsilon``).

The NeurIPS 2023 Machine Unlearning Challenge's evaluation: trains (or reuses) a fleet of M models
retrained without the forget set and a fleet of M originals (one seed each) unlearned with the method,
estimates per forget example how well any threshold on the logit-scaled confidence tells the two
fleets apart (ε at δ = 1e-5), and prints the bucketed forget score, the RA and TA ratios and the
challenge score (forget score x RA ratio x TA ratio). The challenge used M = 512; a small M gives a
coarse forget score. Stored as ``<run>/audit/epsilon-unlearned-<method>-<hash>/`` and shown by
``expunge report``.

Bad input (--models below 3, an unknown method or method parameter, a method that does not apply to
the forget set) is one line and exit code 2, before anything is trained or stored.
"""
from __future__ import annotations

import argparse

from expunge.config import MethodSpec
from expunge.jobs.common import (find_config, main_wrapper, parse_with_overrides, single_seed,
                                 split_method_overrides, start_ray)
from expunge.jobs.scoreui import OneLineParser, add_runtime


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="expunge epsilon", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="experiment YAML, e.g. configs/experiments/digits.yaml")
    p.add_argument("--method", "-m", required=True, help="a registered unlearning method (expunge info), e.g. finetune")
    p.add_argument("--models", "-M", type=int, required=True, metavar="M", help="models per fleet (>= 3; the challenge: 512)")
    add_runtime(p)
    p.set_defaults(overrides=[])
    return p


@main_wrapper
def main(argv: list[str] | None = None) -> int:
    from expunge.resolve import load_config
    from expunge.stages.epsilon import epsilon_configs, run_epsilon

    args = parse_with_overrides(build_parser(), argv)
    params, rest = split_method_overrides(args.overrides)
    cfg = single_seed(load_config(find_config(args.config), rest), "expunge epsilon")
    spec = MethodSpec(name=args.method, params=params)
    epsilon_configs(cfg, spec, args.models)  # every problem before Ray starts or anything is read
    run_epsilon(cfg, spec, args.models, args.rebuild, start_ray(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
