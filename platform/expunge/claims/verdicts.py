"""The claims table's rows and the rules that turn per-seed numbers into a verdict.

A row states a claim of one of the seed papers, the paper's number where it gives one, our mean ±
sample std over seeds, the comparison the verdict applies, and the verdict: ``reproduced``, ``not
reproduced`` or ``not testable here`` (with why). The rules are fixed before any number is seen and
are the same for every claim of a kind:

* *A beats B* (:func:`beats`): A is better than B on **every** seed (paired, the same split and
  initialisation). With 3 seeds a chance ordering passes with probability 1/8, so the row also gives
  the mean paired difference with its bootstrap interval (:func:`expunge.audit.across_seeds.paired_comparison`);
* *X is near v* (:func:`near`): |mean − v| <= tolerance;
* *X is above Y by at least d* (:func:`above_by`): mean(X − Y) >= d, paired over seeds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_TESTABLE = "not testable here"


@dataclass(frozen=True)
class ClaimRow:
    """One row of the claims table."""

    claim: str       # the letter and short name, e.g. "(b) IAM vs RMIA, 1 shadow"
    statement: str   # what the paper says
    paper: str       # the paper's number, or "" where it gives none
    ours: str        # our measurement, mean ± std over seeds
    comparison: str  # the rule the verdict applies, with its numbers
    verdict: str
    protocol: str    # the protocol (config + methods) the numbers come from
    seeds: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def mean_std(values: np.ndarray | list[float], digits: int = 3) -> str:
    """``"m ± s"`` over seeds (sample std, ddof 1); ``"m"`` for one value, ``"n/a"`` for none."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return "n/a"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def beats(a: np.ndarray, b: np.ndarray, higher_is_better: bool = True) -> tuple[bool, int, int]:
    """Whether ``a`` is better than ``b`` on every seed; also (wins, n) over the seeds both have.

    >>> beats(np.array([0.9, 0.8, 0.7]), np.array([0.5, 0.6, 0.65]))
    (True, 3, 3)
    >>> beats(np.array([0.9, 0.5]), np.array([0.5, 0.6]))
    (False, 1, 2)
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = ~(np.isnan(a) | np.isnan(b))
    d = (a - b)[ok] if higher_is_better else (b - a)[ok]
    wins = int((d > 0).sum())
    return (len(d) > 0 and wins == len(d)), wins, int(len(d))


def near(values: np.ndarray, target: float, tolerance: float) -> bool:
    """|mean(values) - target| <= tolerance (NaNs ignored; False without values)."""
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    return bool(len(v)) and abs(float(v.mean()) - target) <= tolerance


def above_by(a: np.ndarray, b: np.ndarray, margin: float) -> bool:
    """mean(a - b) >= margin, paired over seeds (False without a common seed)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    d = d[~np.isnan(d)]
    return bool(len(d)) and float(d.mean()) >= margin


def verdict(ok: bool) -> str:
    return REPRODUCED if ok else NOT_REPRODUCED
