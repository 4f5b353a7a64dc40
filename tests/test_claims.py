"""expunge reproduce: verdict rules, claim rows on hand-made leaderboards, and the job end to end."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from expunge.claims import NOT_REPRODUCED, NOT_TESTABLE, PROTOCOLS, REPRODUCED
from expunge.claims import rows as R
from expunge.claims.verdicts import above_by, beats, mean_std, near


def board(rows: dict[str, dict[str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "method": m, **v} for m, v in rows.items()])


def test_verdict_rules():
    assert beats([0.9, 0.8, 0.7], [0.5, 0.6, 0.65]) == (True, 3, 3)
    assert beats([0.9, 0.8, 0.6], [0.5, 0.6, 0.65]) == (False, 2, 3)  # one seed lost: not "every seed"
    assert beats([1.0, 2.0], [2.0, 3.0], higher_is_better=False) == (True, 2, 2)
    assert beats([np.nan, 1.0], [0.0, 0.0]) == (True, 1, 1)
    assert near([0.45, 0.55, 0.58], 0.5, 0.1) and not near([0.65, 0.7], 0.5, 0.1)
    assert above_by([0.9, 0.8], [0.5, 0.6], 0.15) and not above_by([0.6, 0.6], [0.5, 0.5], 0.15)
    assert mean_std([1.0, 3.0]) == "2.000 ± 1.414" and mean_std([np.nan]) == "n/a"


def test_chance_rows_reproduced_only_when_all_three_conditions_hold():
    def t(retrain_fvh: float, original_fvh: float, retrain_binui: float = 0.95, original_binui: float = 0.3):
        cols = lambda fvh, b: {f"{a}_forget_vs_heldout_auc": fvh for a in R.ATTACKS} | {f"{a}_binui_auc": b for a in R.ATTACKS}
        return board({"original": cols(original_fvh, original_binui), "retrain": cols(retrain_fvh, retrain_binui)})

    good = {"mislabeled": {s: t(0.5 + 0.02 * s, 0.95) for s in range(3)}}
    assert {r.verdict for r in R.chance_rows(good)} == {REPRODUCED}
    assert len(R.chance_rows(good)) == 3  # one row per attack
    off_chance = {"mislabeled": {s: t(0.7, 0.95) for s in range(3)}}
    assert {r.verdict for r in R.chance_rows(off_chance)} == {NOT_REPRODUCED}
    no_gap = {"mislabeled": {s: t(0.5, 0.55) for s in range(3)}}  # the well-generalising case
    assert {r.verdict for r in R.chance_rows(no_gap)} == {NOT_REPRODUCED}
    binui_flat = {"mislabeled": {s: t(0.5, 0.95, 0.5, 0.45) for s in range(3)}}
    assert {r.verdict for r in R.chance_rows(binui_flat)} == {NOT_REPRODUCED}


def test_one_shadow_rows_need_iam_ahead_on_every_seed():
    def t(iam, rmia, lira):
        return board({"retrain": {"iam_binui_auc": iam, "rmia_binui_auc": rmia, "lira_binui_auc": lira}})

    tables = {"one_shadow": {0: t(0.7, 0.6, 0.69), 1: t(0.7, 0.6, 0.71), 2: t(0.7, 0.6, 0.6)}}
    rows = {r.claim: r for r in R.one_shadow_rows(tables)}
    assert rows["(b) IAM vs RMIA, 1 shadow"].verdict == REPRODUCED
    assert rows["(b) IAM vs LiRA, 1 shadow"].verdict == NOT_REPRODUCED
    assert "2/3" in rows["(b) IAM vs LiRA, 1 shadow"].ours and "90.87" in rows["(b) IAM vs LiRA, 1 shadow"].paper


def test_cpu_rows_gains_ta_cost_and_fake_unlearning():
    def t(s):
        rows = {"original": {"UA": 0.0, "TA": 98.0, "fake_unlearned": 0.0},
                "retrain": {"UA": 3.0, "TA": 98.0, "fake_unlearned": 1.0}}
        for i, base in enumerate(R.CPU_BASES):
            rows[base] = {"UA": 1.0, "TA": 98.0, "fake_unlearned": 0.0}
            rows[f"{base}+cpu"] = {"UA": 1.0 + 6.0 + i, "TA": 97.0 - s, "fake_unlearned": 2.0}
        return board(rows)

    rows = R.cpu_rows({"random": {s: t(s) for s in range(3)}})
    assert [r.verdict for r in rows] == [REPRODUCED] * 5
    assert "TA change -2.00 ± 1.00" in rows[0].ours
    assert "retrain 1.0" in rows[-1].ours and "original" not in rows[-1].ours


def test_relearn_and_rcd_rows():
    cls = {s: board({"pru": {"relearn_acc@10": 20.0 + s, "UA": 100.0}, "ga": {"relearn_acc@10": 50.0, "UA": 100.0},
                     "boundary_shrink": {"relearn_acc@10": 21.0, "UA": 90.0},
                     "boundary_expanding": {"relearn_acc@10": 10.0, "UA": 80.0}}) for s in range(3)}
    verdicts = {r.claim: r.verdict for r in R.relearn_rows({"class": cls})}
    assert verdicts == {"(d) PRU vs ga under relearning": REPRODUCED,
                        "(d) PRU vs boundary_shrink under relearning": NOT_REPRODUCED,  # 22 > 21 on seed 2
                        "(d) PRU vs boundary_expanding under relearning": NOT_REPRODUCED}
    mis = {s: board({"ieu": {"rcd_steps": 10.0, "TA": 97.0}, "finetune": {"rcd_steps": 0.0, "TA": 96.0},
                     "ga": {"rcd_steps": 2.0, "TA": 80.0}}) for s in range(3)}
    rcd = {r.claim: r.verdict for r in R.rcd_rows({"mislabeled": mis})}
    assert rcd["(e) IEU's RCD vs finetune"] == REPRODUCED
    assert rcd["(e) IEU's RCD vs ga"].startswith(NOT_TESTABLE)  # TA 17 points apart: not comparable


def test_scoreui_rows():
    rows = R.scoreui_rows({"iam": np.array([0.5, 0.6, 0.4]), "lira": np.array([0.4, 0.5, 0.45]),
                           "rmia": np.array([-0.1, 0.0, 0.1])})
    assert [r.verdict for r in rows] == [NOT_REPRODUCED, REPRODUCED]


def test_protocol_arguments_and_bad_claims():
    from expunge.errors import ConfigError
    from expunge.jobs.reproduce import parse_claims, protocol_configs

    args = PROTOCOLS["random"].arguments("out", [0, 1], quick=True)
    assert "seeds=[0, 1]" in args and "train.epochs=15" in args and "audit.shadows=2" in args
    assert "audit.shadows=2" not in PROTOCOLS["one_shadow"].arguments("out", [0], quick=True)
    assert parse_claims("a,(c)") == ["a", "c"]
    with pytest.raises(ConfigError, match="allowed letters"):
        parse_claims("z")
    cfgs = protocol_configs("out", [0, 1, 2], False, ["b"])  # every protocol config is valid
    assert set(cfgs) == {"one_shadow", "one_shadow_memorising"}
    assert all(c.audit.shadows == 1 and [m.name for m in c.unlearn.methods] == ["retrain"] for c in cfgs.values())
    all_cfgs = protocol_configs("out", [0], False, list("abcdef"))
    assert set(all_cfgs) == set(PROTOCOLS)


@pytest.mark.slow
def test_reproduce_job_end_to_end_on_one_claim(tmp_path, capsys):
    from expunge.jobs.reproduce import main
    from expunge.store import Store

    assert main(["--claims", "b", "--seeds", "0,1", "--quick", "--local", "--storage", str(tmp_path)]) == 0
    art = Store(str(tmp_path)).get("reproduce", "claims")
    table = art.read("claims.csv")
    assert len(table) == 4 and set(table["seeds"]) == {2}
    assert set(table["verdict"]) <= {REPRODUCED, NOT_REPRODUCED}
    assert "claims table:" in capsys.readouterr().err
    assert (tmp_path / "one_shadow" / "seed-1" / "audit").is_dir()
