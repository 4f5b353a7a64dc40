"""Loading causal language models, and a tiny byte-level GPT-2 for offline use."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from expunge.errors import ExpungeError


class ByteTokenizer:
    """Bytes as tokens (vocabulary 256 + BOS/EOS/PAD): no vocabulary file, no download."""

    bos_token_id = 256
    eos_token_id = 257
    pad_token_id = 258
    vocab_size = 259

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids = list(text.encode("utf-8"))
        return [self.bos_token_id, *ids] if add_bos else ids

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    def __call__(self, texts: list[str], add_bos: bool = True) -> list[list[int]]:
        return [self.encode(t, add_bos) for t in texts]


def tiny_gpt2(n_layer: int = 2, n_embd: int = 64, n_head: int = 2, n_positions: int = 256, seed: int = 0):
    """A randomly initialised GPT-2 with a byte-level vocabulary, built from config (no download)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=ByteTokenizer.vocab_size, n_positions=n_positions, n_embd=n_embd,
                     n_layer=n_layer, n_head=n_head, bos_token_id=ByteTokenizer.bos_token_id,
                     eos_token_id=ByteTokenizer.eos_token_id, pad_token_id=ByteTokenizer.pad_token_id)
    torch.manual_seed(seed)
    return GPT2LMHeadModel(cfg).eval(), ByteTokenizer()


def load_causal_lm(name_or_path: str, trust_remote_code: bool = False, device: str = "cpu",
                   dtype: torch.dtype | None = None):
    """Load a Hugging Face causal LM and its tokenizer from a local directory or a hub id.

    ``trust_remote_code`` stays off unless the caller turns it on. bf16 on CUDA by default. Offline,
    a name that is not a local directory is an error naming the path, not a hang or a traceback.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = Path(name_or_path).expanduser()
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    if not local.is_dir() and (offline or name_or_path.startswith((".", "/", "~"))):
        raise ExpungeError(f"language model {name_or_path!r}: no such local directory, and the hub is offline")
    if dtype is None:
        dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    source = str(local) if local.is_dir() else name_or_path
    try:
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(source, trust_remote_code=trust_remote_code, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ExpungeError(f"language model {name_or_path!r} could not be loaded: {str(exc).splitlines()[0]}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model.to(device).eval(), tok
