"""Importing a trained model's weights (``model.weights: PATH``): the user's own original.

Weights load only through safetensors or ``torch.load(weights_only=True)``: a checkpoint that
needs arbitrary pickled objects to load (a whole pickled model, a custom class) is refused, because
unpickling runs code. Keys may carry the prefixes that DDP (``module.``) and ``torch.compile``
(``_orig_mod.``) add; a checkpoint saved as ``{"state_dict": ...}`` or ``{"model": ...}`` is unwrapped.
Every key and shape must fit the configured model: a head sized for another number of classes is
named with both shapes, before any compute.
"""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch
from torch import nn

from expunge.errors import ConfigError

SAFE_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def looks_like_torch_file(path: str | Path) -> bool:
    """Whether ``path`` is what ``torch.save`` writes: a zip archive, or (legacy) a pickle stream,
    which opens with the PROTO opcode 0x80. Anything else is not a checkpoint at all."""
    import zipfile

    with open(path, "rb") as f:
        head = f.read(1)
    return zipfile.is_zipfile(path) or head == b"\x80"


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict of tensors from ``path``; :class:`ConfigError` naming the file otherwise."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"model.weights: no such file {p}")
    suffix = p.suffix.lower()
    if suffix in SAFE_SUFFIXES:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(p), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ConfigError(f"model.weights: {p} is not a readable safetensors file ({str(exc).splitlines()[0]})") from None
    elif suffix in TORCH_SUFFIXES:
        if not looks_like_torch_file(p):
            raise ConfigError(f"model.weights: {p} is not a torch checkpoint (neither a zip archive nor a pickle "
                              "stream); save the state_dict with safetensors or torch.save")
        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise ConfigError(f"model.weights: {p} holds pickled objects that only an unrestricted unpickler "
                              "could load (that runs code): save its state_dict with safetensors instead") from None
        except (RuntimeError, OSError, EOFError, ValueError) as exc:
            raise ConfigError(f"model.weights: {p} is not a readable torch checkpoint ({str(exc).splitlines()[0]})") from None
    else:
        raise ConfigError(f"model.weights: {p} has suffix {suffix or '(none)'!r}; use .safetensors "
                          f"(or a weights-only torch file: {', '.join(TORCH_SUFFIXES)})")
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"model.weights: {p} does not hold a state dict of tensors")
    return {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}


def load_into(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path, num_classes: int) -> nn.Module:
    """Copy ``state`` into ``model`` (strict); every mismatch is one line naming keys and shapes."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [(k, tuple(state[k].shape), tuple(own[k].shape)) for k in own if k in state
              and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or extra:
        what = f"missing {', '.join(missing[:3])}" if missing else f"unexpected {', '.join(extra[:3])}"
        raise ConfigError(f"model.weights: {path} does not fit model {type(model).__name__} ({what}"
                          f"{' ...' if len(missing or extra) > 3 else ''}); is model.name / model.kwargs the checkpoint's?")
    if shapes:
        k, got, want = shapes[0]
        hint = (f"the data has {num_classes} classes, the checkpoint's head {got[0]}" if want and want[0] == num_classes
                else "is model.name / model.kwargs the checkpoint's?")
        raise ConfigError(f"model.weights: {path}: {k} has shape {list(got)}, the model needs {list(want)} ({hint})")
    model.load_state_dict(state)
    return model
