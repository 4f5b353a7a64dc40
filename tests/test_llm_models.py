from __future__ import annotations

import json

import pytest
import torch

from expunge.errors import ExpungeError
from expunge.llm import byte_tokenizer, load_causal_lm, tiny_gpt2


def test_byte_tokenizer_round_trip():
    tok = byte_tokenizer()
    ids = tok.encode("héllo")
    assert ids[0] == tok.bos_token_id and tok.decode(ids) == "héllo"


ROUND_TRIP = ["", "héllo", " leading space", "  two\n\nlines\r\n\tend ", "emoji 🙂👍🏽 中文 Ελληνικά ﬁ",
              "<|bos|>spelled<|eos|>specials<|pad|>", "\x00\x7f\u00ff\U0010ffff"]


def test_byte_tokenizer_ids_are_the_bytes_and_every_text_round_trips():
    tok = byte_tokenizer()
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (256, 257, 258)
    assert tok.vocab_size == len(tok) == 259
    assert sorted(tok.get_vocab().values()) == list(range(259))
    for text in ROUND_TRIP:
        ids = tok.encode(text)
        assert ids == [256, *text.encode()] and tok(text, add_special_tokens=False)["input_ids"] == list(text.encode())
        assert tok.decode(ids) == text == tok.decode(ids, skip_special_tokens=True)
    assert tok.decode([256, 104, 257, 258]) == "h"


def test_byte_tokenizer_saves_as_a_standard_tokenizer(tmp_path):
    """A tiny model saved with its tokenizer loads through AutoTokenizer (no custom class) and
    tokenises every text as before."""
    from expunge.llm.models import tokenizer_fingerprint

    model, tok = tiny_gpt2(n_layer=1, n_embd=16, n_head=2)
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] in {"PreTrainedTokenizerFast", "TokenizersBackend"} and "auto_map" not in config
    loaded, tok2 = load_causal_lm(str(tmp_path / "m"))
    assert type(tok2) is type(tok) and tokenizer_fingerprint(tok2) == tokenizer_fingerprint(tok)
    for text in ROUND_TRIP:
        assert tok2.encode(text) == tok.encode(text) and tok2.decode(tok2.encode(text)) == text
    ids = torch.tensor([tok2.encode("unlearning")])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits)


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


class _Evil:
    def __reduce__(self):
        return (print, ("unpickling ran code",))


def _saved_model_dir(path):
    """A saved tiny GPT-2 with a tokenizer, as a user's model directory."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    model, _ = tiny_gpt2(n_layer=1, n_embd=16, n_head=2)
    model.save_pretrained(path)
    t = Tokenizer(models.BPE(vocab={chr(i): i for i in range(33, 127)} | {"<unk>": 0}, merges=[], unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<unk>").save_pretrained(path)
    return model


@pytest.mark.parametrize("damage", ["truncated_safetensors", "pickled_bin", "random_bin"])
def test_damaged_or_pickled_model_directory_is_one_line(tmp_path, capsys, damage):
    """A corrupt safetensors file, or a pytorch_model.bin that needs the unpickler to run code, is
    refused with one line naming the directory (no traceback, no code run)."""
    path = tmp_path / "m"
    model = _saved_model_dir(path)
    weights = path / "model.safetensors"
    if damage == "truncated_safetensors":
        weights.write_bytes(weights.read_bytes()[:200])
    else:
        weights.unlink()
        state = {**model.state_dict(), "extra": _Evil()} if damage == "pickled_bin" else None
        if state is None:
            (path / "pytorch_model.bin").write_bytes(bytes(range(256)) * 4)
        else:
            torch.save(state, path / "pytorch_model.bin")
    with pytest.raises(ExpungeError) as err:
        load_causal_lm(str(path))
    msg = str(err.value)
    assert str(path) in msg and len(msg.splitlines()) == 1 and "could not be loaded" in msg
    assert {"truncated_safetensors": "header", "pickled_bin": "pytorch_model.bin holds pickled objects",
            "random_bin": "pytorch_model.bin is not a torch checkpoint"}[damage] in msg
    assert "unpickling ran code" not in capsys.readouterr().out
