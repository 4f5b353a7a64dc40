"""LLM unlearning losses by hand, their effect, the tokenizer and LoRA checks, and the store round trip."""
from __future__ import annotations

import copy
import math
import sys

import numpy as np
import pytest
import torch

from expunge.errors import ArtifactError, ConfigError, ExpungeError
from expunge.llm.artifacts import load_lm, save_lm
from expunge.llm.models import byte_tokenizer, check_same_tokenizer, tiny_gpt2
from expunge.llm.scoring import token_logprobs
from expunge.llm.unlearn import LLM_METHODS, _Ctx, make_batch, make_config, mean_token_nll, unlearn_lm
from expunge.store import Store

FORGET = ["Code: Kavu bedo Sipa runo.", "Code: lomi Tuka vesa pido."]
RETAIN = ["The red cat eats the fish.", "The blue dog sees the bird.", "The old man reads the book."]


@pytest.fixture()
def tiny():
    return tiny_gpt2(n_layer=1, n_embd=32, n_head=2, n_positions=64, seed=3)


def _other_tokenizer():
    """A Hugging Face tokenizer with a different vocabulary (whitespace words, printable ASCII)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    t = Tokenizer(models.BPE(vocab={chr(i): i for i in range(33, 127)} | {"<unk>": 0}, merges=[], unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<unk>")


def test_npo_at_the_reference_is_two_over_beta_log_two(tiny):
    model, tok = tiny
    cfg = make_config(method="npo", beta=0.1, alpha=0.0)
    batch = make_batch(tok, FORGET, None, torch.device("cpu"))
    from expunge.llm.unlearn import sequence_nll

    ctx = _Ctx(cfg, lambda b: sequence_nll(model, b))  # reference == current model
    loss = LLM_METHODS.get("npo")(model, batch, None, ctx)
    # -(2/beta) logsigmoid(0) = (2/beta) log 2
    assert loss.item() == pytest.approx(2 / 0.1 * math.log(2), rel=1e-6)


def test_ga_and_grad_diff_losses_by_hand(tiny):
    model, tok = tiny
    f = make_batch(tok, FORGET, None, torch.device("cpu"))
    r = make_batch(tok, RETAIN, None, torch.device("cpu"))
    with torch.no_grad():
        hf_f = model(**f).loss.item()  # HF's mean token loss, labels = -100 at padding
        hf_r = model(**r).loss.item()
        assert mean_token_nll(model, f).item() == pytest.approx(hf_f, rel=1e-5)
        ga = LLM_METHODS.get("ga")(model, f, r, _Ctx(make_config(method="ga", gamma=2.0), None)).item()
        gd = LLM_METHODS.get("grad_diff")(model, f, r, _Ctx(make_config(method="grad_diff", alpha=0.5), None)).item()
    assert ga == pytest.approx(-2.0 * hf_f, rel=1e-5)
    assert gd == pytest.approx(-hf_f + 0.5 * hf_r, rel=1e-5)


@pytest.mark.parametrize("method", ["ga", "grad_diff", "npo"])
def test_unlearning_raises_the_forget_loss_more_than_the_retain_loss(tiny, method):
    model, tok = tiny
    before_f = token_logprobs(model, tok, FORGET).nll().mean()
    before_r = token_logprobs(model, tok, RETAIN).nll().mean()
    out, stats = unlearn_lm(model, tok, FORGET, RETAIN, make_config(method=method, lr=5e-3, steps=8, batch_size=2))
    after_f = token_logprobs(out, tok, FORGET).nll().mean()
    after_r = token_logprobs(out, tok, RETAIN).nll().mean()
    assert stats["steps"] == 8 and not out.training
    assert after_f - before_f > 0.05
    if method != "ga":
        assert after_f - before_f > after_r - before_r


def test_reference_with_another_tokenizer_is_refused_before_training(tiny):
    model, tok = tiny
    ref = copy.deepcopy(model)
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ExpungeError, match="tokenizer mismatch"):
        unlearn_lm(model, tok, FORGET, RETAIN, make_config(method="npo", steps=1), ref_model=ref,
                   ref_tokenizer=_other_tokenizer())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    check_same_tokenizer(tok, byte_tokenizer(), "byte tokenizers")  # equal vocabularies pass


def test_bad_configs_and_inputs():
    with pytest.raises(ConfigError, match="unknown LLM unlearning method 'nop'; did you mean npo"):
        make_config(method="nop")
    with pytest.raises(ConfigError, match="lr"):
        make_config(lr=-1)
    model, tok = tiny_gpt2(n_layer=1, n_embd=16, n_head=2)
    with pytest.raises(ExpungeError, match="forget set is empty"):
        unlearn_lm(model, tok, [], RETAIN)
    with pytest.raises(ExpungeError, match="needs a retain set"):
        unlearn_lm(model, tok, FORGET, [], make_config(method="grad_diff"))


def test_lora_without_peft_is_a_clear_error(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft -> ImportError
    model, tok = tiny
    with pytest.raises(ExpungeError, match=r"pip install 'expunge\[lora\]'"):
        unlearn_lm(model, tok, FORGET, RETAIN, make_config(lora=True, steps=1))


def test_lora_npo_merges_into_a_plain_model(tiny):
    pytest.importorskip("peft")
    model, tok = tiny
    before = token_logprobs(model, tok, FORGET).nll().mean()
    out, stats = unlearn_lm(model, tok, FORGET, RETAIN, make_config(method="npo", lora=True, lr=1e-2, steps=6,
                                                                    batch_size=2, lora_r=4))
    assert stats["lora"] and type(out).__name__ == "GPT2LMHeadModel"
    assert token_logprobs(out, tok, FORGET).nll().mean() > before


def test_store_round_trip_through_save_and_from_pretrained(tiny, tmp_path):
    model, tok = tiny
    store = Store(str(tmp_path))
    art = save_lm(store, "m", model, tok, config={"note": "tiny"})
    folder = tmp_path / "llm_models" / "m"
    # the folder is a Hugging Face model directory, every file hash-checked under its own name
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(art.files())
    assert all(not (folder / n).is_symlink() for n in art.files())
    loaded, hf_tok = load_lm(store, "m", expect={"config": {"note": "tiny"}})
    text = "Round trip of a stored model."
    assert hf_tok(text)["input_ids"] == tok.encode(text)
    ids = torch.tensor([tok.encode(text)])
    with torch.no_grad():
        np.testing.assert_array_equal(loaded(ids).logits.numpy(), model(ids).logits.numpy())
    with pytest.raises(ArtifactError, match="does not match"):
        load_lm(store, "m", expect={"config": {"note": "other"}})
    with pytest.raises(ArtifactError, match="not in"):
        load_lm(store, "absent")
    for name in ("tokenizer.json", "model.safetensors"):  # a changed byte in either file is refused
        target = (folder / name).resolve()
        raw = bytearray(target.read_bytes())
        raw[-3] ^= 0x01
        target.write_bytes(bytes(raw))
        with pytest.raises(ArtifactError, match="corrupt"):
            load_lm(store, "m")
        raw[-3] ^= 0x01
        target.write_bytes(bytes(raw))
    load_lm(store, "m")
