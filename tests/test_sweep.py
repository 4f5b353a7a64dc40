"""Sweep scoring rules and search-space validation (no Ray)."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from expunge.config import SweepMethod

from expunge.resolve import load_config
from expunge.errors import ConfigError, ExpungeError
from expunge.sweep.objective import (INFEASIBLE_PENALTY, Constraint, check_columns, objective_value, pareto_front,
                                     score, trial_row)
from expunge.resolve import method_space
from expunge.runtime.tune import to_tune


def test_trial_row_gaps_avg_gap_and_drops():
    reference = {"UA": 5.0, "RA": 99.0, "TA": 97.0, "MIA_efficacy": 20.0, "iam_binui_auc": 0.5}
    original = {"UA": 0.0, "RA": 100.0, "TA": 98.0, "MIA_efficacy": 3.0, "iam_binui_auc": 0.9}
    row = trial_row({"UA": 0.02, "RA": 0.97, "TA": 0.95, "MIA_efficacy": 0.10, "iam_binui_auc": 0.6},
                    reference, original)
    assert row["UA"] == pytest.approx(2.0) and row["TA"] == pytest.approx(95.0)  # percent, as the leaderboard
    assert row["gap_UA"] == pytest.approx(3.0) and row["gap_RA"] == pytest.approx(2.0)
    assert row["gap_TA"] == pytest.approx(2.0) and row["gap_MIA_efficacy"] == pytest.approx(10.0)
    assert row["avg_gap"] == pytest.approx((3 + 2 + 2 + 10) / 4)  # UA, RA, TA, MIA-efficacy only
    assert row["gap_iam_binui_auc"] == pytest.approx(0.1)
    assert row["TA_drop"] == pytest.approx(3.0) and row["RA_drop"] == pytest.approx(3.0)
    assert "iam_binui_auc_drop" not in row  # drops are for accuracies and MIA-efficacy


def test_weighted_objective_and_unknown_column():
    row = {"gap_UA": 2.0, "TA": 90.0}
    assert objective_value(row, "gap_UA") == 2.0
    assert objective_value(row, {"gap_UA": 1.0, "TA": -0.5}) == pytest.approx(2.0 - 45.0)
    with pytest.raises(ConfigError, match="unknown column 'avg_gapp'"):
        objective_value(row, "avg_gapp")


def test_constraints_parse_hold_and_nan_breaks():
    c = Constraint.parse("TA_drop <= 2")
    assert (c.column, c.op, c.bound) == ("TA_drop", "<=", 2.0)
    assert c.holds({"TA_drop": 2.0}) and not c.holds({"TA_drop": 2.01})
    assert not c.holds({"TA_drop": math.nan})
    assert Constraint.parse("relearn_acc@10>1e-1").holds({"relearn_acc@10": 0.2})
    for bad in ("TA_drop == 2", "TA_drop <=", "<= 2", "TA drop <= 2"):
        with pytest.raises(ConfigError, match="expected '<column> <op> <number>'"):
            Constraint.parse(bad)


def test_score_penalises_infeasible_and_negates_max():
    cons = [Constraint.parse("TA_drop <= 2")]
    ok = score({"avg_gap": 3.0, "TA_drop": 1.0}, "avg_gap", "min", cons)
    bad = score({"avg_gap": 1.0, "TA_drop": 5.0}, "avg_gap", "min", cons)
    assert ok == {"objective": 3.0, "feasible": True, "sweep_score": 3.0}
    assert not bad["feasible"] and bad["sweep_score"] == pytest.approx(1.0 + INFEASIBLE_PENALTY)
    assert ok["sweep_score"] < bad["sweep_score"]
    assert score({"TA": 97.0}, "TA", "max", [])["sweep_score"] == -97.0
    nan = score({"avg_gap": math.nan}, "avg_gap", "min", [])
    assert not nan["feasible"] and nan["sweep_score"] >= INFEASIBLE_PENALTY


def test_pareto_front_by_hand():
    t = pd.DataFrame({"a": [1.0, 2.0, 3.0, 2.0, np.nan, 1.0], "b": [5.0, 3.0, 1.0, 4.0, 0.0, 5.0]})
    front = pareto_front(t, {"a": "min", "b": "min"})
    # row 3 is dominated by row 1; row 4 has a NaN; rows 0 and 5 tie (neither dominates the other)
    assert front.tolist() == [True, True, True, False, False, True]
    t2 = pd.DataFrame({"gap": [1.0, 2.0, 0.5], "TA": [90.0, 95.0, 80.0]})
    assert pareto_front(t2, {"gap": "min", "TA": "max"}).tolist() == [True, True, True]
    t3 = pd.DataFrame({"gap": [1.0, 2.0], "TA": [95.0, 90.0]})
    assert pareto_front(t3, {"gap": "min", "TA": "max"}).tolist() == [True, False]


def test_check_columns_names_the_unknown_one():
    with pytest.raises(ConfigError, match="'gap_iam_auc'"):
        check_columns({"avg_gap", "gap_UA"}, "avg_gap", [], {"gap_iam_auc": "min"})
    check_columns({"avg_gap", "TA_drop"}, {"avg_gap": 1.0}, [Constraint.parse("TA_drop < 1")], {})


def test_method_space_merges_registered_space_with_overrides():
    space = method_space(SweepMethod(name="finetune+cpu", space={"lambda": {"uniform": [0.2, 1.0]},
                                                                 "epochs": None}))
    assert space["lam"].kind == "uniform" and space["lam"].args == (0.2, 1.0)  # alias of lam
    assert "epochs" not in space and "delta" in space and "lr" in space  # registered dims kept
    fixed = method_space(SweepMethod(name="ieu", params={"epochs": 3}))
    assert "epochs" not in fixed and {"sigma", "lambda_wd", "beta"} <= set(fixed)
    only = method_space(SweepMethod(name="salun", default_space=False, space={"mask_ratio": {"grid": [0.3, 0.5]}}))
    assert list(only) == ["mask_ratio"]


BAD_SPACES = [
    ({"name": "finetune", "space": {"lrr": {"uniform": [0.1, 0.2]}}}, "space.lrr: unknown hyperparameter"),
    ({"name": "finetune", "space": {"lr": {"uniform": [0.1, 0.1]}}}, "empty range"),
    ({"name": "finetune", "space": {"lr": {"loguniform": [-0.1, 0.2]}}}, "non-positive bound"),
    ({"name": "finetune", "space": {"lr": {"loguniform": [0.0, 0.2]}}}, "non-positive bound"),
    ({"name": "finetune", "space": {"epochs": {"randint": [5, 5]}}}, "empty range"),
    ({"name": "finetune", "space": {"lr": {"choice": []}}}, "non-empty list"),
    ({"name": "finetune", "space": {"lr": {"normal": [0, 1]}}}, "unknown domain 'normal'"),
    ({"name": "finetune", "space": {"lr": {"uniform": [0.1]}}}, r"needs \[lo, hi\]"),
    ({"name": "finetune", "space": {"momentum": {"uniform": [0.5, 1.5]}}}, "momentum: value 1.5 is refused"),
    ({"name": "finetune", "space": {"epochs": {"randint": [-3, 2]}}}, "value -3 is refused"),
    ({"name": "finetune", "params": {"lr": 0.1}, "space": {"lr": {"uniform": [0.1, 0.2]}}}, "both fixed"),
    ({"name": "finetune", "params": {"moment": 0.5}}, "params.moment: unknown hyperparameter"),
    ({"name": "finetune", "default_space": False}, "nothing to sweep"),
    ({"name": "finetunee"}, "unknown unlearning method 'finetunee'"),
]


@pytest.mark.parametrize("spec,message", BAD_SPACES)
def test_bad_search_space_is_a_config_error_naming_the_key(spec, message):
    from expunge.config import ExperimentConfig
    from expunge.resolve import validate

    with pytest.raises(ExpungeError, match=message):
        validate(ExperimentConfig, {"sweep": {"methods": [spec]}})


def test_grid_search_refuses_continuous_dimensions():
    space = method_space(SweepMethod(name="finetune", default_space=False, space={"lr": {"uniform": [0.01, 0.1]}}))
    with pytest.raises(ConfigError, match="grid search needs grid or choice"):
        to_tune(space, "grid")
    grid_space = method_space(SweepMethod(name="finetune", default_space=False, space={"lr": {"choice": [0.01, 0.1]}}))
    assert to_tune(grid_space, "grid")["lr"] == {"grid_search": [0.01, 0.1]}


def test_yaml_base_is_merged_and_cycles_refused(tmp_path, repo_root):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(f"base: {repo_root}/configs/experiments/digits.yaml\ntrain: {{epochs: 3}}\n"
                     "sweep: {methods: [finetune]}\n")
    cfg = load_config(sweep)
    assert cfg.train.epochs == 3 and cfg.train.batch_size == 64 and cfg.audit.shadows == 4  # from the base
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("base: b.yaml\n")
    b.write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load_config(a)


def test_every_example_sweep_config_validates(repo_root):
    paths = sorted((repo_root / "configs" / "sweeps").glob("*.yaml"))
    assert {p.name for p in paths} >= {"cpu_finetune.yaml", "ieu.yaml", "salun.yaml", "all_methods_digits.yaml"}
    for p in paths:
        cfg = load_config(p)
        assert cfg.sweep.methods, p
        for m in cfg.sweep.methods:
            to_tune(method_space(m), cfg.sweep.search)


def test_cli_bad_sweep_exits_2_before_any_compute(tmp_path, repo_root):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"base: {repo_root}/configs/experiments/digits.yaml\nstorage: {tmp_path}/runs\n"
                   "sweep: {methods: [{name: ieu, space: {sigma: {loguniform: [-1e-3, 1e-2]}}}]}\n")
    proc = subprocess.run([sys.executable, "-m", "expunge.jobs.sweep", "--config", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln]
    assert len(lines) == 1 and "sigma" in lines[0] and "non-positive bound" in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing computed, nothing written


@pytest.mark.parametrize("search", ["optuna", "hyperopt"])
def test_missing_search_library_is_refused_before_compute(tmp_path, search):
    import importlib.util

    if importlib.util.find_spec(search) is not None:
        pytest.skip(f"{search} is installed here")
    from expunge.sweep.runner import run_sweep

    cfg = load_config(None, [f"storage={tmp_path}/runs", f"sweep.search={search}", "sweep.methods=[finetune]"])
    with pytest.raises(ConfigError, match=f"{search} is not installed"):
        run_sweep(cfg, use_ray=True)
    assert not (tmp_path / "runs").exists()


def test_local_mode_and_empty_sweep_are_refused(tmp_path):
    from expunge.sweep.runner import run_sweep

    with pytest.raises(ConfigError, match="nothing to sweep"):
        run_sweep(load_config(None, [f"storage={tmp_path}"]), use_ray=True)
    with pytest.raises(ConfigError, match="without --local"):
        run_sweep(load_config(None, [f"storage={tmp_path}", "sweep.methods=[finetune]"]), use_ray=False)


def test_progress_counts_the_finishing_trial():
    from types import SimpleNamespace as T

    from expunge.sweep.progress import summarize

    done = T(status="TERMINATED", last_result={"final": 1.0, "feasible": True, "sweep_score": 2.0})
    stopped = T(status="TERMINATED", last_result={"final": 0.0, "sweep_score": 1.0})
    finishing = T(status="RUNNING", last_result={"final": 1.0, "feasible": True, "sweep_score": 1.5})
    pending = T(status="PENDING", last_result=None)
    s = summarize([done, stopped, finishing, pending], finishing)
    assert (s["done"], s["running"], s["stopped"], s["errors"], s["best"]) == (3, 0, 1, 0, 1.5)
    s = summarize([done, finishing], finishing, error=True)
    assert (s["done"], s["errors"], s["best"]) == (2, 1, 2.0)


def test_asha_horizon_covers_methods_without_their_own_epochs():
    from expunge.sweep.runner import max_epochs

    m = SweepMethod(name="retrain+cpu")  # epochs default None: the experiment's train.epochs
    assert max_epochs(m, method_space(m), 30) == 30
    m = SweepMethod(name="finetune", space={"epochs": {"randint": [2, 7]}})
    assert max_epochs(m, method_space(m), 30) == 6
    m = SweepMethod(name="ieu", params={"epochs": 3})
    assert max_epochs(m, method_space(m), 30) == 3
