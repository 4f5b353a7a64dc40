"""Training one fleet member (no Ray), and the fleet's membership matrix.

Member i of a fleet is stored as ``models/fleet-<name>/<i>`` with a manifest keyed by the fleet
config, the split hash, the member index and the code version, so a rerun reuses finished members,
refuses mismatching ones, and growing K to 2K leaves members 0..K-1 untouched.

Kinds: ``shadow`` (balanced IN/OUT over a universe, or OUT-only on the shadow pool), ``retrain``
(member i retrained from scratch on the retain set with its own seed) and ``unlearned`` (member i's
own original, trained on the full training set with seed i, then the method). Retrain and unlearned
fleets of the same size are what per-example epsilon (NeurIPS 2023 challenge) compares.

The audit's shadow fleet (:func:`audit_shadow_config`) may train on another dataset
(``audit.shadow_data``, IAM Table 3) or be of another architecture (``audit.shadow_model``, IAM
Fig. 4). Its store name then carries a hash of both (:func:`shadow_source`), so such shadows never
share keys with in-distribution ones, and each member's manifest records the shadow dataset (with
its content fingerprint) and architecture. OOD members' positions (``members.npy``) index the shadow
dataset; their row of the fleet's membership matrix over the target's positions is all False.
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


def fleet_name(f: "FleetConfig", source: dict[str, Any] | None = None) -> str:
    """The fleet's name in the store (``fleets/<name>``, members ``models/fleet-<name>/<i>``); ``source``
    (:func:`shadow_source`) appends the hash of the audit shadows' other dataset or architecture."""
    if f.kind == "shadow":
        return f"shadow-{f.policy}" + (f"-{short_hash(source)}" if source else "")
    if f.kind == "unlearned":
        return f"unlearned-{f.method.name}-{short_hash(f.method.model_dump())}"
    return "retrain"


def member_key(f: "FleetConfig", i: int, source: dict[str, Any] | None = None) -> str:
    return f"fleet-{fleet_name(f, source)}/{i:04d}"


def shadow_source(cfg: "ExperimentConfig") -> dict[str, Any] | None:
    """What makes the audit's shadows other than in-distribution shadows of the target's architecture:
    ``audit.shadow_data`` (dataset, loader options, pool size; not its root, a machine path: the
    members' manifests hold the data's content fingerprint) and ``audit.shadow_model``; None when
    neither is set (the keys of in-distribution shadows stay what they were)."""
    a = cfg.audit
    if a.shadow_data is None and a.shadow_model is None:
        return None
    data = None if a.shadow_data is None else a.shadow_data.model_dump(exclude={"root"})
    return {"shadow_data": data, "shadow_model": None if a.shadow_model is None else a.shadow_model.model_dump()}


def _audit_fleet(cfg: "ExperimentConfig") -> "FleetConfig":
    from expunge.config import FleetConfig

    return FleetConfig(kind="shadow", policy="out_only", size=cfg.audit.shadows, fraction=cfg.audit.shadow_fraction,
                       cpus_per_model=cfg.fleet.cpus_per_model, gpus_per_model=cfg.fleet.gpus_per_model,
                       max_retries=cfg.fleet.max_retries)


def _source(ex: Experiment) -> dict[str, Any] | None:
    """:func:`shadow_source` when ``ex`` trains the audit's shadow fleet (its fleet is exactly the one
    :func:`audit_shadow_config` makes, i.e. the same store keys), else None."""
    cfg = ex.cfg
    if not cfg.audit.shadows or cfg.fleet != _audit_fleet(cfg):
        return None
    return shadow_source(cfg)


def _key(ex: Experiment, i: int) -> str:
    return member_key(ex.cfg.fleet, i, _source(ex))


def _ood(ex: Experiment) -> bool:
    """Whether ``ex``'s fleet members train on ``audit.shadow_data`` (not on the target's positions)."""
    source = _source(ex)
    return source is not None and source["shadow_data"] is not None


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
        # OOD shadows: positions of audit.shadow_data, not of the target
        pool = ex.shadow_pool_of_shadow_data() if _ood(ex) else plan.shadow_pool
        return out_only_subset(pool, f.fraction, seeds.out_only_member(ex.cfg.seed, i))
    universe = np.sort(np.concatenate([plan.indices[s] for s in f.universe]))
    return balanced_member(universe, i, ex.cfg.seed)


def member_config(ex: Experiment, i: int) -> dict[str, Any]:
    f = ex.cfg.fleet
    config = {"role": f"fleet-{f.kind}", "policy": f.policy if f.kind == "shadow" else None,
              "universe": f.universe if f.kind == "shadow" and f.policy == "balanced" else None,
              "fraction": f.fraction if f.kind == "shadow" and f.policy == "out_only" else None, "member": i,
              # batched members equal sequential ones only up to float reassociation: never mix the two
              "batched": f.ensemble > 1}
    source = _source(ex)
    if source is None:
        return config
    if source["shadow_data"] is not None:  # the data's content, not only its name: other files, other shadows
        config["shadow_data"] = {**source["shadow_data"], "name": ex.shadow_dataset.name,
                                 "fingerprint": ex.shadow_dataset.fingerprint}
    if source["shadow_model"] is not None:
        config["shadow_model"] = source["shadow_model"]
        # the manifest's model is the shadow's own architecture (Experiment.load_model rebuilds it from here)
        config["model"] = {"name": source["shadow_model"]["name"], "kwargs": source["shadow_model"]["kwargs"],
                           "weights": None}
    return config


def train_member(ex: Experiment, i: int) -> Artifact:
    """Train (or reuse) member i."""
    f = ex.cfg.fleet
    seed = member_seed(ex, i)
    if f.kind != "unlearned" and _source(ex) is not None:
        return _train_audit_shadow(ex, i, seed)
    if f.kind != "unlearned":
        return ex.trained(member_key(ex.cfg.fleet, i), member_indices(ex, i), seed, member_config(ex, i), f"fleet-{f.kind}")
    original = ex.trained(f"fleet-original/{i:04d}", ex.plan.train, seed, {"role": "fleet-original", "member": i},
                          "fleet-original")
    return ex.unlearn(f.method, original=original, key=member_key(ex.cfg.fleet, i), seed=seed)


def _train_audit_shadow(ex: Experiment, i: int, seed: int) -> Artifact:
    """Audit shadow i of another dataset and/or architecture: trained with the ``train`` recipe on its
    positions of ``audit.shadow_data`` (else of the target's shadow pool), with the ``audit.shadow_model``
    architecture (else the target's); an OOD shadow also stores its logits on its own training samples
    (:meth:`~expunge.experiment.Experiment.shadow_own_files`), IAM-Off's anchor."""
    from expunge.train.engine import train

    indices = member_indices(ex, i)
    ood = _ood(ex)
    data = ex.shadow_data if ood else ex.data
    own: dict[str, Any] = {}  # filled by fit; Experiment.trained reads it after fit ran

    def fit(model):
        history = train(model, data, indices, ex.cfg.train, seed=seed)
        if ood:
            own.update(ex.shadow_own_files(model, indices))
        return history

    return ex.trained(_key(ex, i), indices, seed, member_config(ex, i), "fleet-shadow", extra_files=own, fit=fit,
                      factory=ex.shadow_model_factory)


def train_members_batched(ex: Experiment, members: list[int]) -> list[Artifact]:
    """Train (or reuse) ``members`` together as one batched ensemble (:mod:`expunge.train.ensemble`);
    each is stored as its own artifact, exactly as :func:`train_member` stores it."""
    import time

    from expunge.train.engine import seed_everything
    from expunge.train.ensemble import train_ensemble

    if _source(ex) is not None:  # never reached: the audit's shadow fleet trains one model per task
        raise ValueError("the audit's shadows of another dataset or architecture train one model per task")
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
        key = _key(ex, i)
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
    source = _source(ex)
    if _ood(ex):  # trained on another dataset: OUT for every target position
        matrix = np.zeros((k, len(ex.dataset)), dtype=bool)
    else:
        matrix = membership_matrix([member_indices(ex, i) for i in range(k)], len(ex.dataset))
    config = ex.cfg.fleet.model_dump() if source is None else {**ex.cfg.fleet.model_dump(), "shadow_source": source}
    return ex.store.put("fleets", fleet_name(ex.cfg.fleet, source), {"membership.npy": matrix,
                                                   "members.json": [_key(ex, i) for i in range(k)]},
                        config=config, split_hash=ex.plan.hash, seed=ex.cfg.seed, replace=True, repair=ex.rebuild,
                        code_version=code_version("fleet"))


def audit_shadow_config(cfg: "ExperimentConfig") -> "ExperimentConfig":
    """The config of the audit's OUT-only shadow fleet (``audit.shadows`` models on the shadow pool, or
    on ``audit.shadow_data``; of ``audit.shadow_model`` when set)."""
    return cfg.model_copy(update={"fleet": _audit_fleet(cfg)})


def audit_shadow_keys(ex: Experiment) -> list[str]:
    """The store keys of the audit's shadow models."""
    fleet = _audit_fleet(ex.cfg)
    return [member_key(fleet, i, shadow_source(ex.cfg)) for i in range(ex.cfg.audit.shadows)]
