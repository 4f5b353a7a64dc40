"""Language models in the artifact store: ``save_pretrained`` into ``llm_models/<key>`` with a manifest.

:func:`save_lm` writes the model with ``save_pretrained`` (and the tokenizer with its
``save_pretrained``) into a temporary directory and stores every file through
:meth:`expunge.store.Store.put`, so the artifact is written atomically, every file is hash-checked on
read and the manifest records the config that produced it. The stored folder is itself a Hugging
Face model directory: :func:`load_lm` verifies the hashes and calls ``from_pretrained`` on it.

File names the store's manifest would redact: the store replaces manifest values under
secret-looking keys ("token", "secret", ...) with "***", and a file's manifest entry is keyed by its
name, so ``tokenizer.json`` / ``tokenizer_config.json`` would lose their hashes (and become
unreadable). Such files are stored under a neutral alias (``alias-<hex of the name>.<ext>``, the
mapping in the manifest's ``hf_aliases``) and exposed under their real names by symbolic links in the
artifact folder, so the folder still loads with ``from_pretrained`` and every byte is hash-checked
through the alias. If the store stops redacting file entries, no alias is used.

The store re-encodes files by extension (``.safetensors`` and ``.json`` are decoded here and encoded
again by the store), so the whole model passes through memory once; fine for the sizes this project
trains, worth a pass-through in the store for multi-GB checkpoints.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import torch

from expunge.errors import ArtifactError
from expunge.llm.models import load_causal_lm
from expunge.store.fs import LocalFS

KIND = "llm_models"
ALIASES = "hf_aliases"


def _redacted_by_store(name: str) -> bool:
    """Whether the store would redact a manifest file entry named ``name``."""
    try:
        from expunge.store.serialize import redact
    except ImportError:
        return False
    entry = {"sha256": "0", "bytes": 0}
    return redact({"files": {name: entry}})["files"][name] != entry


def _alias(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    stem, ext = (stem, ext) if dot else (name, "bin")
    return f"alias-{stem.encode().hex()}.{ext}"


def hf_dir(art: Any) -> str:
    """The artifact's local folder as a Hugging Face model directory: links the real file names to
    their aliases (if any), after checking every file's hash."""
    import os

    art.verify()
    for alias, real in (art.manifest.get(ALIASES) or {}).items():
        link = os.path.join(art.path, real)
        if not os.path.lexists(link):
            try:
                os.symlink(alias, link)
            except FileExistsError:  # a concurrent reader linked it first
                pass
    return art.path


def _read_saved(folder: str) -> dict[str, Any]:
    from safetensors.torch import load

    files: dict[str, Any] = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        if name.endswith(".safetensors"):
            files[name] = load(data)
        elif name.endswith(".json"):
            files[name] = json.loads(data)
        else:
            files[name] = data
    return files


def save_lm(store: Any, key: str, model: torch.nn.Module, tokenizer: Any = None, *, config: Any = None,
            replace: bool = False, extra_files: dict[str, Any] | None = None, **extra: Any):
    """Store ``model`` (and ``tokenizer``) as the artifact ``llm_models/<key>``; returns the Artifact.
    ``extra_files`` (e.g. ``{"probe_logits.npy": array}``) are stored alongside."""
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        if tokenizer is not None:
            tokenizer.save_pretrained(d)
        files = {**_read_saved(d), **(extra_files or {})}
    aliases = {_alias(n): n for n in files if _redacted_by_store(n)}
    files = {next((a for a, r in aliases.items() if r == n), n): v for n, v in files.items()}
    n_params = sum(p.numel() for p in model.parameters())
    art = store.put(KIND, key, files, config=config, replace=replace, n_params=n_params,
                    architecture=type(model).__name__, **({ALIASES: aliases} if aliases else {}), **extra)
    if aliases and isinstance(store.fs, LocalFS):
        hf_dir(art)
    return art


def load_lm(store: Any, key: str, *, device: str = "cpu", dtype: torch.dtype | None = None,
            expect: dict[str, Any] | None = None):
    """``(model, tokenizer)`` of the stored artifact, after checking every file's hash."""
    art = store.get(KIND, key, expect=expect)
    if art is None:
        raise ArtifactError(f"language model {KIND}/{key} is not in {store.uri}")
    return load_causal_lm(hf_dir(art), device=device, dtype=dtype)


def lm_path(store: Any, key: str) -> str:
    """Local Hugging Face directory of a stored model (hash-checked; for ``from_pretrained`` elsewhere,
    e.g. in Ray actors)."""
    art = store.get(KIND, key)
    if art is None:
        raise ArtifactError(f"language model {KIND}/{key} is not in {store.uri}")
    return hf_dir(art)
