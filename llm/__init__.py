"""expunge.llm: auditing (and unlearning) Hugging Face causal language models.

First contents: loading a causal LM and its tokenizer from a local directory or (when online) the hub,
with ``trust_remote_code`` off unless asked for, and a tiny byte-level GPT-2 built from config for
tests and offline demos. Attacks and the per-token log-prob cache build on these.
"""
from expunge.llm.models import ByteTokenizer, load_causal_lm, tiny_gpt2

__all__ = ["ByteTokenizer", "load_causal_lm", "tiny_gpt2"]
