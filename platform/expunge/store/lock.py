"""One builder per artifact: a lock file per (kind, key), so two commands writing one run directory
do not both train the same model; the second waits for the first and then reuses its artifact.

The lock is ``<run>/.locks/<kind>__<key>.lock``, created with ``O_CREAT | O_EXCL`` and holding the
holder's host, pid and start time. A lock whose holder is a process on this host that no longer
exists (a killed command) is stale: it is removed and taken. A holder on another host cannot be
checked, so its lock is waited for until ``stale_after_s`` (default 24 h) has passed since it was
taken. On object stores (``s3://``, ``gs://``) there is no lock: two writers of one artifact still
end with one valid artifact (atomic commits), but both may compute it.
"""
from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

LOCKS = ".locks"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(holder: dict, stale_after_s: float) -> bool:
    if holder.get("host") == socket.gethostname():
        return not _alive(int(holder.get("pid", -1)))
    return time.time() - float(holder.get("since", 0)) > stale_after_s


@contextmanager
def artifact_lock(root: str, kind: str, key: str, on_wait: Callable[[dict], None] | None = None,
                  poll_s: float = 0.5, stale_after_s: float = 24 * 3600.0) -> Iterator[bool]:
    """Hold the lock of ``kind/key`` under the local run directory ``root``; yields whether this
    process had to wait for another holder (its artifact may now exist). No-op for URIs."""
    if "://" in root:
        yield False
        return
    folder = Path(root, LOCKS)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind.replace('/', '_')}__{key.replace('/', '_')}.lock"
    me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    waited = False
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text() or "{}")
                age = time.time() - path.stat().st_mtime
            except (OSError, ValueError):
                holder, age = {}, 0.0  # being written this instant, or removed: look again
            # a killed holder's lock; or an empty one whose writer died between creating and writing it
            if (holder and _stale(holder, stale_after_s)) or (not holder and age > 10.0):
                path.unlink(missing_ok=True)
                continue
            if not waited and on_wait is not None and holder:
                on_wait(holder)
            waited = True
            time.sleep(poll_s)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    try:
        yield waited
    finally:
        path.unlink(missing_ok=True)
