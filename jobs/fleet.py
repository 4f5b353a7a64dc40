"""Train a fleet: ``python -m expunge.jobs.fleet --config FILE fleet.kind=shadow fleet.size=16 [...]``."""
from __future__ import annotations

import argparse

from expunge.distributed.fleet import run_fleet
from expunge.jobs.common import add_common_args, load, main_wrapper, parse_with_overrides, start_ray


@main_wrapper
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m expunge.jobs.fleet", description=__doc__)
    add_common_args(p)
    args = parse_with_overrides(p, argv)
    run_fleet(load(args), args.rebuild, start_ray(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
