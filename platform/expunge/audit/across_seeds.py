"""Repeated trials: one leaderboard per seed, summarised as mean ± std and compared in pairs.

A seed fixes the split and every initialisation (``seeds: [0, 1, 2]``, see
:meth:`expunge.config.ExperimentConfig.per_seed_configs`), so seeds are independent repetitions of
the whole experiment. Two pure functions over the per-seed leaderboards:

* :func:`seed_summary`: per model and column, the mean, the sample standard deviation (ddof = 1) and
  the number of seeds that have the value;
* :func:`paired_comparison`: for two models and a column, the per-seed differences
  d_s = m_a(s) − m_b(s) on the seeds both have, the number of seeds on which ``a`` is better (lower
  for ``mode="min"``, higher for ``"max"``; ties count for neither), the mean difference and a paired
  bootstrap 95% percentile interval of the mean difference (the seeds are resampled with
  replacement, ``scipy.stats.bootstrap``). With 3 seeds the interval is coarse: it can only take
  means of 3 of the observed differences, so read it with the wins count, not as a test.
"""
from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

KEY = "model"
LABEL = "method"


def _stacked(tables: dict[int, pd.DataFrame]) -> pd.DataFrame:
    if not tables:
        raise ValueError("no per-seed tables to summarise")
    return pd.concat([t.assign(seed=s) for s, t in tables.items()], ignore_index=True)


def seed_summary(tables: dict[int, pd.DataFrame], columns: list[str] | None = None) -> pd.DataFrame:
    """Mean, std (ddof 1; NaN with one seed) and n per model for every numeric column.

    Returns one row per model (first-seen order) with ``<col>_mean``, ``<col>_std`` and ``<col>_n``.

    >>> t0 = pd.DataFrame({"model": ["a"], "method": ["a"], "UA": [1.0]})
    >>> t1 = pd.DataFrame({"model": ["a"], "method": ["a"], "UA": [3.0]})
    >>> seed_summary({0: t0, 1: t1})[["UA_mean", "UA_std", "UA_n"]].to_dict("records")
    [{'UA_mean': 2.0, 'UA_std': 1.4142135623730951, 'UA_n': 2}]
    """
    df = _stacked(tables)
    numeric = [c for c in df.columns if c not in (KEY, LABEL, "seed") and pd.api.types.is_numeric_dtype(df[c])]
    cols = [c for c in (columns or numeric) if c in numeric]
    order = list(dict.fromkeys(df[KEY]))
    grouped = df.groupby(KEY, sort=False)
    out = pd.DataFrame({KEY: order})
    out[LABEL] = grouped[LABEL].first().reindex(order).to_numpy()
    parts = [out]
    for c in cols:
        g = grouped[c]
        parts.append(pd.DataFrame({f"{c}_mean": g.mean().reindex(order).to_numpy(),
                                   f"{c}_std": g.std(ddof=1).reindex(order).to_numpy(),
                                   f"{c}_n": g.count().reindex(order).to_numpy()}))
    return pd.concat(parts, axis=1)


def _bootstrap_ci(d: np.ndarray, seed: int, n_resamples: int) -> tuple[float, float]:
    if len(d) < 2 or np.all(d == d[0]):
        return float(np.mean(d)), float(np.mean(d))  # no spread to resample
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about few distinct resamples with 3 seeds
        res = stats.bootstrap((d,), np.mean, method="percentile", n_resamples=n_resamples,
                              random_state=np.random.default_rng(seed), vectorized=True)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_comparison(tables: dict[int, pd.DataFrame], column: str, mode: str = "min",
                      models: list[str] | None = None, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Every pair of models (``a`` before ``b`` in the order given) on ``column`` across seeds.

    Columns: ``a``, ``b`` (model keys), ``method_a``, ``method_b``, ``column``, ``n`` (seeds both have),
    ``wins_a`` (seeds where a is better), ``mean_diff`` (mean of a − b), ``ci_low``/``ci_high`` (paired
    bootstrap 95% interval of the mean difference).

    >>> t = {s: pd.DataFrame({"model": ["a", "b"], "method": ["a", "b"], "gap": [s, s + 1.0]}) for s in range(3)}
    >>> paired_comparison(t, "gap")[["wins_a", "n", "mean_diff", "ci_low", "ci_high"]].to_dict("records")
    [{'wins_a': 3, 'n': 3, 'mean_diff': -1.0, 'ci_low': -1.0, 'ci_high': -1.0}]
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be min or max, got {mode!r}")
    df = _stacked(tables)
    if column not in df.columns:
        raise ValueError(f"column {column!r} is not in the leaderboards")
    wide = df.pivot_table(index="seed", columns=KEY, values=column, aggfunc="first")
    labels = df.groupby(KEY, sort=False)[LABEL].first()
    order = [m for m in (models or list(dict.fromkeys(df[KEY]))) if m in wide.columns]
    rows = []
    for a, b in combinations(order, 2):
        both = wide[[a, b]].dropna()
        d = (both[a] - both[b]).to_numpy(dtype=float)
        better = d < 0 if mode == "min" else d > 0
        low, high = _bootstrap_ci(d, seed, n_resamples) if len(d) else (np.nan, np.nan)
        rows.append({"a": a, "b": b, "method_a": labels[a], "method_b": labels[b], "column": column,
                     "n": len(d), "wins_a": int(better.sum()), "mean_diff": float(d.mean()) if len(d) else np.nan,
                     "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["a", "b", "method_a", "method_b", "column", "n", "wins_a", "mean_diff",
                                       "ci_low", "ci_high"])


def format_mean_std(summary: pd.DataFrame, columns: list[str], digits: int = 2) -> pd.DataFrame:
    """A display table: ``method`` and one ``mean ± std`` string per column (``n/a`` where absent)."""
    out = pd.DataFrame({LABEL: summary[LABEL]})
    for c in columns:
        if f"{c}_mean" not in summary.columns:
            continue
        mean, std = summary[f"{c}_mean"], summary[f"{c}_std"]
        out[c] = [("n/a" if pd.isna(m) else f"{m:.{digits}f}" if pd.isna(s) else f"{m:.{digits}f} ± {s:.{digits}f}")
                  for m, s in zip(mean, std)]
    return out
