"""The batched log-prob pass against the naive loop and HF's own loss; batching, masking, caching."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from expunge.errors import ArtifactError, ExpungeError
from expunge.llm.data import text_set
from expunge.llm.models import byte_tokenizer, tiny_gpt2, tokenizer_fingerprint
from expunge.llm.scoring import (FIELDS, LogProbCache, ScoringSettings, length_sorted_batches, naive_token_logprobs,
                                 token_logprobs)
from expunge.store import Store

TEXTS = ["hello world", "a", "The quick brown fox jumps over the lazy dog.", "xy" * 40, "Zz", "tokens " * 9]


@pytest.fixture(scope="module")
def tiny():
    return tiny_gpt2(n_layer=2, n_embd=32, n_head=2, n_positions=128, seed=1)


def test_batched_equals_naive_across_several_batches(tiny):
    model, tok = tiny
    fast = token_logprobs(model, tok, TEXTS, batch_tokens=100)  # forces several length-sorted batches
    slow = naive_token_logprobs(model, tok, TEXTS)
    assert fast.ids == slow.ids == [str(i) for i in range(len(TEXTS))]
    np.testing.assert_array_equal(fast.lengths, [len(t.encode()) for t in TEXTS])  # BOS + bytes, first unscored
    for f in FIELDS:
        np.testing.assert_allclose(getattr(fast, f), getattr(slow, f), atol=2e-5, err_msg=f)


def test_mean_nll_matches_hf_loss(tiny):
    model, tok = tiny
    scores = token_logprobs(model, tok, TEXTS[:3])
    for i, t in enumerate(TEXTS[:3]):
        ids = torch.tensor([tok.encode(t)])
        with torch.no_grad():
            hf = model(ids, labels=ids).loss.item()
        assert scores.nll()[i] == pytest.approx(hf, abs=1e-5)


def test_prefix_and_prompt_masking(tiny):
    model, tok = tiny
    texts = TEXTS[2:4]
    full = token_logprobs(model, tok, texts)
    cut = token_logprobs(model, tok, texts, settings=ScoringSettings(prefix_tokens=3))
    np.testing.assert_array_equal(cut.lengths, full.lengths - 3)
    np.testing.assert_allclose(cut.logp, np.concatenate([full.sample(i)["logp"][3:] for i in range(2)]), atol=1e-5)
    prompted = ScoringSettings(prompt="Ignore this: ", prefix_tokens=1)
    a = token_logprobs(model, tok, texts, settings=prompted, batch_tokens=64)
    b = naive_token_logprobs(model, tok, texts, settings=prompted)
    np.testing.assert_array_equal(a.lengths, [len(t.encode()) - 1 for t in texts])  # only text tokens, minus 1
    np.testing.assert_allclose(a.logp, b.logp, atol=2e-5)
    with pytest.raises(ExpungeError, match="no token left"):
        token_logprobs(model, tok, ["ab"], settings=ScoringSettings(prefix_tokens=5))


def test_length_sorted_batches_respect_budget_and_cover_everything():
    lengths = [5, 50, 7, 49, 20, 21, 3]
    batches = length_sorted_batches(lengths, batch_tokens=100, max_batch_size=3)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    for b in batches:
        assert max(lengths[i] for i in b) * len(b) <= 100 and len(b) <= 3
    # longest first, and each batch's members are adjacent in length order
    order = [lengths[i] for b in batches for i in b]
    assert order == sorted(lengths, reverse=True)


def test_hf_byte_tokenizer_is_identical(tiny):
    model, tok = tiny
    hf = byte_tokenizer()
    text = "héllo Wörld\n  x"
    assert hf(text)["input_ids"] == tok.encode(text)
    assert tokenizer_fingerprint(hf) == tokenizer_fingerprint(byte_tokenizer())
    np.testing.assert_array_equal(token_logprobs(model, hf, TEXTS).logp, token_logprobs(model, tok, TEXTS).logp)


def test_cache_memory_then_store_then_corruption(tiny, tmp_path):
    model, tok = tiny
    data = text_set(TEXTS, ids=[f"s{i}" for i in range(len(TEXTS))])
    store = Store(str(tmp_path))
    c1 = LogProbCache(store)
    a = c1.scores(model, tok, data)
    assert c1.scores(model, tok, data) is a and c1.hits == {"memory": 1, "store": 0, "computed": 1}
    c2 = LogProbCache(store)
    b = c2.scores(model, tok, data)
    assert c2.hits["store"] == 1 and b.ids == a.ids
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    # a flipped cached file is refused by name
    (key,) = store.keys(LogProbCache.KIND)
    path = tmp_path / LogProbCache.KIND / key / "logp.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="corrupt"):
        LogProbCache(store).scores(model, tok, data)
    # --rebuild recomputes and replaces it: intact again, the same scores
    LogProbCache(store, rebuild=True).scores(model, tok, data)
    store.get(LogProbCache.KIND, key, verify=True)
    np.testing.assert_array_equal(LogProbCache(store).scores(model, tok, data).logp, a.logp)
    # a different model (one weight changed) is a different key: computed, not read
    other = type(model)(model.config).eval()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        other.transformer.wte.weight[65, 0] += 1.0
    c3 = LogProbCache(store)
    c3.scores(other, tok, data)
    assert c3.hits == {"memory": 0, "store": 0, "computed": 1}


def test_align_merges_shards_by_id(tiny):
    model, tok = tiny
    whole = token_logprobs(model, tok, TEXTS, [f"s{i}" for i in range(len(TEXTS))])
    a = whole.select([4, 1, 0])
    b = whole.select([5, 3, 2])
    from expunge.llm.scoring import TokenScores

    merged = TokenScores.concat([b, a]).align(whole.ids)
    np.testing.assert_array_equal(merged.logp, whole.logp)
    np.testing.assert_array_equal(merged.offsets, whole.offsets)
    with pytest.raises(ExpungeError, match="missing"):
        a.align(whole.ids)


def test_llm_core_imports_without_ray():
    import subprocess
    import sys

    code = ("import sys, expunge.llm.attacks, expunge.llm.audit, expunge.llm.unlearn, expunge.llm.parallel, "
            "expunge.jobs.llm_audit, expunge.jobs.llm_demo; print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_fast_token_stats_match_the_reference_including_masked_vocabulary():
    from expunge.llm.scoring import token_stats, _token_stats_reference

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 259, generator=g) * 4
    logits[::7, :50] = float("-inf")  # vocabulary a model masks out: those chunks take the reference path
    targets = torch.randint(50, 259, (300,), generator=g)
    for chunk in (64, 4096):
        fast, ref = token_stats(logits, targets, chunk=chunk), _token_stats_reference(logits, targets, chunk=chunk)
        for name, a, b in zip(FIELDS, fast, ref):
            # logp, mu and var are the same operations; mu_u and var_u differ by float32 summation order
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-5, equal_nan=True, err_msg=name)
    finite = logits[1:7]  # rows without masked entries: the fast path
    for name, a, b in zip(FIELDS[:3], token_stats(finite, targets[1:7]), _token_stats_reference(finite, targets[1:7])):
        assert torch.equal(a, b), name


def test_batched_pass_with_a_masked_vocabulary_equals_the_loop(tiny):
    model, tok = tiny
    handle = model.lm_head.register_forward_hook(lambda m, i, out: out.index_fill(-1, torch.arange(200, 250), float("-inf")))
    try:
        fast = token_logprobs(model, tok, TEXTS, batch_tokens=100)
        slow = naive_token_logprobs(model, tok, TEXTS)
    finally:
        handle.remove()
    for f in FIELDS:
        np.testing.assert_allclose(getattr(fast, f), getattr(slow, f), atol=2e-5, err_msg=f)
    assert np.isfinite(fast.mu).all() and np.isfinite(fast.var).all()
