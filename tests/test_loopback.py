"""Ray started by expunge listens on the loopback interface only (no traffic to other addresses), with
or without the Ray variables exported, and starts its own instance unless an address is given."""
from __future__ import annotations

import ipaddress
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[1]


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is IPv4 loopback on a dual-stack socket
    return (mapped or addr).is_loopback


def _psutil():
    import ray  # noqa: F401  (psutil is a dependency of ray[default]; Ray also puts its vendored copy on sys.path)
    import psutil

    return psutil


def _listeners(pids: set[int]) -> list:
    psutil = _psutil()
    return [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in pids]


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without a single RAY_* variable: what a user's shell looks like."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_")}, **extra}


def _free_loopback_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_loopback_helper():
    assert _loopback("127.0.0.1") and _loopback("::1") and _loopback("::ffff:127.0.0.1")
    wildcard = str(ipaddress.IPv4Address(0))  # every interface: what a listener must never bind to here
    assert not _loopback(wildcard) and not _loopback("10.1.2.3") and not _loopback("::")


def test_every_ray_listener_is_loopback(ray_local):
    psutil = _psutil()
    ctx = ray_local.get_runtime_context()
    assert ctx.gcs_address.split(":")[0] == "127.0.0.1"
    assert {n["NodeManagerAddress"] for n in ray_local.nodes()} == {"127.0.0.1"}
    instance_dir = ray_local._private.worker._global_node.get_session_dir_path()
    # this instance only: its GCS and raylet name its temp directory on their command line, and its workers
    # and agents descend from them (a bare "ray::" title would also match another Ray on the machine)
    ray_pids = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if instance_dir in " ".join(proc.info["cmdline"] or []):
            try:
                ray_pids |= {proc.pid, *(c.pid for c in proc.children(recursive=True))}
            except psutil.NoSuchProcess:
                pass
    listeners = _listeners(ray_pids)
    assert listeners, "found no listening sockets of this Ray instance"
    exposed = [(c.pid, c.laddr) for c in listeners if not _loopback(c.laddr.ip)]
    assert not exposed, f"Ray listens beyond loopback: {exposed}"


@pytest.mark.parametrize("entrypoint", ["expunge.cli", "expunge.jobs.pipeline", "expunge.runtime"])
def test_every_entrypoint_sets_the_loopback_flag_before_ray_is_imported(entrypoint):
    """Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, at import: importing any entrypoint (the CLI,
    a `python -m expunge.jobs.*` module, the library) in a shell without it must leave Ray's copy off."""
    code = ("import importlib, sys; importlib.import_module(sys.argv[1]); "
            "from ray._private import ray_constants; print(ray_constants.ENABLE_RAY_CLUSTER)")
    res = subprocess.run([sys.executable, "-c", code, entrypoint], env=_clean_env(), cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "False"


CHILD = """
import sys
from expunge.runtime import init_ray

ray = init_ray(num_cpus=1)

@ray.remote
def ping():
    return 1

assert ray.get(ping.remote()) == 1  # a worker is up, so every kind of Ray process is listening
print("READY", ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.readline()
ray.shutdown()
"""


@pytest.mark.slow
def test_clean_environment_embedded_ray_is_loopback_only_and_ignores_a_stale_cluster():
    """The library API in a shell with no RAY_* variable, on a machine where a `ray start` head died
    without `ray stop` (its address file names a dead GCS): the embedded Ray starts its own instance,
    and every listener of the whole process tree (driver, GCS, raylet, agents, workers) is on loopback.
    Then the driver is SIGKILLed: none of its Ray processes stays behind (without the watcher, Ray's
    dashboard and runtime-env agents linger, orphaned, for about a minute)."""
    psutil = _psutil()
    # Ray finds its temp dir (and the address file in it) through TMPDIR; short, for its unix sockets
    tmp = tempfile.mkdtemp(prefix="xr")
    stale = f"127.0.0.1:{_free_loopback_port()}"
    Path(tmp, "ray").mkdir()
    Path(tmp, "ray", "ray_current_cluster").write_text(stale)
    log = Path(tmp, "child.err")
    tree: list[psutil.Process] = []
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", CHILD], env=_clean_env(TMPDIR=tmp), cwd=tmp,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [*map(lines.put, proc.stdout), lines.put("")], daemon=True).start()
        line = "-"
        while line and not line.startswith("READY"):  # "" once the child's stdout closed
            try:  # a guard against a hang (a dead GCS is retried for minutes), not a timing assertion
                line = lines.get(timeout=400)
            except queue.Empty:
                break
        assert line.startswith("READY"), f"no embedded Ray came up: {log.read_text()[-3000:]}"
        root = psutil.Process(proc.pid)
        tree = [root, *root.children(recursive=True)]
        names = {p.name() for p in tree}
        assert {"gcs_server", "raylet"} <= names, names
        listeners = _listeners({p.pid for p in tree})
        owners = {psutil.Process(c.pid).name() for c in listeners}
        assert {"gcs_server", "raylet"} <= owners and any("DashboardAgent" in o for o in owners), owners
        exposed = [(psutil.Process(c.pid).name(), c.laddr) for c in listeners if not _loopback(c.laddr.ip)]
        assert not exposed, f"Ray listens beyond loopback: {exposed}"
        gcs = line.split()[1]
        assert gcs != stale and gcs.startswith("127.0.0.1:")
        # killed outright, the driver leaves no Ray process behind (expunge.runtime.reaper): its
        # watcher, which records the tree twice a second, stops them and then exits itself
        reapers = [p for p in tree if any(a.endswith("reaper.py") for a in p.cmdline())]
        assert len(reapers) == 1, [p.cmdline() for p in tree]
        time.sleep(3)
        proc.kill()
        proc.wait()
        reapers[0].wait(timeout=120)
        _, alive = psutil.wait_procs([p for p in tree if p not in reapers], timeout=10)
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


def test_no_address_starts_a_private_local_ray(monkeypatch):
    """Without --address or RAY_ADDRESS, ray.init gets address="local": Ray's default (None) would join
    whatever cluster its address file names, alive or not."""
    import ray

    from expunge.runtime import ray_env

    seen = {}
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.update(kw))
    ray_env.init_ray(num_cpus=1)
    assert seen["address"] == "local"
    assert seen["_node_ip_address"] == seen["dashboard_host"] == "127.0.0.1"


@pytest.mark.parametrize("how", ["argument", "RAY_ADDRESS"])
def test_unreachable_address_is_one_line_naming_it(monkeypatch, how):
    import ray

    from expunge.runtime import ray_env
    from expunge.errors import ExpungeError

    address = f"127.0.0.1:{_free_loopback_port()}"

    def never(**kw):
        raise AssertionError(f"ray.init reached with an unreachable address: {kw}")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", never)
    if how == "argument":
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        call, source = (lambda: ray_env.init_ray(address=address)), "--address"
    else:
        monkeypatch.setenv("RAY_ADDRESS", address)
        call, source = ray_env.init_ray, "RAY_ADDRESS"
    with pytest.raises(ExpungeError) as exc:
        call()
    msg = str(exc.value)
    assert "\n" not in msg and address in msg and source in msg and "does not answer" in msg


def test_bad_address_format_is_one_line():
    from expunge.runtime.ray_env import split_address
    from expunge.errors import ExpungeError

    assert split_address("ray://127.0.0.1:10001") == ("127.0.0.1", 10001)
    assert split_address("[::1]:6379") == ("::1", 6379)
    for bad in ("127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", ":6379"):
        with pytest.raises(ExpungeError, match="host:port"):
            split_address(bad)


def test_job_entrypoint_with_unreachable_address_exits_2(tmp_path):
    """`python -m expunge.jobs.pipeline --address HOST:PORT` with nothing on that port: exit 2 and one
    line naming the address, before anything is computed."""
    address = f"127.0.0.1:{_free_loopback_port()}"
    res = subprocess.run([sys.executable, "-m", "expunge.jobs.pipeline", "--config", "configs/experiments/digits.yaml",
                          "--address", address, f"storage={tmp_path}"], env=_clean_env(), cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-3000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and address in lines[0] and lines[0].startswith("expunge: error:"), lines
    assert not any(tmp_path.iterdir())
