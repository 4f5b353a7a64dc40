"""A SIGKILLed command leaves none of its embedded Ray's processes behind (expunge.distributed.reaper)."""
from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

CHILD = """
from expunge.distributed import init_ray

ray = init_ray(num_cpus=1)

@ray.remote
def ping():
    return 1

assert ray.get(ping.remote()) == 1  # a worker is up: GCS, raylet, agents and a worker all run
print("READY", flush=True)
import time
time.sleep(3600)
"""


def _psutil():
    import ray  # noqa: F401  (Ray puts its vendored psutil on sys.path)
    import psutil

    return psutil


def test_killed_driver_leaves_no_ray_process():
    psutil = _psutil()
    tmp = tempfile.mkdtemp(prefix="xr")  # short: Ray's unix sockets live under it
    env = {**os.environ, "TMPDIR": tmp}
    proc = subprocess.Popen([sys.executable, "-c", CHILD], env=env, cwd=tmp, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    tree = []
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [*map(lines.put, proc.stdout), lines.put("")], daemon=True).start()
        line = "-"
        while line and not line.startswith("READY"):
            try:  # a guard against a hang, not a timing assertion
                line = lines.get(timeout=400)
            except queue.Empty:
                break
        assert line.startswith("READY"), "no embedded Ray came up"
        root = psutil.Process(proc.pid)
        tree = root.children(recursive=True)
        reapers = [p for p in tree if any(a.endswith("reaper.py") for a in p.cmdline())]
        ray_procs = [p for p in tree if p not in reapers]
        names = {p.name() for p in ray_procs}
        assert len(reapers) == 1, [p.cmdline() for p in tree]
        assert {"gcs_server", "raylet"} <= names and any("DashboardAgent" in n for n in names), names
        # the reaper records the tree twice a second: give it several polls, then kill the driver outright
        time.sleep(3)
        proc.kill()
        proc.wait()
        reapers[0].wait(timeout=120)  # it exits once it has killed what it recorded
        _, alive = psutil.wait_procs(ray_procs, timeout=10)
        alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"left running after the driver was killed: {[p.name() for p in alive]}"
    finally:
        for p in [proc, *tree]:
            try:
                p.kill()
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def test_descendants_and_ray_filter_read_proc():
    from expunge.distributed import reaper

    if not Path("/proc/self/stat").exists():
        pytest.skip("no /proc on this system")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        tree = reaper.descendants(os.getpid())
        assert child.pid in tree and os.getpid() not in tree
        assert not reaper.is_ray(child.pid)  # a plain child of the program is never a target
    finally:
        child.kill()
        child.wait()
