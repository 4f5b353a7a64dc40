"""The watcher that stops a killed command's Ray processes (expunge.runtime.reaper) reads /proc
right; the end-to-end check (a SIGKILLed driver leaves no Ray process) is in tests/test_loopback.py,
which already starts an embedded Ray in a clean child process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_descendants_and_ray_filter_read_proc():
    from expunge.runtime import reaper

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
