"""Training one fleet member (no Ray), and the fleet's membership matrix.

Member i of a fleet is stored as ``models/fleet-<name>/<i>`` with a manifest keyed by the fleet
config, the split hash, the member index and the code version, so a rerun reuses finished members,
refuses mismatching ones, and growing K to 2K leaves members 0..K-1 untouched.

Kinds: ``shadow`` (balanced IN/OUT over a universe, or OUT-only on the shadow pool), ``retrain``
(member i retrained from scratch on the retain set with its own seed) and ``unlearned`` (member i's
own original, trained on the full training set with seed i, then the method). Retrain and unlearned
fleets of the same size are what per-example epsilon (NeurIPS 2023 challenge) compares.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from expunge import seeds
from expunge.experiment import Experiment, short_hash
from expunge.fleet.membership import balanced_member, membership_matrix, out_only_subset
from expunge.store import Artifact
from expunge.versions import code_version

if TYPE_CHECKING:
    from expunge.config import ExperimentConfig, FleetConfig


def fleet_name(f: "FleetConfig") -> str:
    """The fleet's name in the store (``fleets/<name>``, members ``models/fleet-<name>/<i>``)."""
    if f.kind == "shadow":
        return f"shadow-{f.policy}"
    if f.kind == "unlearned":
        return f"unlearned-{f.method.name}-{short_hash(f.method.model_dump())}"
    return "retrain"


def member_key(f: "FleetConfig", i: int) -> str:
    return f"fleet-{fleet_name(f)}/{i:04d}"


def member_seed(ex: Experiment, i: int) -> int:
    return seeds.member(ex.cfg.seed, i)


def member_indices(ex: Experiment, i: int) -> np.ndarray:
    """The training positions of member i (the original's for unlearned fleets)."""
    f, plan = ex.cfg.fleet, ex.plan
    if f.kind == "retrain":
        return plan.retain
    if f.kind == "unlearned":
        return plan.train
    if f.policy == "out_only":
        return out_only_subset(plan.shadow_pool, f.fraction, [ex.cfg.seed, 7919, i])
    universe = np.sort(np.concatenate([plan.indices[s] for s in f.universe]))
    return balanced_member(universe, i, ex.cfg.seed)


def member_config(ex: Experiment, i: int) -> dict[str, Any]:
    f = ex.cfg.fleet
    return {"role": f"fleet-{f.kind}", "policy": f.policy if f.kind == "shadow" else None,
            "universe": f.universe if f.kind == "shadow" and f.policy == "balanced" else None,
            "fraction": f.fraction if f.kind == "shadow" and f.policy == "out_only" else None, "member": i,
            # batched members equal sequential ones only up to float reassociation: never mix the two
            "batched": f.ensemble > 1}


def train_member(ex: Experiment, i: int) -> Artifact:
    """Train (or reuse) member i."""
    f = ex.cfg.fleet
    seed = member_seed(ex, i)
    if f.kind != "unlearned":
        return ex.trained(member_key(ex.cfg.fleet, i), member_indices(ex, i), seed, member_config(ex, i), f"fleet-{f.kind}")
    original = ex.trained(f"fleet-original/{i:04d}", ex.plan.train, seed, {"role": "fleet-original", "member": i},
                          "fleet-original")
    return ex.unlearn(f.method, original=original, key=member_key(ex.cfg.fleet, i), seed=seed)


def train_members_batched(ex: Experiment, members: list[int]) -> list[Artifact]:
    """Train (or reuse) ``members`` together as one batched ensemble (:mod:`expunge.train.ensemble`);
    each is stored as its own artifact, exactly as :func:`train_member` stores it."""
    import time

    from expunge.train.engine import seed_everything
    from expunge.train.ensemble import train_ensemble

    todo = [i for i in members if ex.rebuild or not ex.store.exists("models", member_key(ex.cfg.fleet, i))]
    trained: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    seconds = 0.0
    if todo:
        models = []
        for i in todo:  # the same seeded initialisation Experiment.trained gives a member
            seed_everything(member_seed(ex, i))
            models.append(ex.model_factory().to(ex.device))
        t0 = time.perf_counter()
        histories = train_ensemble(models, ex.data, [member_indices(ex, i) for i in todo], ex.cfg.train,
                                   [member_seed(ex, i) for i in todo])
        seconds = (time.perf_counter() - t0) / len(todo)
        trained = {i: (m.state_dict(), h) for i, m, h in zip(todo, models, histories)}

    def fit_from(i: int):
        def fit(model):
            model.load_state_dict(trained[i][0])
            return trained[i][1]
        return fit

    arts = []
    for i in members:
        f = ex.cfg.fleet
        arts.append(ex.trained(member_key(ex.cfg.fleet, i), member_indices(ex, i), member_seed(ex, i), member_config(ex, i),
                               f"fleet-{f.kind}", fit=fit_from(i) if i in trained else None,
                               run_time_s=seconds if i in trained else None))
    return arts


def batched_groups(ex: Experiment, members: list[int]) -> list[list[int]]:
    """Members in ensembles of ``fleet.ensemble``, each of one training-set size (a batched step
    stacks one batch per member)."""
    by_size: dict[int, list[int]] = {}
    for i in members:
        by_size.setdefault(len(member_indices(ex, i)), []).append(i)
    size = ex.cfg.fleet.ensemble
    return [group[j:j + size] for group in by_size.values() for j in range(0, len(group), size)]


def check_members(ex: Experiment) -> None:
    """Refuse, before any training, stored members that are damaged or do not match this fleet config
    (``--rebuild`` leaves them to their tasks to replace)."""
    if ex.rebuild:
        return
    for i in range(ex.cfg.fleet.size):
        key = member_key(ex.cfg.fleet, i)
        if ex.store.exists("models", key):
            expect = ex.trained_expect(member_config(ex, i), member_seed(ex, i)) if ex.cfg.fleet.kind != "unlearned" else None
            ex.store.get("models", key, expect=expect, verify=True)


def check_fleets(ex: Experiment) -> None:
    """:func:`check_members` for the config's own fleet and the audit's shadow fleet, before compute."""
    if ex.cfg.fleet.size:
        check_members(ex)
    if ex.cfg.audit.shadows:
        check_members(Experiment(audit_shadow_config(ex.cfg), rebuild=ex.rebuild, verbose=False))


def write_membership(ex: Experiment) -> Artifact:
    """K x N membership matrix over dataset positions (written last, after every member)."""
    k = ex.cfg.fleet.size
    matrix = membership_matrix([member_indices(ex, i) for i in range(k)], len(ex.dataset))
    return ex.store.put("fleets", fleet_name(ex.cfg.fleet), {"membership.npy": matrix,
                                                   "members.json": [member_key(ex.cfg.fleet, i) for i in range(k)]},
                        config=ex.cfg.fleet.model_dump(), split_hash=ex.plan.hash, seed=ex.cfg.seed, replace=True, repair=ex.rebuild,
                        code_version=code_version("fleet"))


def audit_shadow_config(cfg: "ExperimentConfig") -> "ExperimentConfig":
    """The config of the audit's OUT-only shadow fleet (``audit.shadows`` models on the shadow pool)."""
    from expunge.config import FleetConfig

    fleet = FleetConfig(kind="shadow", policy="out_only", size=cfg.audit.shadows, fraction=cfg.audit.shadow_fraction,
                        cpus_per_model=cfg.fleet.cpus_per_model, gpus_per_model=cfg.fleet.gpus_per_model,
                        max_retries=cfg.fleet.max_retries)
    return cfg.model_copy(update={"fleet": fleet})


def audit_shadow_keys(ex: Experiment) -> list[str]:
    """The store keys of the audit's shadow models."""
    fleet = audit_shadow_config(ex.cfg).fleet
    return [member_key(fleet, i) for i in range(ex.cfg.audit.shadows)]
