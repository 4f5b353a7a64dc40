"""Sweep the hyperparameters of LLM unlearning methods with Ray Tune, every trial audited per epoch:
``python -m expunge.jobs.llm_sweep [CONFIG.yaml] [key=value ...] [--rebuild]`` (also ``expunge llm-sweep``).

The config is ``expunge llm-unlearn``'s (model, retain_model, forget, retain, heldout, unlearn.*,
audit.*, select.*; see ``configs/llm/unlearn_tiny.yaml``) plus a ``sweep:`` block (see
``configs/llm/sweep_tiny.yaml``):

* ``sweep.methods``: the methods (ga, grad_diff, npo, simnpo, rmu), each with fixed ``params`` and a
  ``space`` that overrides its registered search space dimension by dimension
  (``{loguniform: [1e-5, 1e-3]}``, ``{randint: [1, 6]}``, ``{choice: [...]}``, ``{grid: [...]}``,
  ``{uniform: [lo, hi]}``, a constant, or null to drop a dimension);
* ``num_samples``, ``search`` (random or grid), ``scheduler`` (asha or fifo), ``grace_period``,
  ``reduction_factor``, ``max_concurrent``, ``cpus_per_trial``, ``gpus_per_trial``, ``max_failures``;
* ``constraints`` on any column of the results table (``utility_drop_pct <= 5``) and the ``pareto``
  columns.

The original's and the retain model's log-probs are computed once, in this process, into the run
directory's cache; every trial unlearns in its own Ray worker and audits its model after each epoch
with llm-unlearn's functions and objective (``select.objective``), so ASHA can stop it early. The
results table (one row per trial and epoch), the Pareto front and one ``best_<method>.yaml`` per method
(an llm-unlearn config that retrains the best row's model) are written to
``<storage>/<name>/llm_sweeps/<sweep.name>``, and the command prints where. Ctrl+C stops the sweep
(exit status 130); the same command resumes it. ``--rebuild`` starts it over. Every input is checked
first: a bad one is one line on stderr, exit status 2, and nothing is written.
"""
from __future__ import annotations

import argparse
import os

from expunge.jobs.common import find_config, llm_job_args, main_wrapper


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Options, the optional config path and ``key=value`` overrides in any order."""
    return llm_job_args("llm_sweep", __doc__, argv, "model=DIR forget=FILE sweep.num_samples=8 sweep.scheduler=fifo", "llm-sweep runs one seed; set unlearn.seed= (or sweep it in a method's space)")


@main_wrapper
def main(argv: list[str] | None = None) -> int:
    from expunge.llm.sweep_run import load_sweep_config, plan, run_llm_sweep

    args = parse(argv)
    cfg = load_sweep_config(find_config(args.config) if args.config else None, args.overrides)
    if args.dry_run:
        s = cfg.sweep
        print(f"the config is valid: sweep {', '.join(m.name for m in s.methods) or '(no methods)'} on {cfg.model} "
              f"({s.search} search, {s.scheduler} scheduler, {s.max_concurrent} concurrent; {plan(cfg)}), forget "
              f"{cfg.forget}, retain {cfg.retain or '-'}, held-out {cfg.heldout or '-'}, retain model "
              f"{cfg.retain_model or '-'}; objective {cfg.objective()}; run directory {cfg.run_dir}")
        return 0
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if args.address:
        os.environ.setdefault("RAY_ADDRESS", args.address)
    # every input is checked inside, before Ray starts or a model loads
    run_llm_sweep(cfg, rebuild=args.rebuild, use_ray=not args.local)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
