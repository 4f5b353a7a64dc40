"""Loading causal language models, and a tiny byte-level GPT-2 for offline use.

Also the small helpers every other LLM module shares: encoding texts with either tokenizer kind
(:func:`encode_texts`), fingerprints of models and tokenizers (cache keys, tokenizer checks) and
:func:`check_same_tokenizer` for the places where two models must tokenise identically.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from expunge.errors import ExpungeError


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (what the ``ByteLevel`` pre-tokenizer uses)."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1), *range(ord("\u00ae"), ord("\u00ff") + 1)]
    cs = list(bs)
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


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

    SPECIAL = {"<|bos|>": 256, "<|eos|>": 257, "<|pad|>": 258}

    def get_vocab(self) -> dict[str, int]:
        """The same token -> id map as :meth:`to_hf` (byte-level characters for the 256 bytes)."""
        return {**{c: b for b, c in _bytes_to_unicode().items()}, **self.SPECIAL}

    def to_hf(self):
        """An equivalent Hugging Face fast tokenizer (same ids for every text, BOS prepended), so a
        directory written by ``model.save_pretrained(d); tok.save_pretrained(d)`` loads with
        ``AutoTokenizer`` / :func:`load_causal_lm` and no custom code."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
        from transformers import PreTrainedTokenizerFast

        t = Tokenizer(models.BPE(vocab=self.get_vocab(), merges=[]))
        t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        t.decoder = decoders.ByteLevel()
        t.post_processor = processors.TemplateProcessing(single="<|bos|> $A", pair="<|bos|> $A $B",
                                                         special_tokens=[("<|bos|>", self.bos_token_id)])
        return PreTrainedTokenizerFast(tokenizer_object=t, bos_token="<|bos|>", eos_token="<|eos|>",
                                       pad_token="<|pad|>")

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write the equivalent Hugging Face tokenizer files (see :meth:`to_hf`)."""
        self.to_hf().save_pretrained(str(path))


def tiny_gpt2(n_layer: int = 2, n_embd: int = 64, n_head: int = 2, n_positions: int = 256, seed: int = 0):
    """A randomly initialised GPT-2 with a byte-level vocabulary, built from config (no download)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=ByteTokenizer.vocab_size, n_positions=n_positions, n_embd=n_embd,
                     n_layer=n_layer, n_head=n_head, bos_token_id=ByteTokenizer.bos_token_id,
                     eos_token_id=ByteTokenizer.eos_token_id, pad_token_id=ByteTokenizer.pad_token_id)
    torch.manual_seed(seed)
    return GPT2LMHeadModel(cfg).eval(), ByteTokenizer()


def check_model_source(name_or_path: str, role: str = "language model") -> Path:
    """The local directory, or an ExpungeError when it does not exist and the hub cannot supply it
    (offline, or the name is clearly a path). Cheap: nothing is loaded."""
    local = Path(name_or_path).expanduser()
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    if not local.is_dir() and (offline or name_or_path.startswith((".", "/", "~"))):
        raise ExpungeError(f"{role} {name_or_path!r}: no such local directory, and the hub is offline")
    return local


def load_causal_lm(name_or_path: str, trust_remote_code: bool = False, device: str = "cpu",
                   dtype: torch.dtype | None = None):
    """Load a Hugging Face causal LM and its tokenizer from a local directory or a hub id.

    ``trust_remote_code`` stays off unless the caller turns it on. bf16 on CUDA by default. Offline,
    a name that is not a local directory is an error naming the path, not a hang or a traceback.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = check_model_source(name_or_path)
    if dtype is None:
        dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    source = str(local) if local.is_dir() else name_or_path
    import pickle

    from safetensors import SafetensorError

    try:
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(source, trust_remote_code=trust_remote_code, dtype=dtype)
    except (OSError, ValueError, SafetensorError, pickle.UnpicklingError, EOFError, RuntimeError) as exc:
        weights_only = "Weights only load failed" in str(exc)
        if isinstance(exc, RuntimeError) and not weights_only:
            raise
        why = _pickle_refusal(local) if weights_only else _first_line(exc)
        raise ExpungeError(f"language model {name_or_path!r} could not be loaded: {why}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model.to(device).eval(), tok


def _pickle_refusal(local: Path) -> str:
    """Why torch.load(weights_only=True) refused the directory's .bin checkpoint, in one line (torch's
    own message is a page long)."""
    from expunge.models.checkpoint import looks_like_torch_file

    for f in sorted(local.glob("*.bin")):
        if not looks_like_torch_file(f):
            return f"{f.name} is not a torch checkpoint (neither a zip archive nor a pickle stream)"
        return (f"{f.name} holds pickled objects that only an unrestricted unpickler could load (that runs "
                "code); save the model with safetensors (save_pretrained(safe_serialization=True))")
    return "a checkpoint holds pickled objects that only an unrestricted unpickler could load"


def _first_line(exc: BaseException) -> str:
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    return lines[0] if lines else type(exc).__name__


# --- shared helpers --------------------------------------------------------------------------
def encode_texts(tokenizer: Any, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
    """Token ids of each text: :class:`ByteTokenizer` (BOS when ``add_special_tokens``) or any Hugging
    Face tokenizer (its own special tokens, e.g. Llama's BOS; GPT-2's adds none)."""
    if isinstance(tokenizer, ByteTokenizer):
        return [tokenizer.encode(t, add_bos=add_special_tokens) for t in texts]
    out = tokenizer(list(texts), add_special_tokens=add_special_tokens)["input_ids"]
    return [list(x) for x in out]


def pad_id(tokenizer: Any) -> int:
    for attr in ("pad_token_id", "eos_token_id"):
        v = getattr(tokenizer, attr, None)
        if v is not None:
            return int(v)
    return 0


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of the vocabulary (token -> id) and the special-token ids: equal for tokenizers that map
    every text to the same ids (a :class:`ByteTokenizer` and its :meth:`~ByteTokenizer.to_hf` agree)."""
    vocab = tokenizer.get_vocab()
    special = {k: getattr(tokenizer, k, None) for k in ("bos_token_id", "eos_token_id")}
    blob = json.dumps([sorted(vocab.items(), key=lambda kv: kv[1]), special], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def check_same_tokenizer(a: Any, b: Any, what: str) -> None:
    """ExpungeError unless ``a`` and ``b`` tokenise identically (same vocabulary and special ids).

    Needed wherever token-level quantities of two models are combined (NPO's reference model, a
    LoRA adapter's base); sequence-level attacks accept different tokenizers (each model scores its
    own tokenisation).
    """
    fa, fb = tokenizer_fingerprint(a), tokenizer_fingerprint(b)
    if fa != fb:
        na, nb = len(a.get_vocab()), len(b.get_vocab())
        raise ExpungeError(f"{what}: tokenizer mismatch (vocabularies of {na} and {nb} tokens differ); "
                           "this step needs both models to use the same tokenizer")


def model_fingerprint(model: torch.nn.Module, full_below: int = 20_000_000) -> str:
    """A content fingerprint of a model's weights (a cache key, not a signature).

    Models with fewer than ``full_below`` parameters hash every weight; larger ones hash the config,
    every tensor's name and shape, and 4,096 evenly strided values of each tensor, so fine-tuned or
    unlearned weights (which move nearly every entry) get a new key without reading 10+ GB.
    """
    h = hashlib.sha256()
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "to_json_string"):
        h.update(cfg.to_json_string(use_diff=False).encode())
    n_params = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        for name, t in model.state_dict().items():
            h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
            flat = t.detach().reshape(-1)
            if n_params >= full_below and flat.numel() > 4096:
                flat = flat[:: max(1, flat.numel() // 4096)][:4096]
            h.update(np.ascontiguousarray(flat.float().cpu().numpy()).tobytes())
    return h.hexdigest()
