"""Write a run's HTML report and Markdown summary: ``python -m expunge.jobs.report --run RUN``
or ``python -m expunge.jobs.report --config CONFIG [key=value ...]`` (the config's run directory).

The report (leaderboard with gaps to retrain, ROC curves, score histograms, CR against alpha,
relearning curves, sweeps, the run's manifest) is stored as ``<run>/reports/report/report.html``:
one self-contained file, figures embedded, viewable offline. ``--out PATH`` also copies it there
(a folder, or a file name ending in .html). Reads the store only: no Ray, no training.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from expunge.errors import ConfigError
from expunge.jobs.common import find_config, main_wrapper, parse_with_overrides
from expunge.report.build import write_report


def run_report(run_dir: str, out: str | None = None, rebuild: bool = False) -> dict[str, Any]:
    """Render and store the report of ``run_dir``; prints where it is and returns the paths. A damaged
    stored report is refused by name unless ``rebuild``."""
    res = write_report(run_dir, out, rebuild)
    print(f"report sections: {', '.join(res['sections'])} ({len(res['figures'])} figures)", file=sys.stderr)
    print(f"report: {res['html']}", flush=True)
    print(f"summary: {res['markdown']}", flush=True)
    if res["out"]:
        print(f"copy: {res['out']}", flush=True)
    return res


def add_report_args(p: argparse.ArgumentParser) -> None:
    """RUN (positional or ``--run``), or ``--config`` with overrides; ``--out``."""
    p.add_argument("run", nargs="?", default=None, help="run directory, e.g. runs/digits (local path or URI)")
    p.add_argument("--run", dest="run_flag", default=None, metavar="RUN", help="run directory (same as RUN)")
    p.add_argument("--config", "-c", default=None, help="experiment YAML whose run_dir holds the run")
    p.add_argument("--out", "-o", default=None, help="also write the report here (a folder, or a .html file)")
    p.add_argument("--rebuild", action="store_true", help="replace a damaged stored report")
    p.set_defaults(overrides=[])


def resolve_run_dir(run: str | None, run_flag: str | None, config: str | None, overrides: list[str]) -> str:
    """The run directory named by RUN / --run, or by a config's ``run_dir`` (with its overrides)."""
    if run is not None and "=" in run and not Path(run).exists():  # argparse gives a lone key=value to RUN
        run, overrides = None, [run, *overrides]
    given = [r for r in (run, run_flag) if r is not None]
    if len(set(given)) > 1 or (given and config):
        raise ConfigError("give one run: a run directory (RUN or --run) or --config CONFIG, not both")
    if config:
        from expunge.resolve import load_config

        return load_config(find_config(config), overrides).run_dir
    if overrides:
        raise ConfigError(f"key=value overrides ({' '.join(overrides)}) need --config CONFIG")
    if not given:
        raise ConfigError("which run? give a run directory (expunge report runs/digits) or --config CONFIG")
    return given[0]


def report_command(args: argparse.Namespace) -> int:
    """The handler shared by this job and ``expunge report``."""
    run_report(resolve_run_dir(args.run, args.run_flag, args.config, args.overrides), args.out, args.rebuild)
    return 0


@main_wrapper
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m expunge.jobs.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_report_args(p)
    return report_command(parse_with_overrides(p, argv))


if __name__ == "__main__":
    raise SystemExit(main())
