"""The artifact store: manifests, content hashes, atomic writes, refusal of stale artifacts.

An artifact is a folder ``<run>/<kind>/<key>/`` of files plus ``manifest.json``::

    {"kind", "key", "config", "split_hash", "seed", "code_version", "created",
     "files": {name: {"sha256", "bytes"}}, "content_hash", ...extra, "manifest_hash"}

``content_hash`` covers the files; ``manifest_hash`` covers every other field of the manifest (run
time, seed, config, any extra), so an edited manifest is refused as corrupt, like an edited file.

``put`` writes every file and the manifest into a staging folder and renames it into place (local
disk), so a reader sees the whole artifact or none of it, and two concurrent writers end with one
valid artifact. ``get(kind, key, expect=...)`` returns ``None`` when the artifact is absent, raises
:class:`ArtifactError` naming every differing field when the manifest does not match ``expect``, and
verifies each file's sha256 when it is read, so a truncated or flipped file is refused by name.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from expunge import __version__
from expunge.errors import ArtifactError, CorruptArtifactError, StaleArtifactError, from_os_error
from expunge.store.fs import ArrowFS, LocalFS, open_fs
from expunge.store.serialize import decode, encode, normalize, redact

MANIFEST = "manifest.json"
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,199}")
#: fields of a manifest that describe what produced it (compared by ``expect``)
IDENTITY_FIELDS = ("config", "split_hash", "seed", "code_version")


def manifest_hash(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys, no whitespace), ``manifest_hash`` left out."""
    body = {k: v for k, v in manifest.items() if k != "manifest_hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _check_name(value: str, what: str) -> list[str]:
    parts = value.split("/")
    for p in parts:
        if not _SEGMENT.fullmatch(p) or p in (".", "..") or ".." in p:
            raise ArtifactError(f"invalid artifact {what} {value!r}: segments must be letters, digits, "
                                "'_', '-', '.', '=', '+' (no '..', no absolute paths)")
    return parts


def diff(stored: Any, wanted: Any, prefix: str = "") -> list[str]:
    """Human-readable differences between two JSON-like values."""
    if isinstance(stored, dict) and isinstance(wanted, dict):
        out = []
        for k in sorted(set(stored) | set(wanted)):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in stored:
                out.append(f"{key}: not in stored artifact, requested {wanted[k]!r}")
            elif k not in wanted:
                out.append(f"{key}: stored {stored[k]!r}, not in request")
            else:
                out.extend(diff(stored[k], wanted[k], key))
        return out
    return [] if stored == wanted else [f"{prefix}: stored {stored!r}, requested {wanted!r}"]


@dataclass
class Artifact:
    """A stored artifact; files are read lazily and hash-checked on every read."""

    store: "Store"
    kind: str
    key: str
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.key}"

    @property
    def path(self) -> str:
        return self.store.path(self.kind, self.key)

    def files(self) -> list[str]:
        return sorted(self.manifest["files"])

    def read(self, name: str) -> Any:
        return decode(name, self.read_bytes(name))

    def read_bytes(self, name: str) -> bytes:
        info = self.manifest["files"].get(name)
        if info is None:
            raise ArtifactError(f"artifact {self.name} has no file {name!r} (has: {', '.join(self.files())})")
        path = self.store.file(self.kind, self.key, name)
        try:
            data = self.store.fs.read_bytes(path)
        except FileNotFoundError:
            raise CorruptArtifactError(f"artifact {self.name}: file {name} is missing; rerun with --rebuild to recompute it") from None
        if len(data) != info["bytes"] or hashlib.sha256(data).hexdigest() != info["sha256"]:
            raise CorruptArtifactError(f"artifact {self.name}: file {name} is corrupt (size or sha256 does not match "
                                "its manifest); rerun with --rebuild to recompute it")
        return data

    def verify(self) -> None:
        """Every file against its manifest entry, and the manifest's content hash against its entries."""
        for name in self.files():
            self.read_bytes(name)
        entries = self.manifest["files"]
        recomputed = hashlib.sha256("".join(f"{n}:{e['sha256']};" for n, e in sorted(entries.items()))
                                    .encode()).hexdigest()
        if recomputed != self.manifest.get("content_hash"):
            raise CorruptArtifactError(f"artifact {self.name}: its manifest's content hash does not match its file "
                                       "list (the manifest was altered); rerun with --rebuild to recompute it")


class Store:
    """One run directory: ``Store("runs/digits")`` or ``Store("s3://bucket/runs/digits")``."""

    def __init__(self, root: str) -> None:
        self.uri = root
        self.fs: LocalFS | ArrowFS = open_fs(root)

    def path(self, kind: str, key: str) -> str:
        return self.fs.join(*_check_name(kind, "kind"), *_check_name(key, "key"))

    def file(self, kind: str, key: str, name: str) -> str:
        return self.fs.join(*_check_name(kind, "kind"), *_check_name(key, "key"), name)

    def exists(self, kind: str, key: str) -> bool:
        return self.fs.exists(self.file(kind, key, MANIFEST))

    def keys(self, kind: str) -> list[str]:
        base = self.fs.join(*_check_name(kind, "kind"))
        return [k for k in self.fs.listdir(base) if not k.startswith(".")
                and self.fs.exists(self.file(kind, k, MANIFEST))]

    def put(self, kind: str, key: str, files: dict[str, Any], *, config: Any = None,
            split_hash: str | None = None, seed: int | None = None, code_version: str | None = None,
            replace: bool = False, repair: bool = False, **extra: Any) -> Artifact:
        """Write an artifact atomically; with ``replace=False`` an existing one is an error.

        ``replace=True`` overwrites an existing artifact only when it is intact: a damaged, edited or
        incomplete one is refused by name (:class:`CorruptArtifactError`) unless ``repair`` is set
        (``--rebuild``), so damage is never silently papered over by a later command."""
        final = self.path(kind, key)
        for name in files:
            _check_name(name, "file name")
            if name == MANIFEST:
                raise ArtifactError(f"{MANIFEST} is reserved")
        if not replace and self.exists(kind, key):
            raise ArtifactError(f"artifact {kind}/{key} already exists; pass --rebuild to replace it")
        if replace and not repair:
            self.check_intact(kind, key)
        encoded = {name: encode(name, value) for name, value in files.items()}
        entries = {n: {"sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)} for n, b in encoded.items()}
        content_hash = hashlib.sha256("".join(f"{n}:{e['sha256']};" for n, e in sorted(entries.items()))
                                      .encode()).hexdigest()
        manifest = normalize({"files": entries, **redact({
            "kind": kind, "key": key, "config": config, "split_hash": split_hash, "seed": seed,
            "code_version": code_version or __version__, "expunge_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "content_hash": content_hash, **extra,
        })})  # file names are not secrets: tokenizer.json keeps its entry
        manifest["manifest_hash"] = manifest_hash(manifest)
        if not self.fs.atomic_dirs and replace:
            self.fs.rmtree(final)
        staging = self.fs.staging_dir(final)
        try:
            for name, data in encoded.items():
                self.fs.write_bytes(f"{staging}/{name}", data)
            self.fs.write_bytes(f"{staging}/{MANIFEST}", encode(MANIFEST, manifest))
            won = self.fs.commit_dir(staging, final, replace)
        except BaseException as exc:
            if staging != final:
                try:
                    self.fs.rmtree(staging)
                except OSError:
                    pass  # the original failure is the one to report
            if isinstance(exc, OSError) and (err := from_os_error(exc, f"artifact {kind}/{key}")) is not None:
                raise err from None
            raise
        if not won:  # a concurrent writer committed first: theirs is the artifact
            return self.get(kind, key)
        return Artifact(self, kind, key, manifest)

    def get(self, kind: str, key: str, expect: dict[str, Any] | None = None,
            verify: bool = False) -> Artifact | None:
        """The artifact, ``None`` if absent; :class:`ArtifactError` if corrupt or not what ``expect`` asks."""
        path = self.file(kind, key, MANIFEST)
        if not self.fs.exists(path):
            return None
        try:
            manifest = decode(MANIFEST, self.fs.read_bytes(path))
            assert isinstance(manifest, dict) and isinstance(manifest.get("files"), dict)
        except Exception:
            raise CorruptArtifactError(f"artifact {kind}/{key}: manifest is unreadable; rerun with --rebuild") from None
        if manifest.get("manifest_hash") != manifest_hash(manifest):
            why = ("has no manifest hash (written by an older expunge)" if "manifest_hash" not in manifest
                   else "was edited (its fields do not match its manifest hash)")
            raise CorruptArtifactError(f"artifact {kind}/{key}: manifest {why}; rerun with --rebuild to recompute it")
        art = Artifact(self, kind, key, manifest)
        if expect:
            problems = []
            for field, wanted in expect.items():
                problems += diff(manifest.get(field), normalize(redact(wanted)), field)
            if problems:
                shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
                raise StaleArtifactError(f"artifact {kind}/{key} does not match this request ({shown}); "
                                    "use a new run name or --rebuild")
        if verify:
            art.verify()
        return art

    def check_intact(self, kind: str, key: str | None = None) -> None:
        """Verify one stored artifact (or every artifact of ``kind``): its manifest hash and every
        file's sha256; absent ones pass. Raises :class:`CorruptArtifactError` naming the first damage."""
        for k in [key] if key is not None else self.keys(kind):
            self.get(kind, k, verify=True)

    def delete(self, kind: str, key: str) -> None:
        self.fs.rmtree(self.path(kind, key))
