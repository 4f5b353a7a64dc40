"""The IAM paper's Table 8 verdict in the audit leaderboard: retained / forgotten IAM score means read
against retrain's, over- and under-unlearning flags, and the report's table of them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from expunge.audit.leaderboard import VERDICT_MARGIN, VERDICTS, add_gaps, add_verdict
from expunge.report.blocks import Paragraph, Table

# retrain: retained .80, forgotten .05; margin 0.1 -> over-unlearning below .70, under-unlearning above .15
ROWS = [  # method, retained mean, forgotten mean, expected verdict
    ("original", 0.82, 0.81, VERDICTS["under"]),       # nothing forgotten
    ("retrain", 0.80, 0.05, VERDICTS["reference"]),
    ("close", 0.75, 0.12, VERDICTS["ok"]),             # within the margin on both means
    ("at_margin", 0.70, 0.15, VERDICTS["ok"]),         # exactly the margin is not "more than" it
    ("better", 0.95, 0.00, VERDICTS["ok"]),            # the harmless directions are never flagged
    ("damaging", 0.55, 0.04, VERDICTS["over"]),        # retained samples scored as unlearned
    ("hiding", 0.79, 0.40, VERDICTS["under"]),         # forgotten samples still scored as members
    ("both", 0.50, 0.60, VERDICTS["both"]),
    ("no_iam", np.nan, 0.05, VERDICTS["unknown"]),
]


def _table() -> pd.DataFrame:
    return pd.DataFrame({"model": [r[0] for r in ROWS], "method": [r[0] for r in ROWS],
                         "UA": np.linspace(0, 10, len(ROWS)),
                         "iam_retained_mean": [r[1] for r in ROWS], "iam_forgotten_mean": [r[2] for r in ROWS]})


def _reference(table: pd.DataFrame) -> dict[str, float]:
    ref = table[table["method"] == "retrain"].iloc[0]
    return {c: ref[c] for c in table.columns if c not in ("model", "method")}


def test_each_verdict_case_of_a_hand_built_table():
    table = _table()
    out = add_gaps(table, _reference(table))  # the verdict is computed with the gaps, in one place
    assert out["verdict"].tolist() == [r[3] for r in ROWS]
    assert out["iam_over_unlearning"].tolist() == [r[3] in (VERDICTS["over"], VERDICTS["both"]) for r in ROWS]
    assert out["iam_under_unlearning"].tolist() == [r[3] in (VERDICTS["under"], VERDICTS["both"]) for r in ROWS]
    assert (out["verdict_margin"] == VERDICT_MARGIN).all()
    np.testing.assert_allclose(out["gap_iam_forgotten_mean"], (table["iam_forgotten_mean"] - 0.05).abs())


def test_verdict_margin_is_a_parameter_and_needs_both_means():
    table = _table()
    wide = add_verdict(table, _reference(table), margin=0.3)
    assert wide.set_index("method").loc["damaging", "verdict"] == VERDICTS["ok"]  # .55 is .25 below .80
    assert wide.set_index("method").loc["both", "verdict"] == VERDICTS["under"]  # .30 below (= margin), .55 above
    # no IAM means in the audit, or none in the reference: no verdict columns
    bare = table.drop(columns=["iam_retained_mean"])
    assert "verdict" not in add_verdict(bare, _reference(table)).columns
    assert "verdict" not in add_verdict(table, {"UA": 0.0}).columns


AUDIT = ["data.dataset=synthetic", "data.options={n: 600, num_classes: 10, shape: [1, 8, 8], noise: 0.6}",
         "train.augment=false", "train.epochs=3", "audit.shadows=1", "unlearn.min_steps=0",
         "unlearn.methods=[retrain,{name: finetune, params: {epochs: 1}}]", "audit.metrics=[accuracy,iam]",
         "audit.params={iam: {n_levels: 10}}"]


@pytest.fixture(scope="module")
def verdict_run(tmp_path_factory, repo_root):
    from expunge.resolve import load_config
    from expunge.stages.pipeline import run_pipeline

    tmp = tmp_path_factory.mktemp("verdict")
    cfg = load_config(repo_root / "configs/experiments/digits.yaml", [f"storage={tmp}", *AUDIT])
    run_pipeline(cfg, use_ray=False, print_table=False)
    return str(tmp / "digits")


def test_audit_run_writes_the_verdict_columns(verdict_run):
    from expunge.store import Store

    art = Store(verdict_run).get("audit", "results", verify=True)
    for board in (art.read("leaderboard.parquet"), art.read("leaderboard.csv")):
        cols = {"iam_retained_mean", "iam_forgotten_mean", "iam_over_unlearning", "iam_under_unlearning",
                "verdict", "verdict_margin"}
        assert cols <= set(board.columns)
        rows = board.set_index("method")
        assert rows.loc["retrain", "verdict"] == VERDICTS["reference"]
        assert set(board["verdict"]) <= set(VERDICTS.values())
        for method in ("original", "finetune"):
            r, f = rows.loc[method, "iam_retained_mean"], rows.loc[method, "iam_forgotten_mean"]
            assert 0 <= r <= 1 and 0 <= f <= 1
            # the flags follow the stored means (rounded to 3 decimals) and the stated margin
            ref_r, ref_f = rows.loc["retrain", "iam_retained_mean"], rows.loc["retrain", "iam_forgotten_mean"]
            if abs(abs(r - ref_r) - VERDICT_MARGIN) > 2e-3:
                assert bool(rows.loc[method, "iam_over_unlearning"]) == (r < ref_r - VERDICT_MARGIN)
            if abs(abs(f - ref_f) - VERDICT_MARGIN) > 2e-3:
                assert bool(rows.loc[method, "iam_under_unlearning"]) == (f > ref_f + VERDICT_MARGIN)
    rows = art.read("summary.json")["rows"]
    assert all("verdict" in row for row in rows)


def test_report_leaderboard_explains_and_shows_the_verdict(verdict_run):
    from expunge.report.collect import load_run
    from expunge.report.sections import leaderboard_section

    section = leaderboard_section(load_run(verdict_run))
    table = next(b for b in section.blocks if isinstance(b, Table) and "verdict" in b.frame)
    assert list(table.frame.columns) == ["method", "iam_retained_mean", "iam_forgotten_mean", "verdict"]
    assert table.frame["method"].tolist()[:2] == ["original", "retrain"]
    text = " ".join(b.text for b in section.blocks if isinstance(b, Paragraph))
    assert "over-unlearning" in text and "under-unlearning" in text and f"more than {VERDICT_MARGIN:g}" in text


def test_report_leaderboard_without_a_verdict_has_no_verdict_table(tmp_path):
    from expunge.report.collect import load_run
    from expunge.report.sections import leaderboard_section
    from expunge.store import Store

    board = pd.DataFrame({"model": ["original", "m1"], "method": ["original", "m1"], "UA": [0.0, 5.0]})
    Store(str(tmp_path / "r")).put("audit", "results", {"leaderboard.parquet": board},
                                   config={"models": ["original", "m1"], "audit": {"metrics": ["accuracy"]}})
    section = leaderboard_section(load_run(str(tmp_path / "r")))
    assert not any(isinstance(b, Table) and "verdict" in b.frame for b in section.blocks)
