"""Filesystems under the artifact store: the local disk, or any URI pyarrow understands.

The local filesystem gets true directory-level atomicity (stage in a hidden sibling, then one
``os.rename``). Object stores have no directories to rename, so there each file is written whole and
the manifest is written last: an artifact without a manifest does not exist for readers.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


class LocalFS:
    atomic_dirs = True

    def __init__(self, root: str) -> None:
        self.root = str(Path(root.removeprefix("file://")).expanduser().resolve())

    def join(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def read_bytes(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write via a temporary sibling and rename, so readers never see a partial file."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def rmtree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def staging_dir(self, final: str) -> str:
        parent, leaf = os.path.split(final)
        os.makedirs(parent, exist_ok=True)
        return os.path.join(parent, f".{leaf}.tmp-{uuid.uuid4().hex[:8]}")

    def commit_dir(self, staging: str, final: str, replace: bool) -> bool:
        """Rename ``staging`` to ``final``; False when another writer got there first."""
        if replace and os.path.exists(final):
            trash = f"{staging}.old"
            os.rename(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(staging, final)
            return True
        except OSError:
            if not os.path.exists(final):
                raise
            shutil.rmtree(staging, ignore_errors=True)
            return False


class ArrowFS:
    """Remote storage through ``pyarrow.fs`` (s3://, gs://, hdfs://, ...)."""

    atomic_dirs = False

    def __init__(self, uri: str) -> None:
        import pyarrow.fs as pafs

        self.fs, base = pafs.FileSystem.from_uri(uri)
        self.root = base.rstrip("/")
        self._pafs = pafs

    def join(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != self._pafs.FileType.NotFound

    def isdir(self, path: str) -> bool:
        return self.fs.get_file_info(path).type == self._pafs.FileType.Directory

    def read_bytes(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as f:
            return f.read()

    def write_bytes(self, path: str, data: bytes) -> None:
        self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with self.fs.open_output_stream(path) as f:
            f.write(data)

    def listdir(self, path: str) -> list[str]:
        if not self.isdir(path):
            return []
        sel = self._pafs.FileSelector(path, allow_not_found=True)
        return sorted(info.base_name for info in self.fs.get_file_info(sel))

    def rmtree(self, path: str) -> None:
        if self.exists(path):
            self.fs.delete_dir(path)

    def staging_dir(self, final: str) -> str:
        return final

    def commit_dir(self, staging: str, final: str, replace: bool) -> bool:
        return True


def open_fs(root: str) -> LocalFS | ArrowFS:
    if "://" in root and not root.startswith("file://"):
        return ArrowFS(root)
    return LocalFS(root)
