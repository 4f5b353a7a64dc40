"""One sweep trial: unlearn with one configuration and audit the result between epochs.

The trial never trains the original, the retrained model or the shadows: it reads their cached
outputs from the store (the sweep driver made them first) and audits only its own model, in
memory, with the same metric functions as the audit stage. It reports once per epoch so ASHA can stop
it early; each report is the previous epoch's audit (flushed when the next epoch ends, so the last
epoch's report can also carry the relearning attack, which runs once on the final model only).
"""
from __future__ import annotations

import json
import math
import time
from typing import Any, Callable

import numpy as np
from torch import nn

from expunge import faults
from expunge.audit.stage import audit_values, reference_inputs
from expunge.config import ExperimentConfig, MethodSpec
from expunge.experiment import Experiment
from expunge.sweep.objective import INFEASIBLE_PENALTY, Constraint, score, trial_row


#: per process, the experiments trials ran on, with their reference inputs: a Tune worker reused for
#: the next trial (``reuse_actors``) loads the data, split and reference outputs once, not per trial
_PREPARED: dict[str, tuple[str, Experiment, Callable[..., Any]]] = {}


def prepared(experiment: dict[str, Any]) -> tuple[Experiment, Callable[..., Any]]:
    """The trial's :class:`Experiment` and its reference inputs (:func:`reference_inputs`), reused
    from an earlier trial of this process while the stored original and audit shadows are the ones
    it read (their manifest hashes; a rebuilt model reloads them)."""
    from expunge.fleet.members import audit_shadow_keys

    key = json.dumps(experiment, sort_keys=True)
    ex = _PREPARED[key][1] if key in _PREPARED else Experiment(ExperimentConfig.model_validate(experiment),
                                                                 verbose=False)
    stamp = json.dumps([ex.store.get("models", k).manifest["manifest_hash"]
                        for k in ("original", *audit_shadow_keys(ex))])
    if key not in _PREPARED or _PREPARED[key][0] != stamp:
        _PREPARED.clear()  # one sweep's experiments at a time
        _PREPARED[key] = (stamp, ex, reference_inputs(ex))
    return _PREPARED[key][1], _PREPARED[key][2]


class TrialScorer:
    """Audits an in-memory model against the stored original, shadows and retrained reference."""

    def __init__(self, ex: Experiment, metrics: list[str], reference: dict[str, float], original: dict[str, float],
                 sweep: dict[str, Any], inputs_for: Callable[..., Any] | None = None) -> None:
        self.ex = ex
        self.metrics = list(metrics)
        self.reference, self.original_row = reference, original
        self.objective, self.mode = sweep["objective"], sweep["mode"]
        self.constraints = [Constraint.parse(c) for c in sweep["constraints"]]
        self.inputs_for = inputs_for or reference_inputs(ex)
        self.seconds = 0.0  # audit time, kept out of the method's RTE

    def __call__(self, model: nn.Module, final: bool = False) -> dict[str, float]:
        t0 = time.perf_counter()
        metrics = self.metrics if final else [m for m in self.metrics if m != "relearn"]  # relearn: final only
        values, _, _ = audit_values(self.ex, self.inputs_for(self.ex.outputs_of(model)), metrics, lambda: model)
        self.seconds += time.perf_counter() - t0
        return trial_row(values, self.reference, self.original_row)

    def scored(self, row: dict[str, float]) -> dict[str, Any]:
        return {**row, **score(row, self.objective, self.mode, self.constraints)}


def mean_row(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The column-wise mean of per-seed rows (NaN where a seed lacks a column)."""
    keys = dict.fromkeys(k for r in rows for k in r)
    return {k: float(np.mean([float(r.get(k, math.nan)) for r in rows])) for k in keys}


def _seeds_scored(scorer: TrialScorer, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The trial's report from one row per seed: the mean row, scored. With several seeds the
    objective is the mean over seeds of each seed's value (every gap is to that seed's own retrained
    model) and ``objective_std`` its sample std; constraints hold on the mean."""
    out = scorer.scored(mean_row(rows))
    if len(rows) > 1:
        per_seed = [scorer.scored(r)["objective"] for r in rows]
        out["objective_std"] = float(np.std(per_seed, ddof=1))
        out["seeds"] = float(len(rows))
    return out


def run_trial(params: dict[str, Any], runs: list[dict[str, Any]], method: str, fixed: dict[str, Any],
              metrics: list[str], sweep: dict[str, Any], report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Unlearn ``method`` with ``fixed | params`` on each run's stored original and return the final
    result (also reported). ``runs`` holds one ``{"experiment", "reference", "original"}`` per seed:
    the experiment config and the retrained and original rows it is scored against.

    One seed reports once per epoch. Several seeds run one after the other and the last one reports
    per epoch, each report the mean over seeds of that epoch's rows, so ASHA ranks configurations
    by their mean and can still stop one during its last seed. A diverging configuration on any seed
    is a result (infeasible), not an error."""
    spec = MethodSpec(name=method, params={**fixed, **params})
    epochs: list[list[dict[str, Any]]] = []  # per seed, its rows per epoch
    finals: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    for i, run in enumerate(runs):
        ex, inputs_for = prepared(run["experiment"])
        scorer = TrialScorer(ex, metrics, run["reference"], run["original"], sweep, inputs_for)
        rows: list[dict[str, Any]] = []
        epochs.append(rows)
        last = i == len(runs) - 1
        t0 = time.perf_counter()

        def on_epoch(rec: dict[str, Any], scorer: TrialScorer = scorer, rows: list = rows, t0: float = t0,
                     last: bool = last) -> None:
            faults.maybe_die("trial", epoch=rec["epoch"])
            rte = time.perf_counter() - t0 - scorer.seconds
            row = scorer(rec["_model"])
            rows.append({**row, "RTE_s": rte, "epoch": rec["epoch"], "final": 0.0})
            if last:
                if pending:
                    report(pending.pop())
                at = len(rows) - 1
                pending.append(_seeds_scored(scorer, [r[min(at, len(r) - 1)] for r in epochs]))

        try:
            result = ex.apply_method(spec, callback=on_epoch)
        except FloatingPointError:
            out = {"objective": math.nan, "feasible": False, "diverged": 1.0, "final": 1.0,
                   "sweep_score": 2 * INFEASIBLE_PENALTY}
            report(out)
            return out
        rte = result.seconds - scorer.seconds  # audits between epochs ran inside the method's timer
        finals.append({**scorer(result.model, final=True), "RTE_s": rte, "final": 1.0, "diverged": 0.0,
                       "epoch": rows[-1]["epoch"] if rows else 1})
    final = _seeds_scored(scorer, finals)
    report(final)
    return final
