"""End to end on a real local cluster: `ray start --head` on 127.0.0.1, `ray job submit` of the digits
pipeline with the example runtime environment, then the cluster this test started is stopped (by PID:
`ray stop` would also stop other Ray instances on the machine)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def processes_with(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmd:
                pids.append(int(entry.name))
    return pids


def stop_cluster(temp_dir: str) -> None:
    """Every head process carries the cluster's temp dir on its command line; workers die with the raylet."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in processes_with(temp_dir):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 15
        while time.time() < deadline and processes_with(temp_dir):
            time.sleep(0.5)
    assert not processes_with(temp_dir), "processes of the test cluster survived"


def test_pipeline_under_ray_job_submit(repo_root, tmp_path):
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip("the ray command is not installed beside this Python")
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
           "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{ray_bin.parent}:{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    # a short temp dir: Ray's unix socket paths must stay under 107 characters
    temp_dir = f"/tmp/expunge-e2e-{os.getpid()}"
    gcs, dash, agent_http, agent_grpc, metrics, rt_env, node_mgr, obj_mgr, client = free_ports(9)
    start = [str(ray_bin), "start", "--head", "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
             f"--port={gcs}", f"--dashboard-port={dash}", f"--dashboard-agent-listen-port={agent_http}",
             f"--dashboard-agent-grpc-port={agent_grpc}", f"--metrics-export-port={metrics}",
             f"--runtime-env-agent-port={rt_env}", f"--node-manager-port={node_mgr}",
             f"--object-manager-port={obj_mgr}", f"--ray-client-server-port={client}",
             "--num-cpus=2", "--disable-usage-stats", f"--temp-dir={temp_dir}"]
    try:
        proc = subprocess.run(start, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        storage = tmp_path / "runs"
        submit = [str(ray_bin), "job", "submit", "--address", f"http://127.0.0.1:{dash}", "--working-dir",
                  str(repo_root), "--runtime-env", str(repo_root / "configs/cluster/runtime_env.yaml"), "--",
                  "python", "-m", "expunge.jobs.pipeline", "--config", "configs/experiments/digits.yaml",
                  f"storage={storage}", "train.epochs=8", "unlearn.methods=[retrain,finetune]", "audit.shadows=2",
                  "unlearn.min_steps=0"]
        for attempt in range(10):  # the job agent may need a few seconds after `ray start` returns
            job = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=600, cwd=repo_root)
            if "No available agent" not in job.stderr + job.stdout:
                break
            time.sleep(3)
        out = job.stdout + job.stderr
        assert job.returncode == 0 and "succeeded" in out, out[-4000:]
        run = storage / "digits"
        assert f"run directory: {run}" in out  # the job prints where its artifacts are
        for artifact in ("split/plan", "models/original", "audit/results", "reports/summary"):
            assert (run / artifact / "manifest.json").is_file(), artifact
        board = (run / "audit/results/leaderboard.csv").read_text()
        assert "retrain" in board and "finetune" in board and "avg_gap" in board
        # a relative storage would land in the job's temporary package folder: refused in one line
        relative = [*submit[:submit.index(f"storage={storage}")], "storage=runs"]
        job = subprocess.run(relative, env=env, capture_output=True, text=True, timeout=300, cwd=repo_root)
        out = job.stdout + job.stderr
        assert job.returncode != 0 and "storage='runs' is relative" in out and "Traceback" not in out, out[-3000:]
    finally:
        stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
