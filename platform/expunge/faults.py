"""Fault injection for the reliability tests: one hook, one format, for every stage that can lose a worker.

``EXPUNGE_FAULTS`` names a directory (the test suite sets it before any Ray starts, so every worker
inherits it). A fault is armed by a file ``<site>.arm`` in it whose text names the point to die at as
``key=value`` pairs, e.g. ``member=1`` or ``rank=1 epoch=2``. The first process that reaches a point
matching every pair claims the file atomically (renames it to ``<site>.fired``) and exits at once
(``os._exit(1)``, no clean-up), as a process on a lost node would; so each armed fault fires once, in
one process. Because the directory is read when the point is reached, a running Ray can be armed and
disarmed without restarting it. Sites: ``member`` (a fleet member's task), ``trial`` (a sweep trial
after an epoch), ``train_worker`` (a Ray Train worker after it reports an epoch).

:func:`record` appends a line to ``<site>.log`` (e.g. which epoch a resumed worker started from), for
the test to read. Without ``EXPUNGE_FAULTS`` both are no-ops.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

ENV = "EXPUNGE_FAULTS"


def _folder() -> Path | None:
    value = os.environ.get(ENV)
    return Path(value) if value else None


def maybe_die(site: str, delay_s: float = 0.0, **point: int) -> None:
    """Exit this process (status 1) if ``<site>.arm`` names ``point``; ``delay_s`` seconds after
    claiming it (a worker that dies a moment after its report, not during it)."""
    folder = _folder()
    if folder is None:
        return
    arm = folder / f"{site}.arm"
    try:
        wanted = dict(pair.split("=", 1) for pair in arm.read_text().split())
    except (FileNotFoundError, ValueError):
        return
    if any(str(point.get(key)) != value for key, value in wanted.items()):
        return
    try:
        os.rename(arm, folder / f"{site}.fired")  # atomic: one process wins the fault
    except FileNotFoundError:
        return
    if delay_s:
        time.sleep(delay_s)
    os._exit(1)


def record(site: str, line: str) -> None:
    """Append ``line`` to ``<site>.log`` in the fault folder (no-op without one)."""
    folder = _folder()
    if folder is not None:
        with open(folder / f"{site}.log", "a") as f:
            f.write(line + "\n")


def arm(site: str, **point: int) -> Path:
    """Arm ``site`` to fail at ``point`` (for tests); returns the ``.fired`` path that proves it fired."""
    folder = _folder()
    if folder is None:
        raise RuntimeError(f"{ENV} is not set: nothing would inherit the fault")
    (folder / f"{site}.fired").unlink(missing_ok=True)
    (folder / f"{site}.log").unlink(missing_ok=True)
    (folder / f"{site}.arm").write_text(" ".join(f"{k}={v}" for k, v in point.items()))
    return folder / f"{site}.fired"


def disarm() -> None:
    """Remove every armed fault and record in the folder."""
    folder = _folder()
    if folder is not None:
        for path in folder.glob("*.*"):
            if path.suffix in (".arm", ".fired", ".log"):
                path.unlink(missing_ok=True)
