"""Fleets: balanced membership, parallel members, reuse, growth, refusal of stale members."""
from __future__ import annotations

import numpy as np
import pytest

from expunge.resolve import load_config
from expunge.stages.fleet import run_fleet
from expunge.errors import ArtifactError, ConfigError
from expunge.fleet.membership import balanced_member, membership_matrix, out_only_subset
from expunge.store import Store

FAST = ["train.epochs=2", "audit.shadows=0", "audit.metrics=[accuracy]"]


def test_balanced_membership_and_growth():
    universe = np.arange(10, 110)
    members = [balanced_member(universe, i, seed=3) for i in range(6)]
    matrix = membership_matrix(members, 120)
    assert (matrix[:, universe].sum(axis=0) == 3).all()  # every sample IN for exactly half of 6
    assert not matrix[:, :10].any() and not matrix[:, 110:].any()
    # pairs are complementary, and growing the fleet never changes earlier members
    assert set(members[0]) | set(members[1]) == set(universe) and not set(members[0]) & set(members[1])
    assert all(np.array_equal(balanced_member(universe, i, 3), members[i]) for i in range(4))


def test_out_only_subset():
    pool = np.arange(50, 90)
    a = out_only_subset(pool, 0.5, [1, 2])
    assert len(a) == 20 and set(a) <= set(pool) and np.array_equal(a, out_only_subset(pool, 0.5, [1, 2]))


def _cfg(repo_root, tmp_path, *extra):
    return load_config(repo_root / "configs/experiments/digits.yaml", [f"storage={tmp_path}", *FAST, *extra])


@pytest.mark.slow
def test_fleet_reuse_grow_and_refuse(repo_root, tmp_path):
    cfg = _cfg(repo_root, tmp_path, "fleet.kind=shadow", "fleet.size=2")
    run_fleet(cfg, use_ray=False)
    store = Store(str(tmp_path / "digits"))
    first = store.get("models", "fleet-shadow-balanced/0000").manifest
    grown = _cfg(repo_root, tmp_path, "fleet.kind=shadow", "fleet.size=4")
    res = run_fleet(grown, use_ray=False)
    assert len(res["members"]) == 4
    again = store.get("models", "fleet-shadow-balanced/0000").manifest
    assert (again["created"], again["content_hash"]) == (first["created"], first["content_hash"])
    fleet = store.get("fleets", "shadow-balanced", verify=True)
    m = fleet.read("membership.npy")
    plan_train = store.get("split", "plan").read("train.npy")
    assert m.shape == (4, 1797) and (m[:, plan_train].sum(axis=0) == 2).all()
    # outputs of every member are cached for the audits
    assert store.get("outputs", "fleet-shadow-balanced/0003") is not None
    stale = _cfg(repo_root, tmp_path, "fleet.kind=shadow", "fleet.size=4", "train.lr=0.01")
    # a changed recipe changes the original's config too, so refuse members before any training
    with pytest.raises(ArtifactError, match="fleet-shadow-balanced/0000"):
        from expunge.experiment import Experiment
        from expunge.fleet.members import check_members

        check_members(Experiment(stale))


@pytest.mark.slow
def test_retrain_and_unlearned_fleets(repo_root, tmp_path):
    run_fleet(_cfg(repo_root, tmp_path, "fleet.kind=retrain", "fleet.size=2"), use_ray=False)
    res = run_fleet(_cfg(repo_root, tmp_path, "fleet.kind=unlearned", "fleet.size=2",
                         "fleet.method={name: finetune, params: {epochs: 1}}"), use_ray=False)
    store = Store(str(tmp_path / "digits"))
    assert store.get("models", "fleet-original/0001") is not None
    seeds = {store.get("models", k).manifest["seed"] for k in res["members"]}
    assert len(seeds) == 2  # each member from its own original and seed
    forget = store.get("split", "plan").read("forget.npy")
    m = store.get("fleets", "retrain").read("membership.npy")
    assert not m[:, forget].any() and m.sum(axis=1).min() > 0
    # with both fleets stored, the challenge's per-example epsilon over D_f
    eps_art = next(store.get("audit", k) for k in store.keys("audit") if k.startswith("epsilon-unlearned-finetune"))
    eps = eps_art.read("epsilon.npy")
    summary = eps_art.read("summary.json")
    assert eps.shape == forget.shape and np.nanmax(eps) <= 50 and 0 <= summary["forget_score"] <= 1


@pytest.mark.slow
@pytest.mark.ray
def test_fleet_on_ray(repo_root, tmp_path, ray_local):
    res = run_fleet(_cfg(repo_root, tmp_path, "fleet.kind=shadow", "fleet.policy=out_only", "fleet.size=2",
                         "fleet.cpus_per_model=1"), use_ray=True)
    assert res["members"] == ["fleet-shadow-out_only/0000", "fleet-shadow-out_only/0001"]


@pytest.mark.parametrize("override, needle", [
    (["fleet.kind=unlearned", "fleet.size=2"], "fleet.method"),
    (["fleet.kind=shadow", "fleet.method={name: ga}"], "fleet.method"),
    (["fleet.kind=shadow", "fleet.size=2", "data.sizes.shadow_pool=0.0"], "data.sizes.shadow_pool"),
    (["fleet.gpus_per_model=-1"], "fleet.gpus_per_model"),
])
def test_fleet_config_errors(repo_root, tmp_path, override, needle):
    with pytest.raises(ConfigError, match=needle):
        _cfg(repo_root, tmp_path, *override)


def test_fleet_size_zero_refused(repo_root, tmp_path):
    with pytest.raises(ConfigError, match="fleet.size"):
        run_fleet(_cfg(repo_root, tmp_path), use_ray=False)


@pytest.mark.slow
@pytest.mark.ray
def test_killed_member_worker_is_retried(repo_root, tmp_path, ray_local, faults):
    """A worker dying mid-fleet (os._exit in member 1's task) is retried; the fleet completes."""
    fired = faults.arm("member", member=1)
    res = run_fleet(_cfg(repo_root, tmp_path, "fleet.kind=shadow", "fleet.policy=out_only", "fleet.size=3",
                         "fleet.max_retries=2"), use_ray=True)
    assert fired.exists()  # the worker really died once
    assert len(res["members"]) == 3
    assert Store(str(tmp_path / "digits")).get("fleets", "shadow-out_only", verify=True) is not None


@pytest.mark.slow
def test_interrupted_fleet_resumes_to_the_same_result(repo_root, tmp_path):
    """Members 0..K-1 of an interrupted run are reused, the missing one retrained, and the final
    membership and logits equal an uninterrupted run with the same seeds."""
    import shutil

    a, b = tmp_path / "a", tmp_path / "b"
    run_fleet(_cfg(repo_root, a, "fleet.kind=shadow", "fleet.size=3"), use_ray=False)
    run_fleet(_cfg(repo_root, b, "fleet.kind=shadow", "fleet.size=3"), use_ray=False)
    sb = Store(str(b / "digits"))
    kept = sb.get("models", "fleet-shadow-balanced/0000").manifest["created"]
    # "kill" run b after member 1: member 2 and the membership matrix never got written
    shutil.rmtree(b / "digits" / "models" / "fleet-shadow-balanced" / "0002")
    shutil.rmtree(b / "digits" / "outputs" / "fleet-shadow-balanced" / "0002")
    shutil.rmtree(b / "digits" / "fleets")
    run_fleet(_cfg(repo_root, b, "fleet.kind=shadow", "fleet.size=3"), use_ray=False)
    sa = Store(str(a / "digits"))
    assert sb.get("models", "fleet-shadow-balanced/0000").manifest["created"] == kept
    np.testing.assert_array_equal(sa.get("fleets", "shadow-balanced").read("membership.npy"),
                                  sb.get("fleets", "shadow-balanced").read("membership.npy"))
    for i in range(3):
        la = sa.get("outputs", f"fleet-shadow-balanced/{i:04d}").read("logits_forget.npy")
        lb = sb.get("outputs", f"fleet-shadow-balanced/{i:04d}").read("logits_forget.npy")
        np.testing.assert_allclose(la, lb, rtol=0, atol=1e-5)  # CPU training is deterministic per seed
