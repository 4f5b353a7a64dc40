"""The one user-facing error type.

Anything the user can get wrong (an unknown name, an out-of-range value, a missing file, a corrupt
artifact) raises :class:`ExpungeError` with a one-line message that names the problem. The CLI turns
it into that line on stderr and exit code 2, before any compute starts.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class ExpungeError(Exception):
    """A problem with the user's input or the artifact store; the message is shown as-is."""

    exit_code = 2


class ConfigError(ExpungeError):
    """An invalid configuration value, key or override."""


class ArtifactError(ExpungeError):
    """A missing, corrupt, stale or mismatching artifact."""


class CorruptArtifactError(ArtifactError):
    """An artifact whose files do not match its manifest (missing, truncated, altered) or whose
    manifest is unreadable: never read, recomputed only when the user asks (``--rebuild``)."""


class StaleArtifactError(ArtifactError):
    """An intact artifact made from other inputs (config, split, seed, code version) than requested."""


class DataError(ExpungeError):
    """A dataset that cannot be loaded, or a split/forget spec that does not fit the data."""


class StorageError(ExpungeError):
    """The file system refused a read or write: no space, read-only, no permission, a file where a
    directory belongs. Raised from :func:`from_os_error`, the one place that maps such failures."""


#: errno -> what to do about it; every other OSError is a bug, left to its traceback
_OS_HINTS = {
    "ENOSPC": "free space and rerun the same command",
    "EDQUOT": "free space (disk quota) and rerun the same command",
    "EROFS": "the file system is read-only: set storage= to a writable directory",
    "EACCES": "permission denied: set storage= to a directory you can write, or fix its permissions",
    "EPERM": "operation not permitted: set storage= to a directory you can write",
    "ENOTDIR": "a part of the path is a file, not a directory: check storage= and file arguments",
    "EISDIR": "a directory where a file was expected: check the path",
    "EEXIST": "a file already exists where a directory belongs: check storage=",
    "ENAMETOOLONG": "the path is too long: choose a shorter storage= or name",
}


def from_os_error(exc: OSError, what: str | None = None) -> StorageError | None:
    """The one-line :class:`StorageError` for a file-system failure of the environment (``None``
    when ``exc`` is not one of those). ``what`` names the artifact or file being handled."""
    import errno

    name = errno.errorcode.get(exc.errno or -1, "")
    hint = _OS_HINTS.get(name)
    if hint is None:
        return None
    target = what or (exc.filename and str(exc.filename)) or "a file"
    tail = (" (nothing of it was kept; finished artifacts are intact: every write is atomic)"
            if what and name in ("ENOSPC", "EDQUOT") else "")
    return StorageError(f"could not write {target}: {exc.strerror or name}{tail}; {hint}"
                        if what else f"{target}: {exc.strerror or name}; {hint}")


def unknown_name(kind: str, name: str, known: Iterable[str]) -> str:
    """``unknown <kind> '<name>'; did you mean ...? (known: ...)``: the closest known names first."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (known: {', '.join(known)})"
