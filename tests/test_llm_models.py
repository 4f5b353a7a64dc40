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
