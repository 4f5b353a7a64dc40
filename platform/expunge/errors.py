"""The one user-facing error type.

Anything the user can get wrong (an unknown name, an out-of-range value, a missing file, a corrupt
artifact) raises :class:`ExpungeError` with a one-line message that names the problem. The CLI turns
it into that line on stderr and exit code 2, before any compute starts.
"""
from __future__ import annotations


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
