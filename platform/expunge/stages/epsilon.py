"""The per-example epsilon stage (NeurIPS 2023 Machine Unlearning Challenge; Triantafillou et al. 2024).

Trains (or reuses) two fleets of M models through the fleet stage (:func:`expunge.stages.fleet.run_fleet`):
``retrain`` (member i retrained from scratch on the retain set with its own seed) and ``unlearned``
(member i's own original, trained on the whole training set with seed i, then the method), and
compares them with :func:`expunge.audit.fleet_epsilon.fleet_epsilon`: per forget example, the
logit-scaled confidences under the M unlearned models against those under the M retrained ones give
an (ε, δ = 1e-5) estimate, the bucketed forget score F = Σ_e 2^{-⌊2 ε_e⌋} / E (ε_e below ceil(log(M − 1)),
else 0) summarises them, and the challenge score is F × (RA_u / RA_r) × (TA_u / TA_r), RA and TA the
fleets' mean retain and test accuracies (:mod:`expunge.metrics.epsilon`).

Stored by ``fleet_epsilon`` as ``<run>/audit/epsilon-unlearned-<method>-<hash>/`` (``epsilon.npy``,
one ε per forget example, and ``summary.json`` with the RA and TA ratios beside the challenge score).
``run_fleet`` computes it as soon as both fleets exist; this stage reads it back.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from expunge.config import ExperimentConfig, MethodSpec
from expunge.errors import ConfigError
from expunge.experiment import Experiment, log

#: the challenge's fleets had 512 models each; fewer give a coarser forget score (buckets up to ceil(log(M - 1)))
CHALLENGE_MODELS = 512


def epsilon_configs(cfg: ExperimentConfig, method: MethodSpec, models: int) -> tuple[ExperimentConfig, ExperimentConfig]:
    """The retrain and the unlearned fleet configs (M members each), validated against the registries;
    every problem is one :class:`ConfigError` before anything is read or trained."""
    from expunge.resolve import validate
    from expunge.unlearn import METHODS

    if models < 3:  # M = 2: the forget score's buckets end at ceil(log(M - 1)) = 0, so it is 0 whatever happened
        raise ConfigError(f"--models {models}: per-example epsilon compares two fleets of at least 3 models each "
                          "(with 2 the forget score is always 0; the challenge used 512)")
    if method.name not in METHODS:
        raise ConfigError(f"--method: {METHODS.unknown_message(method.name)}")
    METHODS.get(method.name).parse_config(method.params)  # unknown or ill-typed method.<param>
    if cfg.model.weights is not None:
        raise ConfigError("model.weights: each fleet member trains its own original; leave model.weights unset")
    fleet = cfg.fleet.model_dump()
    common = {k: fleet[k] for k in ("cpus_per_model", "gpus_per_model", "max_retries")}
    out = []
    for kind, spec in (("retrain", None), ("unlearned", method)):
        data = cfg.model_dump()
        data["fleet"] = {**common, "kind": kind, "size": models, "ensemble": 1,
                         "method": None if spec is None else spec.model_dump()}
        out.append(validate(ExperimentConfig, data, source="epsilon"))
    return out[0], out[1]


def artifact_key(unlearned_cfg: ExperimentConfig) -> str:
    """``audit/<key>`` of the fleets' per-example epsilon (as ``fleet_epsilon`` names it)."""
    from expunge.fleet.members import fleet_name

    return f"epsilon-{fleet_name(unlearned_cfg.fleet)}"


def run_epsilon(cfg: ExperimentConfig, method: MethodSpec, models: int, rebuild: bool = False,
                use_ray: bool = True) -> dict[str, Any]:
    """Both fleets, then per-example epsilon; returns the summary with the ratios and the artifact path."""
    from expunge.audit.fleet_epsilon import fleet_epsilon
    from expunge.fleet.members import check_members
    from expunge.stages.fleet import run_fleet

    retrain_cfg, unlearned_cfg = epsilon_configs(cfg, method, models)
    ex = Experiment(unlearned_cfg, rebuild=rebuild)
    ex.preflight([method])  # the method applies to this forget set; stored artifacts match (before compute)
    check_members(ex)
    check_members(Experiment(retrain_cfg, rebuild=rebuild, verbose=False))
    log(f"epsilon: {models} retrained and {models} {method.name}-unlearned models of {cfg.model.name} on "
        f"{cfg.data.dataset} (the challenge used {CHALLENGE_MODELS} of each)")
    retrain = run_fleet(retrain_cfg, rebuild, use_ray)
    unlearned = run_fleet(unlearned_cfg, rebuild, use_ray)
    # run_fleet computed and stored it once both fleets existed; computed here only if it could not
    key, pair = artifact_key(unlearned_cfg), {"unlearned": unlearned["members"], "retrained": retrain["members"]}
    art = ex.store.get("audit", key, verify=True)
    if art is None or art.manifest["config"] != pair:
        fleet_epsilon(ex, pair["unlearned"], pair["retrained"])
        art = ex.store.get("audit", key, verify=True)
    res, eps = {**art.read("summary.json"), "path": art.path}, art.read("epsilon.npy")
    summary = {**res, "method": method.name, "examples": int(len(eps)),
               "epsilon_nan": int(np.isnan(eps).sum())}
    print(f"per-example epsilon, {method.name} vs retrain, {models} models each, {len(eps)} forget examples:\n"
          f"  forget score     {res['forget_score']:.4f}\n"
          f"  RA ratio         {res['ra_ratio']:.4f} (retain accuracy {res['ra_unlearned']:.4f} / "
          f"{res['ra_retrain']:.4f})\n"
          f"  TA ratio         {res['ta_ratio']:.4f} (test accuracy {res['ta_unlearned']:.4f} / "
          f"{res['ta_retrain']:.4f})\n"
          f"  challenge score  {res['challenge_score']:.4f} (forget score x RA ratio x TA ratio)\n"
          f"  epsilon median   {res['epsilon_median']:.3f}, max {res['epsilon_max']:.3f}", flush=True)
    log(f"epsilon: {res['path']}")
    log(f"report: expunge report {ex.store.uri}")
    return summary
