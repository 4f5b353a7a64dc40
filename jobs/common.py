"""What every job entrypoint shares: arguments, config loading, Ray start-up, error handling."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Callable

from expunge.config import ExperimentConfig

from expunge.resolve import load_config
from expunge.errors import ConfigError, ExpungeError, from_os_error

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def add_common_args(p: argparse.ArgumentParser, config_required: bool = True) -> None:
    p.add_argument("--config", "-c", required=config_required, help="experiment YAML (configs/experiments/...)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=5")
    add_runtime_args(p)


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=None,
                   help="Ray cluster address, host:port (default: $RAY_ADDRESS, else a private embedded Ray on "
                        "127.0.0.1, never a cluster left in Ray's address file)")
    p.add_argument("--local", action="store_true", help="run in this process without Ray")
    p.add_argument("--rebuild", action="store_true",
                   help="recompute artifacts that are corrupt or do not match this config (never silently)")
    p.add_argument("--seeds", default=None, metavar="S,S,...",
                   help="repeat the experiment per seed (split and initialisation), e.g. 0,1,2; same as seeds=[0,1,2]")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the config and print the stages it would run; read no data, compute nothing")


def parse_with_overrides(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse options and ``key=value`` overrides in any order (``run CFG --local a=1 --rebuild b=2``)."""
    args, extra = p.parse_known_args(argv)
    stray = [a for a in extra if "=" not in a or a.startswith("-")]
    if stray:
        p.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*getattr(args, "overrides", []), *extra]
    if getattr(args, "seeds", None):
        if not re.fullmatch(r"\d+(,\d+)*", args.seeds):
            p.error(f"--seeds {args.seeds!r}: give comma-separated non-negative integers, e.g. 0,1,2")
        args.overrides = [*getattr(args, "overrides", []), f"seeds=[{args.seeds}]"]
    return args


def split_method_overrides(overrides: list[str]) -> tuple[dict[str, Any], list[str]]:
    """``method.<param>=value`` overrides as the method's parameters, and the rest (the experiment's),
    for the commands that run one method (``unlearn``, ``epsilon``, ``ledger``)."""
    from expunge.config import parse_overrides

    params: dict[str, Any] = {}
    rest = []
    for item in overrides:
        if item.startswith("method."):
            params.update(parse_overrides([item.removeprefix("method.")]))
        else:
            rest.append(item)
    return params, rest


def find_config(path: str) -> str:
    """A config path as given, or relative to the repository's configs/ folder."""
    p = Path(path)
    if p.is_file():
        return str(p)
    for cand in (REPO_CONFIGS / path, REPO_CONFIGS.parent / path):
        if cand.is_file():
            return str(cand)
    return path  # load_config names the missing file


def load(args: argparse.Namespace) -> ExperimentConfig:
    return load_config(find_config(args.config) if args.config else None, args.overrides)


def single_seed(cfg: ExperimentConfig, command: str) -> ExperimentConfig:
    """Stages other than the whole pipeline run one seed: refuse ``seeds`` there, before any compute."""
    if cfg.seeds is not None:
        raise ConfigError(f"seeds: `{command}` runs one seed (seed={cfg.seed}); repeated trials run the whole "
                          "experiment: expunge run CONFIG --seeds ...")
    return cfg


def start_ray(args: argparse.Namespace) -> bool:
    """Start or join Ray unless ``--local``; returns whether stages run as Ray tasks."""
    if args.local:
        return False
    from expunge.runtime import init_ray

    init_ray(address=args.address)
    return True


def dry_run(args: argparse.Namespace, *cfgs: ExperimentConfig) -> bool:
    """With ``--dry-run``: print what each config would run and return True (the caller stops)."""
    if not getattr(args, "dry_run", False):
        return False
    from expunge.jobs.plan import print_plan

    print_plan(*cfgs)
    return True


def main_wrapper(fn: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Turn an :class:`ExpungeError` into one line on stderr and exit code 2."""

    def wrapped(argv: list[str] | None = None) -> int:
        try:
            return fn(argv)
        except ExpungeError as exc:
            print(f"expunge: error: {exc}", file=sys.stderr)
            return exc.exit_code
        except OSError as exc:  # the file system refused: one line (errors.from_os_error), else a bug
            err = from_os_error(exc)
            if err is None:
                raise
            print(f"expunge: error: {err}", file=sys.stderr)
            return err.exit_code

    return wrapped


def config_job(name: str, doc: str | None, run: Callable[..., object]) -> Callable[[list[str] | None], int]:
    """The ``main`` of a job that takes ``--config`` and overrides and calls ``run(cfg, rebuild, use_ray)``."""

    @main_wrapper
    def main(argv: list[str] | None = None) -> int:
        p = argparse.ArgumentParser(prog=f"python -m expunge.jobs.{name}", description=doc,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        add_common_args(p)
        args = parse_with_overrides(p, argv)
        cfg = load(args)  # validated before Ray starts
        if name != "pipeline":
            single_seed(cfg, f"python -m expunge.jobs.{name}")
        if not dry_run(args, cfg):
            run(cfg, args.rebuild, start_ray(args))
        return 0

    return main


def llm_job_args(name: str, doc: str | None, argv: list[str] | None, example: str, seeds_hint: str) -> argparse.Namespace:
    """The arguments of an LLM job (``llm_unlearn``, ``llm_sweep``): an optional config path and
    ``key=value`` overrides in any order, ``--trust-remote-code`` and the runtime options."""
    p = argparse.ArgumentParser(prog=f"python -m expunge.jobs.{name}", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help=f"YAML config, e.g. configs/llm/{name.removeprefix('llm_')}_tiny.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help=f"settings, e.g. {example}")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="run the model directory's own code (same as trust_remote_code=true; off by default)")
    add_runtime_args(p)
    args = parse_with_overrides(p, argv)
    if args.config is not None and "=" in args.config and not Path(args.config).is_file():
        args.overrides = [args.config, *args.overrides]  # no config given: the first word is an override
        args.config = None
    if args.seeds:
        p.error(f"--seeds: {seeds_hint}")
    if args.trust_remote_code:
        args.overrides.append("trust_remote_code=true")
    return args
