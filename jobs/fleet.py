"""Train a fleet: ``python -m expunge.jobs.fleet --config FILE fleet.kind=shadow fleet.size=16 [...]``."""
from __future__ import annotations

from expunge.stages.fleet import run_fleet
from expunge.jobs.common import config_job


main = config_job("fleet", __doc__, run_fleet)


if __name__ == "__main__":
    raise SystemExit(main())
