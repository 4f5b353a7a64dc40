"""Loading causal language models, and a tiny byte-level GPT-2 for offline use (its tokenizer,
:func:`byte_tokenizer`, is a Hugging Face fast tokenizer like any loaded model's).

Also the small helpers every other LLM module shares: encoding texts (:func:`encode_texts`),
fingerprints of models and tokenizers (cache keys, tokenizer checks) and :func:`check_same_tokenizer`
for the places where two models must tokenise identically.
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


#: The byte tokenizer's ids (:func:`byte_tokenizer`): byte ``b`` is token ``b`` (0-255, spelled with
#: GPT-2's byte-level symbol for ``b``), then these special tokens; the tiny GPT-2's vocabulary size.
BYTE_SPECIAL_TOKENS: dict[str, int] = {"<|bos|>": 256, "<|eos|>": 257, "<|pad|>": 258}
BYTE_VOCAB_SIZE = 256 + len(BYTE_SPECIAL_TOKENS)


def byte_tokenizer():
    """A Hugging Face fast tokenizer with bytes as tokens (no vocabulary file, no download).

    A ``tokenizers`` BPE model with no merges over the 256 byte-level symbols, GPT-2's ``ByteLevel``
    pre-tokenizer and decoder, ids as in :data:`BYTE_SPECIAL_TOKENS` (byte ``b`` is id ``b``). With
    special tokens (the default of ``encode`` and ``__call__``) BOS is prepended; without them a text's
    ids are its UTF-8 bytes. The special tokens' spellings in a text are encoded as bytes
    (``split_special_tokens``), and ``decode`` drops the special ids (``Replace`` decoders, whatever
    ``skip_special_tokens`` says), so ``decode(encode(t)) == t`` for every string. ``save_pretrained``
    writes standard tokenizer files that ``AutoTokenizer`` (and :func:`load_causal_lm`) load with no
    custom code.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    bos, eos, pad = BYTE_SPECIAL_TOKENS  # their spellings, in id order
    vocab = {symbol: b for b, symbol in bytes_to_unicode().items()} | BYTE_SPECIAL_TOKENS
    t = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    t.decoder = decoders.Sequence([*(decoders.Replace(s, "") for s in BYTE_SPECIAL_TOKENS), decoders.ByteLevel()])
    t.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A $B",
                                                     special_tokens=[(bos, BYTE_SPECIAL_TOKENS[bos])])
    return PreTrainedTokenizerFast(tokenizer_object=t, bos_token=bos, eos_token=eos, pad_token=pad,
                                   split_special_tokens=True)


def tiny_gpt2(n_layer: int = 2, n_embd: int = 64, n_head: int = 2, n_positions: int = 256, seed: int = 0):
    """A randomly initialised GPT-2 and its :func:`byte_tokenizer`, built from config (no download)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    bos, eos, pad = BYTE_SPECIAL_TOKENS.values()
    cfg = GPT2Config(vocab_size=BYTE_VOCAB_SIZE, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                     n_head=n_head, bos_token_id=bos, eos_token_id=eos, pad_token_id=pad)
    torch.manual_seed(seed)
    return GPT2LMHeadModel(cfg).eval(), byte_tokenizer()


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
    """Token ids of each text with a Hugging Face tokenizer; ``add_special_tokens`` adds its own special
    tokens (e.g. Llama's BOS, the :func:`byte_tokenizer`'s BOS; GPT-2's adds none)."""
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
    every text to the same ids (a :func:`byte_tokenizer` and its ``save_pretrained`` copy reloaded agree)."""
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
