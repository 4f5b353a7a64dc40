"""How a sweep scores a trial: pure functions on one row of metrics (leaderboard units).

A trial's row holds every audit metric of its model (accuracies and MIA-efficacy in percent, as in
the leaderboard), ``gap_<m>`` = |m - m_retrain| for every metric of the retrained reference,
``avg_gap`` = the mean gap over UA, RA, TA and MIA-efficacy (SalUn's Avg. Gap, Fan et al. 2024),
``<m>_drop`` = m_original - m for accuracies and MIA-efficacy (so "TA_drop <= 2" reads as "lose at most 2 points of test accuracy"),
and ``RTE_s``, the unlearning wall-clock time.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from expunge.audit.leaderboard import gaps, is_percent
from expunge.config.constraint import Constraint, column_value
from expunge.errors import ConfigError

#: added to an infeasible trial's score, so schedulers and searchers rank it below every feasible one
INFEASIBLE_PENALTY = 1e6


def trial_row(values: Mapping[str, float], reference: Mapping[str, float],
              original: Mapping[str, float]) -> dict[str, float]:
    """One trial's row from its raw metric values (fractions, as the metrics return them), the
    retrained model's row and the original's row (both already in leaderboard units)."""
    row = {k: (100 * float(v) if is_percent(k) else float(v)) for k, v in values.items()}
    gap_cols = gaps(row, reference, skip=("RTE_s",))
    drops = {f"{k}_drop": original[k] - row[k] for k in original if k in row and is_percent(k)}
    return {**row, **gap_cols, **drops}


def objective_value(row: Mapping[str, float], objective: str | Mapping[str, float]) -> float:
    """The named column, or the weighted sum ``sum_c w_c * row[c]`` of a ``{column: weight}`` objective."""
    if isinstance(objective, str):
        return column_value(row, objective)
    return float(sum(w * column_value(row, c) for c, w in objective.items()))


def score(row: Mapping[str, float], objective: str | Mapping[str, float], mode: str,
          constraints: list[Constraint]) -> dict[str, Any]:
    """``objective``, ``feasible`` and ``sweep_score`` (minimised by the scheduler): the objective,
    negated for ``mode: max``, plus :data:`INFEASIBLE_PENALTY` when a constraint breaks or it is NaN."""
    value = objective_value(row, objective)
    feasible = all(c.holds(row) for c in constraints) and math.isfinite(value)
    signed = value if mode == "min" else -value
    return {"objective": value, "feasible": feasible,
            "sweep_score": (signed if math.isfinite(signed) else 0.0) + (0.0 if feasible else INFEASIBLE_PENALTY)}


def check_columns(columns: set[str], objective: str | Mapping[str, float], constraints: list[Constraint],
                  pareto: Mapping[str, str]) -> None:
    """Refuse (before any trial) an objective, constraint or Pareto column no trial row will have."""
    names = [objective] if isinstance(objective, str) else list(objective)
    names += [c.column for c in constraints] + list(pareto)
    for name in names:
        if name not in columns:
            raise ConfigError(f"sweep: unknown column {name!r} in the objective, constraints or pareto "
                              f"(known: {', '.join(sorted(columns))})")


def pareto_front(table: pd.DataFrame, directions: Mapping[str, str]) -> np.ndarray:
    """Boolean mask of the rows no other row dominates (at least as good in every column, strictly
    better in one); rows with a NaN in a Pareto column are never on the front."""
    cols = list(directions)
    values = table[cols].to_numpy(dtype=float) * np.array([1.0 if directions[c] == "min" else -1.0 for c in cols])
    valid = np.isfinite(values).all(axis=1)
    on_front = valid.copy()
    for i in np.flatnonzero(valid):
        others = values[valid]
        dominated = (others <= values[i]).all(axis=1) & (others < values[i]).any(axis=1)
        on_front[i] = not dominated.any()
    return on_front
