"""The whole experiment: split -> original -> fleet -> each unlearning method -> audit -> report.

``python -m expunge.jobs.pipeline --config configs/experiments/digits.yaml [key=value ...]``. Every
stage reads the store first and skips what is already there with a matching manifest. With
``seeds: [0, 1, 2]`` (or ``--seeds 0,1,2``) the experiment runs once per seed, each in its own run
directory ``<run>/seed-<s>``, and ``<run>/seeds/summary`` holds mean ± std per metric and per gap to
retrain and paired comparisons of the methods across seeds (:mod:`expunge.audit.across_seeds`).
"""
from __future__ import annotations

from expunge.jobs.common import config_job
from expunge.stages.pipeline import run_pipeline

main = config_job("pipeline", __doc__, run_pipeline)


if __name__ == "__main__":
    raise SystemExit(main())
