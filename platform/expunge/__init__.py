"""expunge: a Ray-distributed platform for machine unlearning.

The compute core (``expunge.data``, ``models``, ``train``, ``unlearn``, ``metrics``, ``store``) runs
without Ray; ``expunge.runtime`` and ``expunge.jobs`` orchestrate it on Ray.
"""
import os as _os
from importlib.metadata import PackageNotFoundError, version as _version

#: What a local Ray needs to keep every listener on 127.0.0.1, set before anything imports Ray.
#: Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, when ``ray`` is first imported: while it is
#: on (Linux's default), ``ray.init(_node_ip_address="127.0.0.1")`` is rewritten to the machine's
#: network address and the GCS, raylet and agents bind every interface. Every entrypoint (the CLI,
#: ``python -m expunge.jobs.*``, the library) imports this package first, so setting it here covers
#: them all; ``setdefault`` lets a user's explicit setting win. ``RAY_AUTH_MODE=disabled`` turns off
#: token auth for the private local instance (joining a cluster with an explicit address never
#: auto-enables it either), and usage statistics stay off.
RAY_LOCAL_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
}
for _k, _v in RAY_LOCAL_ENV.items():
    _os.environ.setdefault(_k, _v)

try:
    __version__ = _version("expunge")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

__all__ = ["RAY_LOCAL_ENV", "__version__"]
