"""The audit stage end to end: a small OUT shadow fleet, LiRA / RMIA / IAM, SVC-MIA, Avg. Gap."""
from __future__ import annotations

import numpy as np
import pytest

from expunge.resolve import load_config
from expunge.errors import ConfigError
from expunge.stages.pipeline import run_pipeline
from expunge.store import Store

AUDIT = ["data.dataset=synthetic", "data.options={n: 1200, num_classes: 10, shape: [1, 8, 8], noise: 0.6}",
         "unlearn.methods=[retrain,finetune]", "data.sizes.shadow_pool=0.3", "audit.shadows=4",
         "audit.metrics=[accuracy,svc_mia,cr,miacr,lira,rmia,iam,relearn]", "train.epochs=40", "train.augment=false"]


@pytest.fixture(scope="module")
def audited(tmp_path_factory, repo_root):
    """Noisy synthetic data, so the original memorises its training set (MIAs have signal)."""
    tmp = tmp_path_factory.mktemp("audit")
    cfg = load_config(repo_root / "configs/experiments/digits.yaml", [f"storage={tmp}", *AUDIT])
    res = run_pipeline(cfg, use_ray=False, print_table=False)
    return res["table"].set_index("method"), Store(str(tmp / "digits"))


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["lira", "rmia", "iam"])
def test_retrained_forget_set_is_at_chance_original_is_not(audited, attack):
    table, _ = audited
    assert abs(table.loc["retrain", f"{attack}_forget_vs_test_auc"] - 0.5) <= 0.1
    assert table.loc["original", f"{attack}_forget_vs_test_auc"] >= 0.8


@pytest.mark.slow
def test_binui_and_avg_gap(audited):
    table, _ = audited
    # the original has unlearned nothing: retained and forget samples look alike
    assert abs(table.loc["original", "lira_binui_auc"] - 0.5) <= 0.1
    assert table.loc["retrain", "lira_binui_auc"] >= 0.8
    assert table.loc["retrain", "avg_gap"] == 0.0
    gap = np.mean([abs(table.loc["original", c] - table.loc["retrain", c]) for c in ("UA", "RA", "TA", "MIA_efficacy")])
    assert table.loc["original", "avg_gap"] == pytest.approx(gap, abs=1e-2)
    assert table.loc["retrain", "MIA_efficacy"] > table.loc["original", "MIA_efficacy"]
    assert "rcd_steps" in table.columns and table.loc["original", "rcd_steps"] == 0
    # the original memorised D_f: small sets that contain the label (high CR); after retraining the
    # forget samples get the large sets of unseen data (CR near the test set's)
    assert table.loc["original", "CR_forget"] > 2 * table.loc["retrain", "CR_forget"]
    assert abs(table.loc["retrain", "CR_forget"] - table.loc["retrain", "CR_test"]) < 0.1
    assert table.loc["original", "MIACR_coverage"] > table.loc["retrain", "MIACR_coverage"]


@pytest.mark.slow
def test_audit_artifacts(audited):
    _, store = audited
    art = store.get("audit", "results", verify=True)
    long = art.read("metrics_long.parquet")
    assert {"model", "method", "metric", "value"} <= set(long.columns)
    names = art.files()
    assert any(n.endswith("__iam__iam_forget.npy") for n in names)
    assert art.read("summary.json")["shadows"] == 4
    shadows = [store.get("models", f"fleet-shadow-out_only/{i:04d}") for i in range(5)]
    assert all(a is not None for a in shadows[:4]) and shadows[4] is None
    assert store.get("fleets", "shadow-out_only").read("membership.npy").shape[0] == 4
    members = shadows[0].read("members.npy")
    plan_pool = store.get("split", "plan").read("shadow_pool.npy")
    assert set(members) <= set(plan_pool)  # OUT shadows never see the original's training set


@pytest.mark.parametrize("override, needle", [
    (["audit.metrics=[lira]", "audit.shadows=0"], "audit.shadows"),
    (["audit.metrics=[lira]", "audit.shadows=2", "data.sizes.shadow_pool=0.0"], "data.sizes.shadow_pool"),
    (["audit.metrics=[liar]"], "did you mean lira"),
])
def test_audit_config_errors(override, needle, repo_root):
    with pytest.raises(ConfigError, match=needle):
        load_config(repo_root / "configs/experiments/digits.yaml", override)


def test_audit_command_needs_stored_models_then_audits(tmp_path, capsys):
    from expunge.cli import main

    args = ["configs/experiments/digits.yaml", "--local", f"storage={tmp_path}", "train.epochs=3",
            "unlearn.methods=[retrain,finetune]"]
    assert main(["audit", *args]) == 2
    assert "run `expunge run`" in capsys.readouterr().err
    assert main(["run", *args]) == 0
    capsys.readouterr()
    extra = ["data.sizes.shadow_pool=0.2", "audit.shadows=2", "audit.metrics=[accuracy,svc_mia,lira]"]
    # a different shadow pool changes the split: the stored models were built on another plan
    assert main(["audit", *args, *extra]) == 2
    assert "split" in capsys.readouterr().err
    assert main(["audit", *args, "audit.metrics=[accuracy,svc_mia]"]) == 0
    out = capsys.readouterr()
    assert "MIA_efficacy" in out.out and "audit tables:" in out.err
    # the summary and HTML report were rendered again from the new tables: no column of the earlier
    # audit (CR, MIACR, RMIA ... of digits.yaml's metrics) survives in them
    run = Store(str(tmp_path / "digits"))
    summary = run.get("reports", "summary", verify=True)
    text = "".join(summary.read(n) for n in summary.files() if n.endswith(".md"))
    html = run.get("reports", "report", verify=True)
    page = "".join(html.read(n) for n in html.files() if n.endswith(".html"))
    assert "MIA_efficacy" in text and "rmia" not in text.lower() and "rmia_binui_auc" not in page


@pytest.mark.slow
def test_lira_with_augmented_views(tmp_path, repo_root):
    cfg = load_config(repo_root / "configs/experiments/digits.yaml",
                      [f"storage={tmp_path}", *AUDIT, "audit.metrics=[lira]", "audit.augmented_views=3",
                       "unlearn.methods=[retrain]", "train.augment=true", "train.epochs=60"])
    res = run_pipeline(cfg, use_ray=False, print_table=False)
    table = res["table"].set_index("method")
    out = Store(str(tmp_path / "digits")).get("outputs", "original").read("aug_logits_forget.npy")
    assert out.shape[0] == 3 and out.shape[2] == 10
    assert table.loc["original", "lira_forget_vs_test_auc"] >= 0.8
    assert abs(table.loc["retrain", "lira_forget_vs_test_auc"] - 0.5) <= 0.1


def test_audit_params_validated_and_passed(repo_root):
    base = ["audit.metrics=[accuracy,rmia]", "audit.shadows=1"]
    cfg = load_config(repo_root / "configs/experiments/digits.yaml", [*base, "audit.params={rmia: {gamma: 1.5, signal: taylor}}"])
    assert cfg.audit.params["rmia"]["signal"] == "taylor"
    with pytest.raises(ConfigError, match="audit.params.rmia.gama: unknown parameter"):
        load_config(repo_root / "configs/experiments/digits.yaml", [*base, "audit.params={rmia: {gama: 1}}"])
    with pytest.raises(ConfigError, match="audit.params.iam: not in audit.metrics"):
        load_config(repo_root / "configs/experiments/digits.yaml", [*base, "audit.params={iam: {n_levels: 5}}"])


def test_accuracy_metric_by_hand():
    from expunge.metrics import METRICS, AuditInputs, Outputs

    def out(pred, y):
        return Outputs(np.eye(3)[pred] * 5.0, np.asarray(y), np.arange(len(y)))

    # forget: 1 of 4 right -> UA 0.75; retain 2 of 2 -> RA 1; test labels (0, 1, 2, 2), predictions
    # (0, 1, 0, 2): remaining classes (forget class 2 excluded) 2/2 = 1, forgotten class 1/2
    inputs = AuditInputs({"forget": out([0, 1, 1, 2], [2, 2, 2, 2]), "retain": out([0, 1], [0, 1]),
                          "test": out([0, 1, 0, 2], [0, 1, 2, 2])}, forget_class=2)
    s = METRICS.get("accuracy")(inputs).summary
    assert s == {"UA": 0.75, "RA": 1.0, "TA": 1.0, "forget_class_TA": 0.5}


def test_rmia_taylor_signal_and_iam_weighting_run():
    from expunge.metrics import METRICS, AuditInputs, Outputs

    rng = np.random.default_rng(0)

    def model():
        return {s: Outputs(rng.normal(size=(n, 4)), rng.integers(0, 4, n), np.arange(n))
                for s, n in (("retain", 30), ("forget", 10), ("test", 20), ("population", 25), ("shadow_pool", 15))}

    inputs = AuditInputs(model(), model(), [model(), model()], None, [np.arange(8), np.arange(5, 15)])
    r = METRICS.get("rmia")(inputs, signal="taylor", gamma=1.5).summary
    i = METRICS.get("iam")(inputs, weighting="uniform").summary
    assert 0 <= r["rmia_binui_auc"] <= 1 and 0 <= i["iam_binui_auc"] <= 1
    assert np.isfinite([r["rmia_forget_vs_test_auc"], i["iam_unlearning_score_mean"]]).all()


def test_conformal_alpha_too_small_refused_before_training(tmp_path, capsys):
    from expunge.cli import main

    code = main(["run", "configs/experiments/digits.yaml", "--local", f"storage={tmp_path}",
                 "audit.params={cr: {alphas: [0.001]}}"])
    err = capsys.readouterr().err
    assert code == 2 and "too few for alpha=0.001" in err and "loss" not in err
    assert not list(tmp_path.rglob("models/*/manifest.json"))
