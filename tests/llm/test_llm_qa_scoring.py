"""Answer-token log-probabilities and greedy answers of a tiny GPT-2 built from config (no download)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from expunge.errors import ExpungeError
from expunge.llm.models import byte_tokenizer, tiny_gpt2
from expunge.llm.qa_metrics import QAInputs, run_qa_metrics
from expunge.llm.qa_scoring import answer_token_scores, generate_answers, score_qa_split
from expunge.llm.scoring import LogProbCache
from expunge.llm.tofu import make_mini_tofu
from expunge.llm.train import torch_threads, train_lm
from expunge.store import Store

PROMPTS = ["Question: Where was Ana born?\nAnswer:", "Question: Who?\nAnswer:", "Q:"]
ANSWERS = [" Ana was born in Porto, Portugal.", " Ana.", " a much longer answer than the others, to pad"]


@pytest.fixture(scope="module")
def tiny():
    return tiny_gpt2(n_layer=2, n_embd=32, n_head=2, n_positions=128, seed=1)


def _hf_answer_loss(model, tok, prompt, answer):
    """The Hugging Face loss with labels −100 on the prompt: the mean NLL of the answer's tokens."""
    head = tok.encode(prompt)
    ids = torch.tensor([head + tok.encode(answer, add_special_tokens=False)])
    labels = ids.clone()
    labels[0, :len(head)] = -100
    with torch.no_grad():
        return model(ids, labels=labels).loss.item()


def test_answer_nll_is_the_loss_on_answer_tokens_only(tiny):
    model, tok = tiny
    scores = answer_token_scores(model, tok, PROMPTS, ANSWERS, batch_tokens=60)  # several padded batches
    np.testing.assert_array_equal(scores.lengths, [len(a.encode()) for a in ANSWERS])
    for i, (p, a) in enumerate(zip(PROMPTS, ANSWERS)):
        assert scores.nll()[i] == pytest.approx(_hf_answer_loss(model, tok, p, a), abs=1e-5)
    alone = [answer_token_scores(model, tok, [p], [a]).nll()[0] for p, a in zip(PROMPTS, ANSWERS)]
    np.testing.assert_allclose(scores.nll(), alone, atol=1e-5)
    # the Hugging Face form of the byte tokenizer gives the same numbers
    np.testing.assert_allclose(answer_token_scores(model, byte_tokenizer(), PROMPTS, ANSWERS).nll(), scores.nll(), atol=1e-5)


def test_answer_scores_are_cached_by_content_in_memory_and_in_the_store(tiny, tmp_path):
    model, tok = tiny
    cache = LogProbCache(Store(str(tmp_path)))
    a = answer_token_scores(model, tok, PROMPTS, ANSWERS, cache=cache)
    b = answer_token_scores(model, tok, PROMPTS, ANSWERS, cache=cache)
    assert b is a and cache.hits == {"memory": 1, "store": 0, "computed": 1}
    c = answer_token_scores(model, tok, PROMPTS, [ANSWERS[0], " Bo.", ANSWERS[2]], cache=cache)
    assert cache.hits["computed"] == 2 and c.nll()[1] != a.nll()[1]
    fresh = LogProbCache(Store(str(tmp_path)))  # another process: read back from the store
    d = answer_token_scores(model, tok, PROMPTS, ANSWERS, cache=fresh)
    assert fresh.hits == {"memory": 0, "store": 1, "computed": 0}
    np.testing.assert_array_equal(d.logp, a.logp)


def test_answer_beyond_the_context_is_an_error(tiny):
    model, tok = tiny
    with pytest.raises(ExpungeError, match="no answer token left"):
        answer_token_scores(model, tok, ["x" * 200], [" y"], ids=["long"])


def _greedy_by_hand(model, tok, prompt, n):
    ids = tok.encode(prompt)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return tok.decode(ids[len(tok.encode(prompt)):])


def test_greedy_answers_batched_equal_one_at_a_time_and_the_plain_argmax(tiny):
    model, tok = tiny
    batched = generate_answers(model, tok, PROMPTS, max_new_tokens=8, stop=None, batch_size=3)
    single = [generate_answers(model, tok, [p], max_new_tokens=8, stop=None)[0] for p in PROMPTS]
    assert batched == single
    assert batched == [_greedy_by_hand(model, tok, p, 8).strip() for p in PROMPTS]


def test_generation_stops_at_the_newline_after_the_answer():
    # a tiny model that has seen a two-question text continues past the first answer's newline
    model, tok = tiny_gpt2(n_layer=2, n_embd=32, n_head=2, n_positions=128, seed=2)
    text = "Question: Where was Ana born?\nAnswer: Porto.\nQuestion: Who?\nAnswer: Ana.\n"
    with torch_threads(1):  # a tiny model trains faster on one thread of a shared CPU (see train.py)
        train_lm(model, tok, [text], steps=60, batch_size=4, lr=1e-2, seed=0)
    full = generate_answers(model, tok, PROMPTS[:2], max_new_tokens=20, stop=None)
    assert full[0].startswith("Porto.\nQuestion") and all("\n" in f for f in full)
    cut = generate_answers(model, tok, PROMPTS[:2], max_new_tokens=20)
    assert cut[0] == "Porto." and cut == [f.split("\n", 1)[0].strip() for f in full]
    assert cut == [generate_answers(model, tok, [p], max_new_tokens=20)[0] for p in PROMPTS[:2]]


def test_score_qa_split_feeds_the_metrics(tiny):
    model, tok = tiny
    bench = make_mini_tofu(10, facts=["genre", "birth_year"], n_perturbed=3, max_passages=1)
    split = score_qa_split(model, tok, bench.forget, max_new_tokens=6)
    n = len(bench.forget)
    assert split.answer_nll.shape == (n,) and split.perturbed_nll.shape == (n, 3) and split.rouge.shape == (n,)
    first = bench.forget[0]
    direct = answer_token_scores(model, tok, [first.prompt] * 2, [" " + first.answer, " " + first.perturbed_answers[2]])
    np.testing.assert_allclose([split.answer_nll[0], split.perturbed_nll[0, 2]], direct.nll(), atol=1e-6)
    assert np.all((split.rouge >= 0) & (split.rouge <= 1))
    chat = score_qa_split(model, tok, bench.forget[:2], generate=False, prompt=lambda q: f"<user> {q} <bot>")
    other = answer_token_scores(model, tok, [f"<user> {first.question} <bot>"], [" " + first.answer])
    assert chat.answer_nll[0] == pytest.approx(other.nll()[0], abs=1e-6) and chat.rouge is None
    out, skipped = run_qa_metrics(QAInputs(forget=split, retain_model_forget=split))
    assert out["forget_quality"] == pytest.approx(1.0)  # a model compared with itself
    assert 0 < out["forget_truth_ratio"] <= 1 and "model_utility" in skipped
    with pytest.raises(ExpungeError, match="no paraphrased or perturbed"):
        score_qa_split(model, tok, [first.__class__("x", "q?", "a.")], generate=False)
