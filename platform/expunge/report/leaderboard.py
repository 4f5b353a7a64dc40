"""The report's leaderboard: which columns it shows and which cell is best in each.

Columns are the audit leaderboard's (``expunge.audit.leaderboard``): metric values, ``gap_<m>`` =
|m - m_retrain| and ``avg_gap``. "Best" depends on the column, and the report states the rule:

* ``gap_*`` and ``avg_gap``: the smallest gap to retrain;
* ``RTE_s`` (unlearning wall time): the smallest;
* metric values are not marked (their ``gap_*`` column says which is closest to retrain).

Only unlearning methods compete: the original (nothing unlearned) and retrain (the reference, gap 0
by definition) are never marked, and neither is a method whose UA, RA, TA and MIA-efficacy all equal
the original's: it left the model as it was, so a small gap or run time is no achievement.

Each ``<attack>_binui_auc`` is shown with its class-balanced bootstrap 95% interval
(``_ci_low`` / ``_ci_high`` columns of the audit) in one cell, ``0.612 [0.550, 0.670]``.

The IAM paper's Table 8 verdict (``expunge.audit.leaderboard.add_verdict``) has a table of its own: the
mean IAM score of retained and of forgotten samples and the verdict against retrain's means, with
the margin the audit used (its ``verdict_margin`` column).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from expunge.audit.leaderboard import GAP_METRICS, VERDICT_MEANS

#: the headline tables (when their columns are present), each metric followed by its gap to retrain
HEADLINE = {
    "Utility, forgetting, MIA-efficacy and cost": ("UA", "RA", "TA", "MIA_efficacy", "CR_forget", "avg_gap",
                                                   "RTE_s"),
    "Membership attacks (BinUI AUC) and relearning": ("lira_binui_auc", "rmia_binui_auc", "iam_binui_auc",
                                                      "rcd_steps", "relearn_acc@1", "relearn_acc@5", "relearn_acc@10"),
}
#: never marked best: the starting point and the reference
NOT_COMPETING = ("original", "retrain")
#: a method whose values of these all equal the original's did not change the model (the Avg. Gap metrics)
CHANGE_METRICS = GAP_METRICS
#: the columns printed to the terminal by ``expunge run`` and ``expunge demo`` (the saved table has them all).
#: ``<attack>_forget_vs_heldout_auc`` = AUC of the attack separating forget samples from held-out samples
#: drawn like the forget set (``expunge.metrics.audit_metrics``): near 0.5 when the forget set looks unseen
SHOWN = ("forget", "method", "UA", "RA", "TA", "MIA_efficacy", "CR_forget", "MIACR", "lira_binui_auc",
         "rmia_binui_auc", "iam_binui_auc", "lira_forget_vs_heldout_auc", "rmia_forget_vs_heldout_auc",
         "iam_forget_vs_heldout_auc", "rcd_steps", "relearn_acc@10", "avg_gap", "RTE_s")

#: the Table 8 verdict table: the audit's IAM means and its verdict (``expunge.audit.leaderboard.add_verdict``)
VERDICT_COLUMNS = (*VERDICT_MEANS, "verdict")

BEST_RULES = {
    "gap_*": "smallest gap to retrain, |value - value of retrain| (closest to the gold standard)",
    "avg_gap": "smallest mean gap over UA, RA, TA and MIA_efficacy (SalUn's Avg. Gap)",
    "RTE_s": "fastest unlearning (wall-clock seconds of the method's run)",
}


def headline_columns(table: pd.DataFrame, metrics: tuple[str, ...]) -> list[str]:
    """method, then each of ``metrics`` present in ``table``, followed by its gap when there is one."""
    cols = ["method"]
    for c in metrics:
        if c in table:
            cols += [c] + ([f"gap_{c}"] if f"gap_{c}" in table else [])
    return cols


def _rule(column: str) -> str | None:
    if column.startswith("gap_"):
        return "gap_*"
    return column if column in BEST_RULES else None


def shown_columns(table: pd.DataFrame) -> list[str]:
    """The :data:`SHOWN` columns ``table`` has, in that order."""
    return [c for c in SHOWN if c in table.columns]


def print_shown(table: pd.DataFrame, full_table: str) -> None:
    """Print the terminal's selection of ``table`` and say where the table with every column is."""
    import sys

    print("\n" + table[shown_columns(table)].to_string(index=False), flush=True)
    print(f"(the printed columns are a selection; every column: {full_table})", file=sys.stderr, flush=True)


def unchanged(table: pd.DataFrame) -> np.ndarray:
    """Rows whose UA, RA, TA and MIA-efficacy (those present) all equal the original row's: methods
    that left the model as it was. All False when the table has no original row or none of them."""
    cols = [c for c in CHANGE_METRICS if c in table]
    is_original = (table["method"] == "original").to_numpy()
    if not cols or not is_original.any():
        return np.zeros(len(table), bool)
    values = table[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    same = np.isclose(values, values[np.flatnonzero(is_original)[0]], rtol=0, atol=1e-9).all(axis=1)
    return same & ~is_original


def best_marks(table: pd.DataFrame, columns: list[str] | None = None) -> dict[str, frozenset[int]]:
    """Row positions of the best competing method in every markable column of ``columns`` (default:
    all; ties all marked). Neither the original, retrain nor an unchanged method (:func:`unchanged`)
    competes; ``table`` must hold the metric columns for that check even when ``columns`` omits them."""
    competing = ~table["method"].isin(NOT_COMPETING).to_numpy() & ~unchanged(table)
    marks: dict[str, frozenset[int]] = {}
    for col in columns if columns is not None else list(table.columns):
        if _rule(col) is None or col not in table:
            continue
        values = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
        ok = competing & np.isfinite(values)
        if not ok.any():
            continue
        best = values[ok].min()
        marks[col] = frozenset(int(i) for i in np.flatnonzero(ok & np.isclose(values, best, rtol=0, atol=1e-9)))
    return marks


def ordered(table: pd.DataFrame) -> pd.DataFrame:
    """Original first, retrain second, then the methods in the audit's order."""
    rank = table["method"].map({"original": 0, "retrain": 1}).fillna(2)
    return table.assign(_rank=rank).sort_values("_rank", kind="stable").drop(columns="_rank").reset_index(drop=True)


def with_intervals(frame: pd.DataFrame, source: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each ``<attack>_binui_auc`` column whose interval ``source`` holds (same rows) as
    text ``"AUC [low, high]"``, the class-balanced bootstrap 95% interval of the audit; an AUC
    without a finite interval stays as its number alone, a missing AUC is empty."""
    out = frame.copy()
    for col in [c for c in frame.columns if c.endswith("_binui_auc")]:
        lo, hi = f"{col}_ci_low", f"{col}_ci_high"
        if lo not in source or hi not in source:
            continue
        cells = []
        for v, a, b in zip(*(pd.to_numeric(source[c], errors="coerce").to_numpy(float) for c in (col, lo, hi))):
            if not np.isfinite(v):
                cells.append("")
            elif np.isfinite(a) and np.isfinite(b):
                cells.append(f"{v:.3f} [{a:.3f}, {b:.3f}]")
            else:
                cells.append(f"{v:.3f}")
        out[col] = cells
    return out


def verdict_table(table: pd.DataFrame) -> pd.DataFrame | None:
    """``method`` and the :data:`VERDICT_COLUMNS` of ``table`` (rows as given), or None when the audit
    wrote no verdict (no IAM, or no retrain row to compare with)."""
    if "verdict" not in table:
        return None
    return table[["method", *[c for c in VERDICT_COLUMNS if c in table]]]


def verdict_margin(table: pd.DataFrame) -> float | None:
    """The margin the audit's verdict used (its ``verdict_margin`` column), None when absent."""
    if "verdict_margin" not in table:
        return None
    values = pd.to_numeric(table["verdict_margin"], errors="coerce").dropna()
    return float(values.iloc[0]) if len(values) else None
