"""Starting or joining Ray, with every listener on the loopback interface for local runs.

The environment below is what a local Ray needs on a locked-down machine (and what the tests and CI
set): ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps every Ray listener on 127.0.0.1 (a node IP
address alone does not), ``RAY_AUTH_MODE=disabled`` turns off token auth for a private local
instance, and usage statistics stay off.
"""
from __future__ import annotations

import os
from typing import Any

LOCAL_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
}


def init_ray(address: str | None = None, num_cpus: int | None = None, **kwargs: Any):
    """Join the cluster at ``address`` / ``RAY_ADDRESS`` (``ray job submit`` sets it, so a job joins the
    cluster's Ray and never starts a second one), or start an embedded local Ray.

    A no-op when Ray is already initialised in this process. Local starts bind to 127.0.0.1 only.
    """
    import ray

    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True, **kwargs)
        return ray
    for k, v in LOCAL_ENV.items():
        os.environ.setdefault(k, v)
    # workers must import the installed expunge, never a stray top-level 'platform' from a cwd
    ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
             configure_logging=True, logging_level="WARNING", log_to_driver=True, **kwargs)
    return ray
