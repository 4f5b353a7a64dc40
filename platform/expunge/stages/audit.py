"""The audit stage over stored models: the original and every ``unlearn.methods`` model, the OUT
shadow fleet the metrics need (trained if the store does not have it), the metrics from cached
outputs, and the run's summary and HTML report rendered again from the new tables."""
from __future__ import annotations

from typing import Any

from expunge.audit.stage import audit_models
from expunge.stages.fleet import run_fleet
from expunge.fleet.members import audit_shadow_config, check_fleets
from expunge.config import ExperimentConfig
from expunge.errors import ArtifactError
from expunge.experiment import Experiment, log
from expunge.stages.pipeline import write_reports


def run_audit(cfg: ExperimentConfig, rebuild: bool = False, use_ray: bool = True) -> dict[str, Any]:
    ex = Experiment(cfg, rebuild=rebuild)
    ex.preflight(cfg.unlearn.methods)
    check_fleets(ex)
    keys = ["original", *[ex.unlearned_key(s) for s in cfg.unlearn.methods]]
    missing = [k for k in keys if not ex.store.exists("models", k)]
    if missing:
        raise ArtifactError(f"models {', '.join(missing)} are not in {ex.store.uri}; run `expunge run` with this "
                            "config first")
    if cfg.audit.shadows:  # the audit's OUT-only shadow fleet, through the fleet path
        run_fleet(audit_shadow_config(cfg), rebuild, use_ray)
    res = audit_models(ex, keys)
    summary, html = write_reports(ex, res["leaderboard"])
    print(res["leaderboard"].to_string(index=False), flush=True)
    log(f"audit tables: {res['path']}")
    log(f"report: {summary}")
    log(f"html report: {html}")
    return res

