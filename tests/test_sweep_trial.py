"""One sweep trial without Ray: per-epoch reports, RTE, and agreement with the stored audit."""
from __future__ import annotations

import pytest

from expunge.config import MethodSpec, load_config


@pytest.fixture(scope="module")
def gold(tmp_path_factory):
    from expunge.distributed.fleet import run_fleet
    from expunge.experiment import Experiment
    from expunge.fleet.members import audit_shadow_config
    from expunge.jobs.original import run_original
    from expunge.sweep.runner import _reference_rows

    tmp = tmp_path_factory.mktemp("sweep_trial")
    cfg = load_config(None, [f"storage={tmp}", "train.epochs=6", "data.sizes.shadow_pool=0.25", "audit.shadows=2",
                             "audit.metrics=[accuracy,svc_mia,iam]"])
    run_original(cfg, use_ray=False)
    ex = Experiment(cfg, verbose=False)
    ex.unlearn(MethodSpec(name="retrain"))
    run_fleet(audit_shadow_config(cfg), use_ray=False)
    reference, original = _reference_rows(ex, cfg.audit.metrics)
    return cfg, reference, original


def _trial(gold, method, params):
    from expunge.sweep.trial import run_trial

    cfg, reference, original = gold
    reports = []
    final = run_trial(params, experiment=cfg.model_dump(mode="json"), method=method, fixed={},
                      metrics=cfg.audit.metrics, reference=reference, original=original,
                      sweep={"objective": "avg_gap", "mode": "min", "constraints": ["TA_drop <= 50"]},
                      report=reports.append)
    return reports, final


def test_trial_reports_each_epoch_and_matches_the_audit_stage(gold):
    from expunge.audit.stage import audit_models
    from expunge.experiment import Experiment

    reports, final = _trial(gold, "finetune", {"epochs": 3, "lr": 0.05})
    assert [r["epoch"] for r in reports] == [1, 2, 3] and [r["final"] for r in reports] == [0.0, 0.0, 1.0]
    assert final is reports[-1] and final["feasible"] and final["RTE_s"] > 0
    assert final["objective"] == final["avg_gap"] and final["sweep_score"] == final["avg_gap"]
    # the same configuration stored and audited by the audit stage gives the same numbers
    cfg = gold[0]
    ex = Experiment(cfg, verbose=False)
    spec = MethodSpec(name="finetune", params={"epochs": 3, "lr": 0.05})
    art = ex.unlearn(spec)
    board = audit_models(ex, ["original", ex.unlearned_key(MethodSpec(name="retrain")), art.key])["leaderboard"]
    row = board.set_index("model").loc[art.key]
    for col in ("UA", "RA", "TA", "MIA_efficacy", "iam_binui_auc", "avg_gap"):
        assert row[col] == pytest.approx(final[col], abs=1e-3), col


def test_one_shot_method_reports_once_with_a_positive_rte(gold):
    reports, final = _trial(gold, "ssd", {"selection_weighting": 10.0})
    assert len(reports) == 1 and final["final"] == 1.0 and final["RTE_s"] > 0


def test_diverging_configuration_is_an_infeasible_result_not_an_error(gold, monkeypatch):
    from expunge.experiment import Experiment

    def diverge(self, spec, *args, **kwargs):
        raise FloatingPointError(f"{spec.name}: loss diverged at epoch 1; lower lr")

    monkeypatch.setattr(Experiment, "apply_method", diverge)  # what run_loop raises on a non-finite loss
    reports, final = _trial(gold, "ga", {"epochs": 2, "lr": 0.5})
    assert reports == [final] and final["diverged"] == 1.0 and final["feasible"] is False
    assert final["sweep_score"] >= 1e6
