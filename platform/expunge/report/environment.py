"""Where and with what a stage ran: host, Python, library versions, CPU and GPU.

Recorded with every stage timing (``expunge.report.timings``) so a report shows the run's hardware
and versions, not those of the machine that renders the report. Cheap by design: versions come from
package metadata, and the GPU is named only when torch is already imported (never imported here).
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

LIBRARIES = ("expunge", "torch", "torchvision", "ray", "numpy", "pandas", "scikit-learn", "scipy", "matplotlib")


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """Installed versions of ``names`` (absent ones are left out)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The source checkout's commit (with ``+dirty`` when it has local changes), or None outside git."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "platform" / "expunge").is_dir():  # an installed copy, not the source checkout
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def gpu_names() -> list[str]:
    """CUDA device names, if torch is loaded in this process and sees a GPU."""
    torch = sys.modules.get("torch")
    try:
        if torch is None or not torch.cuda.is_available():
            return []
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # a broken driver must not break a timing record
        return []


def environment() -> dict[str, Any]:
    """Host, OS, Python, CPU count, GPUs, library versions and the code's git commit."""
    return {"host": socket.gethostname(), "platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "gpus": gpu_names(), "versions": library_versions(), "git_commit": git_commit()}
