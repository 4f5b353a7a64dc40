"""The report's leaderboard: which columns it shows and which cell is best in each.

Columns are the audit leaderboard's (``expunge.audit.stage``): metric values, ``gap_<m>`` =
|m - m_retrain| and ``avg_gap``. "Best" depends on the column, and the report states the rule:

* ``gap_*`` and ``avg_gap``: the smallest gap to retrain;
* ``RTE_s`` (unlearning wall time): the smallest;
* metric values are not marked (their ``gap_*`` column says which is closest to retrain).

Only unlearning methods compete: the original (nothing unlearned) and retrain (the reference, gap 0
by definition) are never marked.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: the headline tables (when their columns are present), each metric followed by its gap to retrain
HEADLINE = {
    "Utility, forgetting, MIA-efficacy and cost": ("UA", "RA", "TA", "MIA_efficacy", "CR_forget", "avg_gap",
                                                   "RTE_s"),
    "Membership attacks (BinUI AUC) and relearning": ("lira_binui_auc", "rmia_binui_auc", "iam_binui_auc",
                                                      "rcd_steps", "relearn_acc@1", "relearn_acc@5", "relearn_acc@10"),
}
#: never marked best: the starting point and the reference
NOT_COMPETING = ("original", "retrain")

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


def best_marks(table: pd.DataFrame, columns: list[str] | None = None) -> dict[str, frozenset[int]]:
    """Row positions of the best competing method in every markable column (ties all marked)."""
    competing = ~table["method"].isin(NOT_COMPETING).to_numpy()
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
