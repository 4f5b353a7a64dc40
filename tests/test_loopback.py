"""Ray started by expunge listens on the loopback interface only (no traffic to other addresses)."""
from __future__ import annotations

import ipaddress

import pytest

pytestmark = pytest.mark.ray


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is IPv4 loopback on a dual-stack socket
    return (mapped or addr).is_loopback


def test_loopback_helper():
    assert _loopback("127.0.0.1") and _loopback("::1") and _loopback("::ffff:127.0.0.1")
    wildcard = str(ipaddress.IPv4Address(0))  # every interface: what a listener must never bind to here
    assert not _loopback(wildcard) and not _loopback("10.1.2.3") and not _loopback("::")


def test_every_ray_listener_is_loopback(ray_local):
    import psutil

    ctx = ray_local.get_runtime_context()
    assert ctx.gcs_address.split(":")[0] == "127.0.0.1"
    assert {n["NodeManagerAddress"] for n in ray_local.nodes()} == {"127.0.0.1"}
    session = ray_local._private.worker._global_node.get_session_dir_path()
    ray_pids = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if session in cmd or "ray::" in cmd:
            ray_pids.add(proc.info["pid"])
    listeners = [c for c in psutil.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.pid in ray_pids]
    assert listeners, "found no listening sockets of this Ray instance"
    exposed = [(c.pid, c.laddr) for c in listeners if not _loopback(c.laddr.ip)]
    assert not exposed, f"Ray listens beyond loopback: {exposed}"
