"""One sweep trial without Ray: per-epoch reports, RTE, and agreement with the stored audit."""
from __future__ import annotations

import pytest

from expunge.config import MethodSpec

from expunge.resolve import load_config


@pytest.fixture(scope="module")
def gold(tmp_path_factory):
    """Seeds 0 and 1, each with its original, retrained model and shadows: ``(per-seed configs, runs)``
    with ``runs`` as the sweep driver passes them to a trial."""
    from expunge.stages.fleet import run_fleet
    from expunge.experiment import Experiment
    from expunge.fleet.members import audit_shadow_config
    from expunge.stages.original import run_original
    from expunge.sweep.runner import reference_rows

    tmp = tmp_path_factory.mktemp("sweep_trial")
    cfg = load_config(None, [f"storage={tmp}", "train.epochs=6", "data.sizes.shadow_pool=0.25", "audit.shadows=2",
                             "audit.metrics=[accuracy,svc_mia,iam]", "seeds=[0,1]"])
    configs, runs = cfg.per_seed_configs(), []
    for c in configs:
        run_original(c, use_ray=False)
        ex = Experiment(c, verbose=False)
        ex.unlearn(MethodSpec(name="retrain"))
        run_fleet(audit_shadow_config(c), use_ray=False)
        reference, original = reference_rows(ex, c.audit.metrics)
        runs.append({"experiment": c.model_dump(mode="json"), "reference": reference, "original": original})
    return configs, runs


def _trial(gold, method, params, seeds=(0,)):
    from expunge.sweep.trial import run_trial

    configs, runs = gold
    reports = []
    final = run_trial(params, runs=[runs[s] for s in seeds], method=method, fixed={}, metrics=configs[0].audit.metrics,
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
    cfg = gold[0][0]
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


def test_several_seeds_score_the_mean_over_seeds(gold):
    """A trial over seeds 0 and 1 reports, per epoch and at the end, the mean of what the same
    configuration gives on each seed alone (each scored against its own retrained model), and is
    feasible by the constraint on that mean."""
    import numpy as np

    params = {"epochs": 2, "lr": 0.05}
    alone = [_trial(gold, "finetune", params, seeds=(s,)) for s in (0, 1)]
    reports, final = _trial(gold, "finetune", params, seeds=(0, 1))
    assert [r["epoch"] for r in reports] == [1, 2] and final is reports[-1] and final["seeds"] == 2.0
    for col in ("UA", "RA", "TA", "MIA_efficacy", "iam_binui_auc", "gap_TA", "avg_gap", "TA_drop"):
        assert final[col] == pytest.approx(np.mean([f[col] for _, f in alone]), abs=1e-9), col
        # the first epoch's report is the mean of the first epochs too
        assert reports[0][col] == pytest.approx(np.mean([r[0][col] for r, _ in alone]), abs=1e-9), col
    per_seed = [f["objective"] for _, f in alone]
    assert final["objective"] == pytest.approx(np.mean(per_seed), abs=1e-9)
    assert final["objective_std"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-9)
    assert per_seed[0] != per_seed[1]  # the seeds differ, so the mean is not one seed's value
    assert final["feasible"] == (final["TA_drop"] <= 50)
