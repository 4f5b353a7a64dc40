"""A sequential-unlearning ledger: ``python -m expunge.jobs.ledger CONFIG --method NAME --requests SPEC
[SPEC ...] [method.<param>=value] [key=value ...] [--local]`` (also ``expunge ledger``).

Requests r_1, r_2, ... (forget specs: ``random:0.05``, ``random:40``, ``class:3``,
``class_percentage:3:0.5``, ``mislabeled``, ``indices:FILE``) each forget a further set of still-retained
training samples from the latest model: version v_k is the method applied to v_{k-1} with forget set
r_k and retain set every sample still retained. Every forgotten sample's IAM score is recorded at every
later version, and a sample scored as unlearned at one version and as a member at a later one is
flagged as regressed (``--threshold``, IAM's 0.5 by default). Writes ``<run>/ledger/<method>-<hash>/``
(tables, ``ledger.md``, ``completeness.png``) and the run's report; reruns reuse every finished version.
See ``expunge.stages.ledger`` for the design.

Example: ``expunge ledger configs/experiments/digits.yaml --method finetune --requests random:0.05
random:0.05 class:3 method.epochs=2 --local``
"""
from __future__ import annotations

import argparse

from expunge.config import ExperimentConfig, MethodSpec
from expunge.errors import ConfigError
from expunge.jobs.common import (find_config, main_wrapper, parse_with_overrides, single_seed,
                                 split_method_overrides, start_ray)
from expunge.stages.ledger import prepare_ledger, run_ledger

#: forget-spec kinds: a word after --requests that starts with one is a request, anything else with '=' an override
KINDS = ("random:", "class:", "class_percentage:", "mislabeled", "indices:")


class _OneLineParser(argparse.ArgumentParser):
    """Argument errors as one :class:`ConfigError` line (exit code 2), like every other bad input."""

    def error(self, message: str):
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog="expunge ledger", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="experiment YAML, e.g. configs/experiments/digits.yaml")
    p.add_argument("--method", "-m", required=True, help="a registered unlearning method (expunge info)")
    p.add_argument("--requests", "-r", nargs="+", required=True, metavar="SPEC",
                   help="the forget requests in order, e.g. random:0.05 random:0.05 class:3")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="IAM membership score at or above which a sample reads as a member (default 0.5)")
    p.add_argument("--address", default=None, help="Ray cluster address, host:port (default: $RAY_ADDRESS, "
                                                   "else a private embedded Ray on 127.0.0.1)")
    p.add_argument("--local", action="store_true", help="run in this process without Ray")
    p.add_argument("--rebuild", action="store_true",
                   help="replace stored artifacts that are corrupt or do not match (never silently)")
    p.set_defaults(overrides=[])
    return p


def split_requests(requests: list[str], overrides: list[str]) -> tuple[list[str], list[str]]:
    """``--requests`` takes every word up to the next option: ``key=value`` words among them are
    overrides given after the requests (a request never has that form)."""
    specs, extra = [], []
    for word in requests:
        (specs if word.startswith(KINDS) or "=" not in word else extra).append(word)
    return specs, [*overrides, *extra]


def ledger_config(config: str, method: str, overrides: list[str]) -> tuple[ExperimentConfig, MethodSpec]:
    """The experiment config with ``unlearn.methods`` the one method (``method.<p>=value`` its parameters),
    validated and resolved as ``expunge unlearn`` does (so ``unlearn.min_steps`` applies), and its spec."""
    from expunge.resolve import load_config, validate

    params, rest = split_method_overrides(overrides)
    for item in rest:
        if item.startswith("unlearn.methods"):
            raise ConfigError(f"override {item!r}: the ledger runs one method; use --method NAME and "
                              "method.<param>=value")
    base = single_seed(load_config(find_config(config), rest), "expunge ledger")
    data = base.model_dump()
    data["unlearn"] = {**data["unlearn"], "methods": [{"name": method, "params": params}]}
    cfg = validate(ExperimentConfig, data, source="ledger")
    return cfg, cfg.unlearn.methods[0]


@main_wrapper
def main(argv: list[str] | None = None) -> int:
    args = parse_with_overrides(build_parser(), argv)
    requests, overrides = split_requests(args.requests, args.overrides)
    cfg, spec = ledger_config(args.config, args.method, overrides)
    checked = prepare_ledger(cfg, spec, requests, args.threshold, args.rebuild)  # every input, before Ray starts
    run_ledger(cfg, spec, requests, args.threshold, args.rebuild, start_ray(args), prepared=checked)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
