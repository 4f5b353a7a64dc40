"""A seal over Ray Tune's saved state, so a sweep resumes only from state this sweep wrote.

``Tuner.restore`` unpickles ``tuner.pkl`` (and per-trial ``params.pkl``) from the sweep directory.
That directory may be shared storage, so whoever can write it could otherwise run code on the
driver, and Tune's files bypass the store's hashes. After every ``fit`` (finished or interrupted)
the driver records the sha256 of every file Tune left (:func:`seal`); before a restore it checks
them (:func:`check_seal`). Any added, removed or changed file, or a missing seal (a driver killed
mid-sweep, or a directory written by someone else), refuses the restore with one line; ``--rebuild``
starts the method's sweep over. Nothing is unpickled before the check passes.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from expunge.errors import CorruptArtifactError

SEAL = "expunge_seal.json"


def _digests(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != SEAL and not path.name.endswith(".seal.tmp"):
            out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def seal(path: str) -> None:
    """Record the sha256 of every file under ``path`` (atomically, beside them)."""
    root = Path(path)
    if not root.is_dir():
        return
    tmp = root / f"{SEAL}.seal.tmp"
    tmp.write_text(json.dumps({"files": _digests(root)}, sort_keys=True))
    os.replace(tmp, root / SEAL)


def check_seal(path: str) -> None:
    """Raise :class:`CorruptArtifactError` unless every file under ``path`` is exactly what :func:`seal`
    recorded. Remote state (a URI) cannot be checked here and is refused."""
    if "://" in path:
        raise CorruptArtifactError(f"sweep state {path}: Tune's pickled state on remote storage is never "
                                   "loaded unverified; rerun with --rebuild or set a new sweep.name")
    root = Path(path)
    marker = root / SEAL
    if not marker.is_file():
        raise CorruptArtifactError(f"sweep state {path} has no seal (its driver was killed, or another process "
                                   "wrote it), so its pickled Tune state is not loaded; rerun with --rebuild")
    try:
        recorded = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        raise CorruptArtifactError(f"sweep state {path}: its seal is unreadable; rerun with --rebuild") from None
    found = _digests(root)
    changed = sorted(n for n in set(found) | set(recorded) if found.get(n) != recorded.get(n))
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise CorruptArtifactError(f"sweep state {path}: {shown} added, removed or changed since the sweep "
                                   "saved it; its pickled Tune state is not loaded; rerun with --rebuild")
