"""ScoreUI from the command line: ``python -m expunge.jobs.scoreui CONFIG [--breaks B] [key=value ...]
[--local]`` (also ``expunge scoreui``).

Trains (or reuses) the original and the audit's shadows, then a checkpoint series of known partial
membership: a model initialised from one more OUT shadow (never saw the target samples) trained on the
original's training set for ``train.epochs`` epochs, checkpoint b after b * epochs / B epochs with
membership b / B (IAM paper, USENIX Security 2025). Every attack of ``audit.metrics`` with per-sample
scores (IAM, LiRA, RMIA online and offline; SVC-MIA) scores the forget set under each checkpoint, and
ScoreUI is the Spearman / Pearson correlation of the min-max normalised scores with b / B, with
bootstrap 95% intervals. The table is stored as ``<run>/audit/scoreui-<tag>/`` (CSV, parquet, JSON, the
raw scores) and shown by ``expunge report``.

Bad input (B not dividing train.epochs, no such attack in audit.metrics, audit.shadows=0) is one line
and exit code 2, before anything is trained or stored.
"""
from __future__ import annotations

import argparse

from expunge.errors import ConfigError
from expunge.jobs.common import find_config, main_wrapper, parse_with_overrides, single_seed, start_ray


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one :class:`ConfigError` line (exit code 2), like every other bad input."""

    def error(self, message: str):
        raise ConfigError(message)


def add_runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=None, help="Ray cluster address, host:port (default: $RAY_ADDRESS, "
                                                   "else a private embedded Ray on 127.0.0.1)")
    p.add_argument("--local", action="store_true", help="run in this process without Ray")
    p.add_argument("--rebuild", action="store_true",
                   help="recompute artifacts that are corrupt or do not match this config (never silently)")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="expunge scoreui", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="experiment YAML, e.g. configs/experiments/digits.yaml")
    p.add_argument("--breaks", type=int, default=None, metavar="B",
                   help="checkpoints after the init, membership b/B (default: the paper's 20 when it divides "
                        "train.epochs, else the largest divisor of train.epochs below 20)")
    add_runtime(p)
    p.set_defaults(overrides=[])
    return p


@main_wrapper
def main(argv: list[str] | None = None) -> int:
    from expunge.resolve import load_config
    from expunge.stages.scoreui import check_request, run_scoreui

    args = parse_with_overrides(build_parser(), argv)
    cfg = single_seed(load_config(find_config(args.config), args.overrides), "expunge scoreui")
    breaks = check_request(cfg, args.breaks)  # before Ray starts or anything is read
    run_scoreui(cfg, args.rebuild, start_ray(args), breaks=breaks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
