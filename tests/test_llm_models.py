from __future__ import annotations

import pytest
import torch

from expunge.errors import ExpungeError
from expunge.llm import ByteTokenizer, load_causal_lm, tiny_gpt2


def test_byte_tokenizer_round_trip():
    tok = ByteTokenizer()
    ids = tok.encode("héllo")
    assert ids[0] == tok.bos_token_id and tok.decode(ids) == "héllo"


def test_tiny_gpt2_saves_and_loads_offline(tmp_path):
    model, tok = tiny_gpt2(n_layer=2, n_embd=32, n_head=2)
    ids = torch.tensor([tok.encode("unlearning")])
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], tok.vocab_size)
    model.save_pretrained(tmp_path / "m")
    # a tokenizer for the saved directory: GPT-2's byte-level BPE files built offline
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models, pre_tokenizers

    t = Tokenizer(models.BPE(vocab={chr(i): i for i in range(33, 127)} | {"<unk>": 0}, merges=[], unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<unk>").save_pretrained(tmp_path / "m")
    loaded, tok2 = load_causal_lm(str(tmp_path / "m"))
    assert not loaded.training and tok2.pad_token_id is not None
    with torch.no_grad():
        again = loaded(ids).logits
    torch.testing.assert_close(again, logits)


def test_missing_model_is_one_line_error(tmp_path):
    with pytest.raises(ExpungeError, match="no such local directory"):
        load_causal_lm(str(tmp_path / "absent"))
