"""Train the original model: ``python -m expunge.jobs.original --config FILE [key=value ...]``."""
from __future__ import annotations

from expunge.jobs.common import config_job
from expunge.stages.original import run_original

main = config_job("original", __doc__, run_original)


if __name__ == "__main__":
    raise SystemExit(main())
