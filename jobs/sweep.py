"""A hyperparameter sweep over unlearning methods with Ray Tune, scored against the retrained model.

``python -m expunge.jobs.sweep --config configs/sweeps/cpu_finetune.yaml [key=value ...]``: makes (or
reuses) the original, the retrained gold standard and the audit's shadows, then runs one Tuner per
method in ``sweep.methods`` (ASHA by default). Rerunning resumes an interrupted sweep; ``--rebuild``
starts over. Results (table, Pareto front, best configs as YAML, plots) land in ``<run>/sweeps/<name>``.
"""
from __future__ import annotations

from expunge.jobs.common import config_job
from expunge.sweep.runner import run_sweep

main = config_job("sweep", __doc__, run_sweep)


if __name__ == "__main__":
    raise SystemExit(main())
