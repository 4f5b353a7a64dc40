"""Per-question scores of a causal LM for the QA metrics (:mod:`expunge.llm.qa_metrics`): answer
log-probabilities given the question, and greedy answers for ROUGE.

Answer log-probabilities (:func:`answer_token_scores`): every (prompt, answer) pair is tokenised as
``tokens(prompt, with the tokenizer's special tokens) + tokens(answer, without)`` and only the
answer's tokens are scored, log p(a_t | prompt, a_<t), as TOFU's loss on answer tokens (its labels
are −100 on the question). Tokenising the two parts separately keeps the boundary where the text puts
it (a BPE tokenizer could otherwise merge the prompt's last characters with the answer's first).
Batches are length-sorted and padded on the right as in :func:`expunge.llm.scoring.token_logprobs`,
whose per-token statistics (:class:`~expunge.llm.scoring.TokenScores`) they return, so
``.nll()`` is ℓ̄, the mean answer-token NLL. With a :class:`~expunge.llm.scoring.LogProbCache` the
scores are cached (in memory and in the store) under a key of the model, the tokenizer and every
prompt and answer.

Greedy answers (:func:`generate_answers`): argmax decoding from the prompt through Hugging Face
``generate``, batched with left padding (``generate`` derives position ids from the attention mask,
so a padded prompt generates what it generates alone), until the end-of-sequence token, the stop
string (default a newline: the QA format puts one answer per line) or ``max_new_tokens``; the text is
cut at the stop string and stripped. TOFU generates the same way (greedy, answer after the question
prompt) and scores ROUGE-L recall against the reference answer.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from expunge.errors import ExpungeError
from expunge.llm.models import encode_texts, model_fingerprint, pad_id, tokenizer_fingerprint
from expunge.llm.qa_metrics import QASplitScores, rouge_l_recall
from expunge.llm.scoring import (LogProbCache, ScoringSettings, TokenScores, assemble_scores, model_device, token_stats,
                                 default_batch_tokens, length_sorted_batches, model_max_length)
from expunge.llm.tofu import qa_prompt


@dataclass(frozen=True, eq=False)
class AnswerSet:
    """(prompt, answer) pairs with unique ids, hashable for :class:`~expunge.llm.scoring.LogProbCache`."""

    ids: tuple[str, ...]
    prompts: tuple[str, ...]
    answers: tuple[str, ...]
    _hash: list = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.prompts) == len(self.answers)):
            raise ExpungeError(f"{len(self.ids)} ids, {len(self.prompts)} prompts and {len(self.answers)} answers")
        if len(set(self.ids)) != len(self.ids):
            raise ExpungeError("answer ids are not unique")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def hash(self) -> str:
        """sha256 over a tag and every (id, prompt, answer) in order; the tag keeps it apart from the
        hash of a :class:`~expunge.llm.data.TextSet` (whose texts are scored whole)."""
        if not self._hash:
            h = hashlib.sha256(b"qa-answer-tokens\x00")
            for i, p, a in zip(self.ids, self.prompts, self.answers):
                for part in (i, p, a):
                    h.update(part.encode())
                    h.update(b"\x00")
                h.update(b"\x01")
            self._hash.append(h.hexdigest())
        return self._hash[0]


def _encode_pairs(tokenizer: Any, data: AnswerSet, limit: int | None) -> tuple[list[list[int]], np.ndarray]:
    """Token ids of prompt + answer, and the number of leading targets (prompt tokens − 1) to mask."""
    heads = encode_texts(tokenizer, data.prompts, add_special_tokens=True)
    tails = encode_texts(tokenizer, data.answers, add_special_tokens=False)
    seqs, masked = [], np.zeros(len(data), dtype=np.int64)
    for k, (h, t) in enumerate(zip(heads, tails)):
        if not h:
            raise ExpungeError(f"QA pair {data.ids[k]!r}: the prompt has no token, so the answer's first "
                               "token has no context")
        s = (h + t)[:limit] if limit else h + t
        if len(s) <= len(h):
            raise ExpungeError(f"QA pair {data.ids[k]!r}: no answer token left within the model's "
                               f"{limit}-token context (prompt of {len(h)} tokens)")
        seqs.append(s)
        masked[k] = len(h) - 1  # target j predicts token j + 1: answer tokens are targets >= len(h) - 1
    return seqs, masked


@torch.inference_mode()
def _answer_pass(model: torch.nn.Module, tokenizer: Any, data: AnswerSet, batch_tokens: int | None,
                 max_batch_size: int) -> TokenScores:
    seqs, masked = _encode_pairs(tokenizer, data, model_max_length(model))
    device = model_device(model)
    batch_tokens = batch_tokens or default_batch_tokens(device)
    pad = pad_id(tokenizer)
    lengths = [len(s) for s in seqs]
    per_sample: list[list[np.ndarray] | None] = [None] * len(seqs)
    for batch in length_sorted_batches(lengths, batch_tokens, max_batch_size):
        width = max(lengths[i] for i in batch)
        x = torch.full((len(batch), width), pad, dtype=torch.long)
        att = torch.zeros((len(batch), width), dtype=torch.long)
        for r, i in enumerate(batch):
            x[r, :lengths[i]] = torch.tensor(seqs[i])
            att[r, :lengths[i]] = 1
        x, att = x.to(device), att.to(device)
        logits = model(input_ids=x, attention_mask=att).logits[:, :-1]
        pos = torch.arange(width - 1, device=device)[None, :]
        valid = att[:, 1:].bool() & (pos >= torch.as_tensor(masked[batch], device=device)[:, None])
        stats = [t.cpu().numpy() for t in token_stats(logits[valid], x[:, 1:][valid])]
        start = 0
        for r, n in enumerate(valid.sum(1).tolist()):
            per_sample[batch[r]] = [a[start:start + n] for a in stats]
            start += n
    return assemble_scores(list(data.ids), per_sample)


def answer_token_scores(model: torch.nn.Module, tokenizer: Any, prompts: Sequence[str], answers: Sequence[str],
                        ids: Sequence[str] | None = None, *, cache: LogProbCache | None = None,
                        model_key: str | None = None, batch_tokens: int | None = None, max_batch_size: int = 256,
                        label: str = "") -> TokenScores:
    """Per-token statistics of each answer's tokens given its prompt (module docstring); ``.nll()``
    gives ℓ̄(a | q) per pair. ``ids`` default to "0".."N-1"; with ``cache`` the pass runs only on a miss
    (``model_key`` defaults to the weights' fingerprint)."""
    data = AnswerSet(tuple(str(i) for i in (range(len(prompts)) if ids is None else ids)), tuple(prompts),
                     tuple(answers))
    bt = batch_tokens if cache is None or batch_tokens is not None else cache.batch_tokens

    def compute() -> TokenScores:
        return _answer_pass(model, tokenizer, data, bt, max_batch_size)

    if cache is None:
        return compute()
    return cache.get(data, compute, model_key=model_key or model_fingerprint(model),
                     tokenizer_key=tokenizer_fingerprint(tokenizer), settings=ScoringSettings(), label=label)


def _decode(tokenizer: Any, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True)


def _stop_on_text(tokenizer: Any, stop: str, start: int) -> Any:
    """A ``StoppingCriteria``: per row, whether the text generated after column ``start`` holds
    ``stop`` (rows stop independently; ``generate`` pads the finished ones)."""
    from transformers import StoppingCriteria

    class StopOnText(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            done = [stop in _decode(tokenizer, row[start:].tolist()) for row in input_ids]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StopOnText()


@torch.inference_mode()
def generate_answers(model: torch.nn.Module, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int = 64,
                     stop: str | None = "\n", batch_size: int = 32) -> list[str]:
    """Greedy continuation of each prompt (module docstring), cut at ``stop`` and stripped.

    Runs Hugging Face ``generate`` with its own greedy configuration (``do_sample=False``; a model's
    sampling defaults do not apply) on left-padded batches of similar length."""
    from transformers import GenerationConfig, StoppingCriteriaList

    if max_new_tokens < 1:
        raise ExpungeError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    device = model_device(model)
    encoded = encode_texts(tokenizer, prompts, add_special_tokens=True)
    limit = model_max_length(model)
    for k, e in enumerate(encoded):
        if not e:
            raise ExpungeError(f"prompt {k} has no token to generate from")
        if limit and len(e) >= limit:
            raise ExpungeError(f"prompt {k} has {len(e)} tokens, the model's context is {limit}")
    eos = getattr(tokenizer, "eos_token_id", None)
    pad = pad_id(tokenizer)
    out: list[str] = [""] * len(prompts)
    order = np.argsort([len(e) for e in encoded], kind="stable")  # similar lengths share a batch
    for s in range(0, len(order), batch_size):
        batch = [int(i) for i in order[s:s + batch_size]]
        width = max(len(encoded[i]) for i in batch)
        x = torch.full((len(batch), width), pad, dtype=torch.long)
        att = torch.zeros((len(batch), width), dtype=torch.long)
        for r, i in enumerate(batch):  # left padding: every prompt ends at the last column
            x[r, width - len(encoded[i]):] = torch.tensor(encoded[i])
            att[r, width - len(encoded[i]):] = 1
        cfg = GenerationConfig(max_new_tokens=min(max_new_tokens, limit - width) if limit else max_new_tokens,
                               do_sample=False, num_beams=1, pad_token_id=pad, eos_token_id=eos)
        criteria = StoppingCriteriaList([_stop_on_text(tokenizer, stop, width)]) if stop else None
        gen = model.generate(input_ids=x.to(device), attention_mask=att.to(device), generation_config=cfg,
                             stopping_criteria=criteria)
        for r, i in enumerate(batch):
            ids = gen[r, width:].tolist()
            if eos is not None and eos in ids:
                ids = ids[:ids.index(eos)]
            text = _decode(tokenizer, ids)
            out[i] = (text.split(stop, 1)[0] if stop else text).strip()
    return out


def score_qa_split(model: torch.nn.Module, tokenizer: Any, pairs: Sequence[Any], *, perturbed: bool = True,
                   generate: bool = True, cache: LogProbCache | None = None, model_key: str | None = None,
                   max_new_tokens: int = 64, batch_tokens: int | None = None, gen_batch_size: int = 32,
                   prompt: Callable[[str], str] | None = None, label: str = "") -> QASplitScores:
    """One model's :class:`~expunge.llm.qa_metrics.QASplitScores` on QA pairs (objects with ``id``,
    ``question``, ``answer``, ``paraphrased_answer`` and ``perturbed_answers``, e.g.
    :class:`~expunge.llm.tofu.QAPair`): every answer, paraphrase and perturbation in one cached
    answer-token pass (``perturbed``), and the greedy answers' ROUGE-L recall (``generate``).

    ``prompt`` turns a question into the text the answer follows (default
    :func:`expunge.llm.tofu.qa_prompt`, the format the mini-TOFU models train on; a model fine-tuned
    with a chat template needs that template here). A leading space joins prompt and answer, as in
    :func:`expunge.llm.tofu.qa_text`. Perturbed answers must be equally many per question."""
    make_prompt = prompt or qa_prompt
    pairs = list(pairs)
    if not pairs:
        raise ExpungeError("no QA pairs to score")
    ids, prompts, answers = [], [], []

    def add(key: str, prompt: str, answer: str) -> None:
        ids.append(key)
        prompts.append(prompt)
        answers.append(" " + answer)

    n_pert = len(pairs[0].perturbed_answers) if perturbed else 0
    for p in pairs:
        add(f"{p.id}|answer", make_prompt(p.question), p.answer)
        if perturbed:
            if p.paraphrased_answer is None or not p.perturbed_answers:
                raise ExpungeError(f"QA pair {p.id!r} has no paraphrased or perturbed answers (truth ratio needs both)")
            if len(p.perturbed_answers) != n_pert:
                raise ExpungeError(f"QA pair {p.id!r} has {len(p.perturbed_answers)} perturbed answers, "
                                   f"{pairs[0].id!r} has {n_pert}")
            add(f"{p.id}|paraphrased", make_prompt(p.question), p.paraphrased_answer)
            for m, w in enumerate(p.perturbed_answers):
                add(f"{p.id}|perturbed{m}", make_prompt(p.question), w)
    nll = answer_token_scores(model, tokenizer, prompts, answers, ids, cache=cache, model_key=model_key,
                              batch_tokens=batch_tokens, label=label).nll()
    per_q = nll.reshape(len(pairs), 1 + (1 + n_pert if perturbed else 0))
    scores = QASplitScores(answer_nll=per_q[:, 0])
    if perturbed:
        scores.paraphrased_nll = per_q[:, 1]
        scores.perturbed_nll = per_q[:, 2:]
    if generate:
        scores.generated = generate_answers(model, tokenizer, [make_prompt(p.question) for p in pairs],
                                            max_new_tokens=max_new_tokens, batch_size=gen_batch_size)
        scores.rouge = rouge_l_recall(scores.generated, [p.answer for p in pairs])
    return scores
