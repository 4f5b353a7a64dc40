"""Audit the stored models of an experiment: ``python -m expunge.jobs.audit --config FILE [key=value ...]``.

Reads the original and every ``unlearn.methods`` model from the store (run ``expunge run`` first),
trains the OUT shadow models the metrics need if the store does not have them (Ray tasks), and
computes ``audit.metrics`` from cached outputs. Writes the leaderboard, the tidy table, per-sample
scores and JSON under ``<run>/audit/results``, and renders the run's summary and HTML report again
from them.
"""
from __future__ import annotations

from expunge.jobs.common import config_job
from expunge.stages.audit import run_audit

main = config_job("audit", __doc__, run_audit)


if __name__ == "__main__":
    raise SystemExit(main())
