"""Multi-node Ray on one machine: fleets spread over nodes, placement by fractional GPUs, a node lost
mid-fleet, Ray Train's workers on two nodes surviving a lost worker (driver: tests/multinode_script.py,
in its own process, so the local Ray the other tests share is left alone). One cluster for all of
them: each start of a cluster or of a TorchTrainer costs ~20 s."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory, repo_root):
    root = tmp_path_factory.mktemp("multinode")
    faults = root / "faults"
    faults.mkdir()
    out = root / "result.json"
    # a short TMPDIR: every node's unix sockets live under it (107 bytes at most)
    tmp = tempfile.mkdtemp(prefix="xr")
    env = {**os.environ, "EXPUNGE_FAULTS": str(faults), "TMPDIR": tmp}
    try:
        proc = subprocess.run([sys.executable, str(repo_root / "tests/multinode_script.py"), str(out),
                               str(root / "runs"), str(repo_root)], env=env, cwd=root, capture_output=True, text=True,
                              timeout=900)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {**json.loads(out.read_text()), "root": str(root)}


def test_fractional_gpu_members_run_on_the_gpu_nodes_only_and_on_both(cluster_run):
    nodes = cluster_run["placed"]
    assert len(nodes) == 4
    # the head has no GPU: 0.5-GPU members can only go to the two worker nodes, two at a time on each,
    # so four members submitted at once need both
    assert set(nodes.values()) == set(cluster_run["workers"])


def test_a_node_lost_mid_fleet_costs_no_member_and_changes_no_weight(cluster_run):
    assert cluster_run["removed_while_running"], "the node was not removed while a member ran on it"
    lost = cluster_run["workers"][1]
    assert lost not in cluster_run["alive_after"]
    assert cluster_run["lost"] is not None and len(cluster_run["lost"]) == 4
    assert lost not in cluster_run["lost"].values()  # every member finished on a surviving node
    # each member is the model an undisturbed run made, bit for bit
    assert len(cluster_run["placed_weights"]) == 4
    assert cluster_run["lost_weights"] == cluster_run["placed_weights"]


def test_ray_train_workers_spread_over_two_nodes_and_survive_a_lost_worker(cluster_run):
    """Ray Train's original: two DDP workers on two nodes (``placement_strategy=SPREAD``); worker 1
    dies shortly after reporting epoch 2, FailureConfig restarts the group and both workers resume
    from the last registered checkpoint (epoch 1 or 2), never from scratch. The finished run learns
    digits from two half-shards, keeps per-epoch checkpoints in the run's storage, and is stored as the
    original, which a second call reuses without starting Ray Train."""
    from expunge.store import Store

    starts: dict[str, list[str]] = {}  # each rank's node, once per start of the worker group
    for line in cluster_run["train"]:
        rank, node = line.split(":", 1)
        starts.setdefault(rank, []).append(node)
    assert set(starts) == {"0", "1"} and len(starts["0"]) == len(starts["1"]) == 2  # the first start, the restart
    # in every start the two ranks are on different nodes (a restart may place them anew)
    assert all(a != b for a, b in zip(starts["0"], starts["1"]))
    assert cluster_run["train_fired"]
    resumed = sorted(cluster_run["train_resumed"])
    assert len(resumed) == 2 and {r.split(":")[0] for r in resumed} == {"0", "1"}
    epochs = {int(r.split(":")[1]) for r in resumed}
    assert len(epochs) == 1 and epochs <= {1, 2}
    run = Path(cluster_run["root"]) / "runs" / "train" / "digits"
    store = Store(str(run))
    art = store.get("models", "original", verify=True)
    assert art.manifest["content_hash"] == cluster_run["train_content_hash"] == cluster_run["train_again_content_hash"]
    outputs = store.get("outputs", "original")
    assert (outputs.read("logits_test.npy").argmax(1) == outputs.read("labels_test.npy")).mean() >= 0.85
    assert list((run / "ray_train").rglob("weights.safetensors"))  # per-epoch checkpoints


def test_sweep_trials_spread_over_the_gpu_nodes_and_survive_a_lost_node(cluster_run):
    """Four 0.5-GPU trials at once fit only on both GPU nodes together; a GPU node removed while a
    trial runs on it costs no trial (Tune retries it on the surviving node) and changes no result."""
    gpu_nodes = set(cluster_run["sweep_gpu_nodes"])
    assert len(cluster_run["sweep_nodes"]) == 4 and set(cluster_run["sweep_nodes"]) == gpu_nodes
    placed = cluster_run["sweep_rows"]
    assert len(placed) == 4 and all(r["status"] == "completed" for r in placed)
    assert len({r["param.lr"] for r in placed}) == 4

    assert cluster_run["sweep_removed_while_running"], "the node was not removed while a trial ran on it"
    lost = cluster_run["sweep_gpu_nodes"][1]
    started = cluster_run["sweep_lost_nodes"]
    # each trial that started on the lost node started once more, on the surviving node
    assert lost in started and len(started) == 4 + started.count(lost)
    # the same four trials, every one completed, with the undisturbed sweep's numbers
    assert cluster_run["sweep_lost_rows"] == placed
