"""Starting or joining Ray, with every listener on the loopback interface for local runs.

The environment a local Ray needs (``expunge.RAY_LOCAL_ENV``: every listener on 127.0.0.1, no token
auth for the private instance, no usage statistics) is set when the ``expunge`` package is imported,
before anything imports Ray, because Ray reads it once at import time.

Which Ray: an address given as ``address`` (``--address``) or ``RAY_ADDRESS`` (``ray job submit``
sets it, so a job joins its cluster and never starts a second Ray) is joined, after a connection
check that fails within seconds with one line naming the address. With no address, a private local
instance is started (``address="local"``): Ray's own default would instead join the cluster named
in its address file (``<ray temp dir>/ray_current_cluster``), which a ``ray start`` head that died
without ``ray stop`` leaves behind, and retry that dead GCS for minutes.
"""
from __future__ import annotations

import os
import socket
from typing import Any

from expunge import RAY_LOCAL_ENV as LOCAL_ENV
from expunge.runtime.reaper import start_reaper
from expunge.errors import ExpungeError

LOOPBACK = "127.0.0.1"
#: seconds a TCP connection to a given cluster address may take before it counts as not answering
PROBE_TIMEOUT_S = 5.0


def init_ray(address: str | None = None, num_cpus: int | None = None, **kwargs: Any):
    """Join the cluster at ``address`` / ``RAY_ADDRESS``, or start an embedded local Ray.

    A no-op when Ray is already initialised in this process (e.g. inside a Ray task). A local start
    binds the GCS, raylet, dashboard and agents to 127.0.0.1 only; a given address that does not
    accept a connection raises :class:`ExpungeError` naming it.
    """
    import ray

    if ray.is_initialized():
        return ray
    source = "--address"
    if not address:
        address, source = os.environ.get("RAY_ADDRESS") or None, "RAY_ADDRESS"
    if address and address != "local":
        check_reachable(address, source)
        ray.init(address=address, log_to_driver=True, **kwargs)
        return ray
    for k, v in LOCAL_ENV.items():  # in case the caller removed them after importing expunge
        os.environ.setdefault(k, v)
    _cluster_flag_from_env()
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, dashboard_host=LOOPBACK,
             _node_ip_address=LOOPBACK, configure_logging=True, logging_level="WARNING",
             log_to_driver=True, **kwargs)
    start_reaper()  # a killed command's Ray processes are stopped, not left running for a minute
    return ray


def _cluster_flag_from_env() -> None:
    """Make Ray's import-time copy of ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` agree with the
    environment. It differs only when ``ray`` was imported before ``expunge`` set the variable; left
    on, Ray would replace the node address 127.0.0.1 by the machine's network address."""
    from ray._private import ray_constants

    flag = getattr(ray_constants, "ENABLE_RAY_CLUSTERS_ENV_VAR", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    if os.environ.get(flag, "").strip().lower() not in ("1", "true"):
        ray_constants.ENABLE_RAY_CLUSTER = False


def split_address(address: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``ray://host:port`` -> ``(host, port)``."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rstrip("/").rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ExpungeError(f"Ray address {address!r} must look like host:port (or ray://host:port, auto, local)")
    return host, int(port)


def check_reachable(address: str, source: str = "--address") -> None:
    """Refuse, within :data:`PROBE_TIMEOUT_S`, a cluster address nothing answers on.

    ``ray.init`` itself retries an unreachable GCS for minutes with no message of ours. The check is
    a TCP connection to the address (``auto`` is first resolved the way Ray resolves it); a port
    that accepts connections but is not a Ray GCS is left to Ray.
    """
    target = address
    if address == "auto":
        from ray._private import services

        try:
            target = services.canonicalize_bootstrap_address("auto")
        except ConnectionError:
            target = None
        if target is None:
            raise ExpungeError(f"no running Ray cluster found for address 'auto' (from {source})")
    host, port = split_address(target)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, socket.timeout) else (exc.strerror or type(exc).__name__).lower()
        hint = "unset RAY_ADDRESS" if source == "RAY_ADDRESS" else "drop --address"
        raise ExpungeError(f"the Ray cluster at {target} (from {source}) does not answer: {reason}; start it "
                           f"(ray start --head) or {hint} to run an embedded local Ray") from None
