"""Language models in the artifact store: ``save_pretrained`` into ``llm_models/<key>`` with a manifest.

:func:`save_lm` writes the model with ``save_pretrained`` (and the tokenizer with its
``save_pretrained``) into a temporary directory and stores every file through
:meth:`expunge.store.Store.put`, so the artifact is written atomically, every file is hash-checked on
read and the manifest records the config that produced it. The stored folder is itself a Hugging
Face model directory: :func:`load_lm` verifies the hashes and calls ``from_pretrained`` on it.

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

KIND = "llm_models"


def hf_dir(art: Any) -> str:
    """The artifact's local folder as a Hugging Face model directory, after checking every file's hash."""
    art.verify()
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
            replace: bool = False, repair: bool = False, extra_files: dict[str, Any] | None = None,
            **extra: Any):
    """Store ``model`` (and ``tokenizer``) as the artifact ``llm_models/<key>``; returns the Artifact.
    ``extra_files`` (e.g. ``{"probe_logits.npy": array}``) are stored alongside; ``replace`` and
    ``repair`` as in :meth:`expunge.store.Store.put`."""
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        if tokenizer is not None:
            tokenizer.save_pretrained(d)
        files = {**_read_saved(d), **(extra_files or {})}
    n_params = sum(p.numel() for p in model.parameters())
    return store.put(KIND, key, files, config=config, replace=replace, repair=repair, n_params=n_params,
                     architecture=type(model).__name__, **extra)


def load_lm(store: Any, key: str, *, device: str = "cpu", dtype: torch.dtype | None = None,
            expect: dict[str, Any] | None = None):
    """``(model, tokenizer)`` of the stored artifact, after checking every file's hash."""
    art = store.get(KIND, key, expect=expect)
    if art is None:
        raise ArtifactError(f"language model {KIND}/{key} is not in {store.uri}")
    return load_causal_lm(hf_dir(art), device=device, dtype=dtype)
