"""Sweep overhead: ``python -m expunge.jobs.bench_sweep [--trials N] [--rounds R] [--concurrent C]``.

The same N trials (``finetune`` at N learning rates on a log grid, each for the same epochs, audited
between epochs exactly as a sweep trial is) run two ways in one run, in interleaved rounds:

* **loop**: the reference rows, then :func:`expunge.sweep.trial.run_trial` called N times in this
  process, one after another (no Tune, no Ray): what a user's own ``for`` loop over configurations
  would cost;
* **sweep**: ``expunge sweep`` itself (:func:`expunge.sweep.runner.run_sweep`): Ray Tune with a grid
  search and no early stopping (FIFO), C trials at a time, from the reference rows to the stored
  results, best configs and figures.

Both read the same stored original, retrained model and audit shadows (made once, before the rounds).
Prints trials per hour for each, the ratio sweep / loop (median round and range) and writes the
numbers as JSON. Ray's start-up is paid once, before the rounds, and reported apart. Never a timed
assertion: a report.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from expunge.jobs.benchtools import describe_ratio, interleaved, rates, ratio_summary
from expunge.jobs.common import main_wrapper

REPO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "experiments" / "digits.yaml"


def sweep_yaml(storage: str, lrs: list[float], epochs: int, concurrent: int, name: str) -> str:
    grid = ", ".join(f"{lr:.6g}" for lr in lrs)
    return f"""base: {REPO_CONFIG}
storage: {storage}
train: {{epochs: 8}}
audit: {{shadows: 2}}
sweep:
  name: {name}
  methods:
    - name: finetune
      params: {{min_steps: 0, epochs: {epochs}}}
      space: {{lr: {{grid: [{grid}]}}}}
  search: grid
  scheduler: fifo
  max_concurrent: {concurrent}
  metrics: [accuracy, svc_mia, iam]
"""


def run_bench(trials: int = 8, rounds: int = 2, concurrent: int = 2, epochs: int = 4,
              storage: str | None = None) -> dict[str, Any]:
    from expunge.config import MethodSpec
    from expunge.resolve import load_config
    from expunge.runtime import init_ray
    from expunge.stages.fleet import run_fleet
    from expunge.experiment import Experiment
    from expunge.fleet.members import audit_shadow_config
    from expunge.stages.original import run_original
    from expunge.sweep.runner import reference_rows, run_sweep
    from expunge.sweep.trial import run_trial

    root = Path(storage or tempfile.mkdtemp(prefix="expunge-bench-sweep-"))
    lrs = [float(x) for x in np.geomspace(1e-3, 0.1, trials)]
    counter = iter(range(10_000))

    def config(name: str):
        path = root / f"{name}.yaml"
        path.write_text(sweep_yaml(str(root / "runs"), lrs, epochs, concurrent, name))
        return load_config(path)

    base = config("bench-0")
    run_original(base, use_ray=False)  # the gold standard and shadows, once, outside the timing
    Experiment(base, verbose=False).unlearn(MethodSpec(name="retrain"))
    run_fleet(audit_shadow_config(base), use_ray=False)
    metrics = list(base.sweep.metrics)
    sweep = {"objective": base.sweep.objective, "mode": base.sweep.mode, "constraints": base.sweep.constraints}

    def loop() -> float:
        ex = Experiment(base, verbose=False)
        reference, original = reference_rows(ex, metrics)
        runs = [{"experiment": base.model_dump(mode="json"), "reference": reference, "original": original}]
        for lr in lrs:
            run_trial({"lr": lr}, runs, "finetune", {"min_steps": 0, "epochs": epochs}, metrics, sweep,
                      report=lambda row: None)
        return float(trials)

    def tuned() -> float:
        res = run_sweep(config(f"bench-{next(counter) + 1}"), use_ray=True)  # a new sweep each round
        return float(len(res["table"]))

    t0 = time.perf_counter()
    init_ray()
    ray_start = time.perf_counter() - t0
    samples = interleaved([("loop", loop), ("sweep", tuned)], rounds)
    loop_rate, sweep_rate = rates(samples["loop"], 3600), rates(samples["sweep"], 3600)
    summary = ratio_summary(sweep_rate, loop_rate)
    return {"trials": trials, "rounds": rounds, "concurrent": concurrent, "epochs": epochs,
            "loop_trials_per_hour": round(float(np.median(loop_rate))), "sweep_trials_per_hour":
            round(float(np.median(sweep_rate))), "loop_rounds_s": [round(s, 2) for _, s in samples["loop"]],
            "sweep_rounds_s": [round(s, 2) for _, s in samples["sweep"]], "ray_start_s": round(ray_start, 2),
            "date": time.strftime("%Y-%m-%d"), **summary, "storage": str(root)}


@main_wrapper
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m expunge.jobs.bench_sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=8, help="trials per round, both ways")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (loop, sweep, loop, sweep, ...)")
    p.add_argument("--concurrent", type=int, default=2, help="the sweep's concurrent trials")
    p.add_argument("--epochs", type=int, default=4, help="unlearning epochs per trial")
    p.add_argument("--storage", default=None, help="where the runs go (default: a new temporary folder)")
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    for name in ("trials", "rounds", "concurrent", "epochs"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    res = run_bench(args.trials, args.rounds, args.concurrent, args.epochs, args.storage)
    print(json.dumps(res), flush=True)
    print(f"loop: {res['loop_trials_per_hour']} trials/h; sweep ({args.concurrent} concurrent): "
          f"{res['sweep_trials_per_hour']} trials/h; sweep / loop = {describe_ratio(res)}; "
          f"Ray start-up {res['ray_start_s']} s (once)", file=sys.stderr, flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2))
        print(f"written: {args.out}", file=sys.stderr, flush=True)
    print(f"runs: {res['storage']}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
