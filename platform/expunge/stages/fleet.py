"""The fleet stage on Ray: members as tasks with fractional GPUs, retried on failure, gathered as they finish.

The driver refuses stale members before submitting anything, submits every member (finished ones
return at once from the store), shows one progress bar (members done / total, models per hour), and
writes the membership matrix last.
"""
from __future__ import annotations

from typing import Any

from expunge import faults
from expunge.config import ExperimentConfig
from expunge.runtime.tasks import current_node, run_tasks
from expunge.experiment import Experiment, log


def member_task(cfg: dict[str, Any], i: int, rebuild: bool) -> dict[str, Any]:
    """Ray task body: train (or reuse) fleet member i."""
    from expunge.fleet.members import train_member

    faults.record("member_start", f"{i}:{current_node()}")  # lets a node-loss test see a member running
    faults.maybe_die("member", member=i)
    ex = Experiment(ExperimentConfig.model_validate(cfg), rebuild=rebuild, verbose=False)
    art = train_member(ex, i)
    return {"key": art.key, "run_time_s": art.manifest.get("run_time_s"), "node": current_node()}


def ensemble_task(cfg: dict[str, Any], members: list[int], rebuild: bool) -> list[dict[str, Any]]:
    """Ray task body: train (or reuse) several members together as one batched ensemble."""
    from expunge.fleet.members import train_members_batched

    for i in members:
        faults.maybe_die("member", member=i)
    ex = Experiment(ExperimentConfig.model_validate(cfg), rebuild=rebuild, verbose=False)
    node = current_node()
    return [{"key": a.key, "run_time_s": a.manifest.get("run_time_s"), "node": node}
            for a in train_members_batched(ex, members)]


def run_fleet(cfg: ExperimentConfig, rebuild: bool = False, use_ray: bool = True) -> dict[str, Any]:
    from expunge.fleet.members import check_members, fleet_name, member_key, write_membership

    f = cfg.fleet
    if f.size < 1:
        from expunge.errors import ConfigError

        raise ConfigError("fleet.size: set the number of models, e.g. fleet.size=8")
    ex = Experiment(cfg, rebuild=rebuild)
    ex.preflight([f.method] if f.method else [])
    check_members(ex)
    log(f"fleet {fleet_name(f)}: {f.size} models of {cfg.model.name} on {cfg.data.dataset} "
        f"({f.cpus_per_model:g} CPU, {f.gpus_per_model:g} GPU each)")
    if f.ensemble > 1:  # E members per task, one batched step for all of them
        from expunge.fleet.members import batched_groups
        from expunge.train.ensemble import check_ensemble

        check_ensemble(cfg.train)
        groups = batched_groups(ex, list(range(f.size)))
        done = run_tasks(ensemble_task, [{"cfg": cfg.model_dump(), "members": g, "rebuild": rebuild} for g in groups],
                         num_cpus=f.cpus_per_model, num_gpus=f.gpus_per_model, max_retries=f.max_retries,
                         desc=f"fleet {fleet_name(f)} (ensembles of {f.ensemble})", unit="ensemble", use_ray=use_ray)
        by_member = {i: r for g, rs in zip(groups, done) for i, r in zip(g, rs)}
        results = [by_member[i] for i in range(f.size)]
    else:
        results = run_tasks(member_task, [{"cfg": cfg.model_dump(), "i": i, "rebuild": rebuild} for i in range(f.size)],
                            num_cpus=f.cpus_per_model, num_gpus=f.gpus_per_model, max_retries=f.max_retries,
                            desc=f"fleet {fleet_name(f)}", unit="model", use_ray=use_ray)
    art = write_membership(ex)
    log(f"fleet membership: {art.path}/membership.npy")
    if f.kind == "unlearned":  # with a retrain fleet of the same size, the challenge's per-example epsilon
        retrain = f.model_copy(update={"kind": "retrain", "method": None})
        keys = [member_key(retrain, i) for i in range(f.size)]
        if all(ex.store.exists("models", k) for k in keys):
            from expunge.audit.fleet_epsilon import fleet_epsilon

            eps = fleet_epsilon(ex, [r["key"] for r in results], keys)
            log(f"per-example epsilon: forget score {eps['forget_score']:.3f}, challenge score "
                f"{eps['challenge_score']:.3f} ({eps['path']})")
        else:
            log("per-example epsilon: train a retrain fleet of the same size (fleet.kind=retrain) to get it")
    nodes = sorted({r["node"] for r in results})
    if nodes != ["local"]:
        log(f"fleet members ran on {len(nodes)} node(s)")
    log(f"run directory: {ex.store.uri}")
    return {"members": [r["key"] for r in results], "membership": art.path,
            "nodes": {r["key"]: r["node"] for r in results}}
