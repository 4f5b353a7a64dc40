"""Driver of tests/test_multinode.py, run in its own process: a 3-node Ray cluster on 127.0.0.1
(``ray.cluster_utils.Cluster``), fleets, Ray Train and sweeps on it, one node removed mid-fleet and
one mid-sweep.

Nodes: the head (1 CPU, no GPU) and two workers (2 CPUs and one stand-in GPU each: Ray only counts
GPUs, so tasks asking for a fraction of one are placed as on a GPU cluster, and run on the CPU).
Writes a JSON of what ran where to the path in argv[1]; argv[2] is the storage root, argv[3] the repo.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from expunge.resolve import load_config
from expunge.stages.fleet import run_fleet
from expunge.stages.original import run_original
from expunge.sweep.runner import run_sweep

out, storage, repo = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
faults = Path(os.environ["EXPUNGE_FAULTS"])
FLEET = ["train.epochs=3", "fleet.kind=shadow", "fleet.size=4", "fleet.cpus_per_model=0.5",
         "fleet.gpus_per_model=0.5", "fleet.max_retries=3"]


def config(name: str, *extra: str):
    return load_config(repo / "configs/experiments/digits.yaml", [f"storage={storage / name}", *extra])


def weights(run: Path) -> dict[str, str]:
    return {str(p.parent.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.glob("models/fleet-*/**/weights.safetensors"))}


def started_on(node: str, site: str = "member_start") -> bool:
    log = faults / f"{site}.log"
    return log.exists() and any(line.endswith(f":{node}") for line in log.read_text().split())


def trial_nodes() -> list[str]:
    log = faults / "trial_start.log"
    return [line.split(":", 1)[1] for line in log.read_text().split()] if log.exists() else []


def sweep_config(name: str):
    """Four fractional-GPU trials at once (FIFO: every trial runs all its epochs, so two sweeps with
    the same seed give the same rows whatever order trials finish in); the references (original,
    retrained model) are made once, by the first sweep, in the run both share."""
    path = storage / f"{name}.yaml"
    path.write_text(f"""base: {repo}/configs/experiments/digits.yaml
storage: {storage / "sweep"}
train: {{epochs: 3}}
sweep:
  name: {name}
  methods:
    - name: finetune
      params: {{min_steps: 0}}
      space: {{lr: {{loguniform: [1.0e-3, 0.1]}}, epochs: 3}}
  num_samples: 4
  max_concurrent: 4
  scheduler: fifo
  cpus_per_trial: 0.5
  gpus_per_trial: 0.5
  max_failures: 3
  metrics: [accuracy]
""")
    return load_config(path)


def rows(result: dict) -> list[dict]:
    """The sweep's trial rows without their timings (run times differ between any two runs)."""
    table = result["table"]
    keep = ["param.lr", "status", "objective", "UA", "RA", "TA", "avg_gap"]
    return table[keep].sort_values("param.lr").to_dict("records")


# quick detection of a dead node (Ray's defaults take ~30 s), so a lost node's tasks are retried soon
system = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000, "health_check_failure_threshold": 3}
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": system})
result: dict = {}
try:
    workers = [cluster.add_node(num_cpus=2, num_gpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    result.update(head=cluster.head_node.node_id, workers=[w.node_id for w in workers])
    # 1. a fleet of fractional-GPU members: only the GPU nodes can take them, two at a time each
    placed = run_fleet(config("placed", *FLEET), use_ray=True)
    result["placed"] = placed["nodes"]
    result["placed_weights"] = weights(storage / "placed" / "digits")

    # 2. the same fleet again while one worker node is removed as soon as a member runs on it
    (faults / "member_start.log").unlink(missing_ok=True)
    done: dict = {}
    runner = threading.Thread(target=lambda: done.update(run_fleet(config("lost", *FLEET), use_ray=True)))
    runner.start()
    lost = workers[1].node_id
    deadline = time.time() + 300  # a guard against a hang, not a timing claim
    while not started_on(lost) and runner.is_alive() and time.time() < deadline:
        time.sleep(0.05)
    result["removed_while_running"] = started_on(lost) and runner.is_alive()
    cluster.remove_node(workers[1], allow_graceful=False)
    runner.join()
    result["lost"] = done.get("nodes")
    result["lost_weights"] = weights(storage / "lost" / "digits")
    result["alive_after"] = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])

    # 3. Ray Train's original with its two DDP workers spread over two nodes; worker 1 dies shortly
    # after reporting epoch 2, and FailureConfig restarts the group from the last checkpoint
    workers.append(cluster.add_node(num_cpus=2, num_gpus=1))
    cluster.wait_for_nodes()
    for name in ("train_node.log", "train_worker.log", "train_worker.fired"):
        (faults / name).unlink(missing_ok=True)
    (faults / "train_worker.arm").write_text("rank=1 epoch=2")
    train_cfg = config("train", "train.epochs=10", "scaling.num_workers=2", "scaling.max_failures=1",
                       "scaling.placement_strategy=SPREAD")
    trained = run_original(train_cfg, use_ray=True)
    result["train"] = (faults / "train_node.log").read_text().split()  # rank:node per start, in order
    result["train_fired"] = (faults / "train_worker.fired").exists()
    result["train_resumed"] = (faults / "train_worker.log").read_text().split()
    result["train_content_hash"] = trained["content_hash"]
    result["train_again_content_hash"] = run_original(train_cfg, use_ray=True)["content_hash"]  # reused

    # 4. a sweep's trials spread over the two GPU nodes; then the same sweep while a GPU node is removed
    # as soon as a trial runs on it: Tune retries that trial on the surviving node
    gpu_nodes = [workers[0].node_id, workers[2].node_id]
    (faults / "trial_start.log").unlink(missing_ok=True)
    result["sweep_rows"] = rows(run_sweep(sweep_config("placed"), use_ray=True))
    result["sweep_nodes"] = trial_nodes()
    result["sweep_gpu_nodes"] = gpu_nodes
    (faults / "trial_start.log").unlink(missing_ok=True)
    swept: dict = {}
    runner = threading.Thread(target=lambda: swept.update(run_sweep(sweep_config("lost"), use_ray=True)))
    runner.start()
    deadline = time.time() + 300  # a guard against a hang, not a timing claim
    while not started_on(gpu_nodes[1], "trial_start") and runner.is_alive() and time.time() < deadline:
        time.sleep(0.05)
    result["sweep_removed_while_running"] = started_on(gpu_nodes[1], "trial_start") and runner.is_alive()
    cluster.remove_node(workers[2], allow_graceful=False)
    runner.join()
    result["sweep_lost_rows"] = rows(swept) if swept else None
    result["sweep_lost_nodes"] = trial_nodes()
finally:
    out.write_text(json.dumps(result))
    ray.shutdown()
    cluster.shutdown()
