"""The leaderboard's arithmetic, in one place: units (percent), gaps to retrain, Avg. Gap, and the
IAM paper's Table 8 over- / under-unlearning verdict. Pure pandas / NumPy: the audit stage, the
sweep's trial rows and the report all use these.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

GAP_METRICS = ("UA", "RA", "TA", "MIA_efficacy")
PERCENT = {"UA", "RA", "TA", "forget_class_TA"}
#: Table 8's means of the IAM-On membership score (``expunge.metrics.audit_metrics.iam``)
VERDICT_MEANS = ("iam_retained_mean", "iam_forgotten_mean")
#: how far (on IAM's [0, 1] score) a method's mean may stray from retrain's, in the harmful direction,
#: before the verdict flags it. Table 8 of the IAM paper (Wang et al., USENIX Security 2025, as its
#: reference code's notebook rebuilds it from the logs) gives means and no threshold. Its contrasts
#: are a few hundredths where a method matches retrain (retained .63 vs retrain's .62, .79 vs .81)
#: and a tenth or more where it does not (forgotten .32 vs .01, retained .35 vs .62), so a tenth of
#: the score's range separates the two. It is also far above the sampling noise of a mean: per-sample
#: stds there are 0.1-0.3, so over a few hundred samples a mean's standard error is about 0.01-0.02.
VERDICT_MARGIN = 0.1
#: float slack of the verdict's comparisons, so a difference equal to the margin is not "more than" it
_ROUNDING = 1e-9
#: the verdict's values, one per row
VERDICTS = {"reference": "reference", "ok": "as retrain", "over": "over-unlearning", "under": "under-unlearning",
            "both": "over- and under-unlearning", "unknown": "unknown"}


def is_percent(column: str) -> bool:
    """Accuracies (the relearning attack's ``relearn_acc@k`` included) and MIA-efficacy are reported
    as percentages, as the unlearning literature does, so every accuracy column has one unit."""
    return column in PERCENT or column.startswith(("MIA_efficacy", "relearn_acc@"))


def to_percent(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    for col in [c for c in table.columns if is_percent(c)]:
        table[col] = 100 * table[col]
    return table


def gaps(row: Mapping[str, float], reference: Mapping[str, float], skip: tuple[str, ...] = ()) -> dict[str, float]:
    """``gap_<m>`` = |m - m_retrain| for every metric ``m`` of ``reference`` that ``row`` has (except
    ``skip``), and ``avg_gap`` = the mean gap over UA, RA, TA and MIA-efficacy, SalUn's Avg. Gap
    (Fan et al. 2024); a missing (NaN) gap makes ``avg_gap`` NaN rather than a mean of fewer terms.
    The audit's leaderboard (:func:`add_gaps`) and every sweep trial's row use this one function."""
    out = {f"gap_{k}": abs(float(row[k]) - float(reference[k])) for k in reference if k in row and k not in skip}
    avg = [out[f"gap_{k}"] for k in GAP_METRICS if f"gap_{k}" in out]
    if avg:
        out["avg_gap"] = float(np.mean(avg))
    return out


def add_gaps(table: pd.DataFrame, reference: dict[str, float]) -> pd.DataFrame:
    """:func:`gaps` for every row, then the over- / under-unlearning verdict against the same
    reference (:func:`add_verdict`)."""
    rows = [gaps(r, reference) for r in table.to_dict("records")]
    table = pd.concat([table, pd.DataFrame(rows, index=table.index)], axis=1)
    return add_verdict(table, reference)


def add_verdict(table: pd.DataFrame, reference: dict[str, float], margin: float = VERDICT_MARGIN) -> pd.DataFrame:
    """The IAM paper's Table 8 verdict (Wang et al., USENIX Security 2025): each model's mean IAM-On
    membership score S ∈ [0, 1] over retained samples (``iam_retained_mean``, R) and over forgotten
    samples (``iam_forgotten_mean``, F), read against retrain's (R*, F*):

    * ``iam_over_unlearning`` = R < R* − margin: retained samples scored as unlearned, i.e. the method
      removed more than the forget set (collateral damage);
    * ``iam_under_unlearning`` = F > F* + margin: forgotten samples still scored as members;
    * ``verdict``: "as retrain", "over-unlearning", "under-unlearning", "over- and under-unlearning";
      "reference" on retrain's row, "unknown" where a mean is missing;
    * ``verdict_margin`` = ``margin`` (:data:`VERDICT_MARGIN`, the reason is stated there).

    Only the harmful direction of each mean is flagged: retained samples scored *more* member-like
    than under retrain, or forgotten ones *less*, is no failure to unlearn. The table is returned
    unchanged when it or the reference lacks either mean (no IAM in the audit)."""
    if any(c not in table.columns or c not in reference for c in VERDICT_MEANS):
        return table
    ref_r, ref_f = (float(reference[c]) for c in VERDICT_MEANS)
    r = pd.to_numeric(table["iam_retained_mean"], errors="coerce").to_numpy(dtype=float)
    f = pd.to_numeric(table["iam_forgotten_mean"], errors="coerce").to_numpy(dtype=float)
    # "more than the margin", with float rounding forgiven: a difference that prints as exactly the
    # margin (e.g. 0.7 against 0.8, which is -0.10000000000000009 in floats) is not flagged
    over, under = r - ref_r < -margin - _ROUNDING, f - ref_f > margin + _ROUNDING
    known = np.isfinite(r) & np.isfinite(f) & np.isfinite(ref_r) & np.isfinite(ref_f)
    verdict = np.select([~known, over & under, over, under],
                        [VERDICTS["unknown"], VERDICTS["both"], VERDICTS["over"], VERDICTS["under"]],
                        VERDICTS["ok"]).astype(object)
    verdict[(table["method"] == "retrain").to_numpy()] = VERDICTS["reference"]
    return table.assign(iam_over_unlearning=over & known, iam_under_unlearning=under & known, verdict=verdict,
                        verdict_margin=float(margin))
