"""expunge: a Ray-distributed platform for machine unlearning.

The compute core (``expunge.data``, ``models``, ``train``, ``unlearn``, ``metrics``, ``store``) runs
without Ray; ``expunge.distributed`` and ``expunge.jobs`` orchestrate it on Ray.
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("expunge")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
