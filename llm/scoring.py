"""Per-token log-probabilities of a causal LM: one batched pass per (model, dataset), cached.

For every sample the pass records, for each *scored* token t (every token after the first, minus a
masked prefix):

* ``logp[t]``  = log p_θ(x_t | x_<t), the token's log-probability;
* ``mu[t]``    = Σ_v p_θ(v | x_<t) log p_θ(v | x_<t) and ``var[t]`` = Σ_v p (log p)² − mu², the
  probability-weighted mean and variance of the next-token log-probability (Min-K%++'s moments);
* ``mu_u[t]``, ``var_u[t]``: the unweighted mean and the unbiased (ddof = 1) variance of the log-softmax
  over the vocabulary, what the ``mia_llms_benchmark`` implementation of Min-K%++ uses instead.

Every attack reads these arrays (:class:`TokenScores`); nothing re-runs the model.

Batching: sequences are tokenised once, sorted by length (longest first) and cut into batches that
hold at most ``batch_tokens`` padded tokens, so each batch pads only to its own longest member, which
is within a few tokens of its shortest; the vocabulary-sized soft-max work is done only at the valid
positions (padding rows are dropped before it). Batches are padded on the right and run without an
attention mask, which causal attention makes unnecessary (see :func:`token_logprobs`). A target is
scored only where it is a real token. (The reference code masks with ``attention_mask[..., :-1]``, so
in a right-padded batch the last real token's prediction of the first pad token is counted in the
loss; here it is not.)

Prefix masking: ``prefix_tokens`` leading target tokens of each sample are excluded from the scores,
and an optional ``prompt`` is prepended to every text with all its tokens excluded (the IAM fork's
"refusal" / "negative label" query-time simulations ignore such a prefix). The first token of a
sequence has no context and is never scored: with a tokenizer that adds a BOS token (Llama, the byte
tokenizer) every text token is scored, with GPT-2's tokenizer (no BOS) the first one is not, as in the
reference code.

Caching (:class:`LogProbCache`): in memory by (model fingerprint, tokenizer fingerprint, data hash,
settings), and, when a :class:`~expunge.store.Store` is given, persisted as ``.npy`` files in the
artifact ``llm_logprobs/<key>`` with a manifest, so a second run (or another process) reads them back
hash-checked instead of recomputing.

:func:`naive_token_logprobs` is the one-sequence-at-a-time Hugging Face loop the benchmark compares
against; it computes the same arrays.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from expunge.errors import ExpungeError
from expunge.llm.models import encode_texts, model_fingerprint, tokenizer_fingerprint

FIELDS = ("logp", "mu", "var", "mu_u", "var_u")


@dataclass
class TokenScores:
    """Ragged per-token arrays of N samples: sample i owns ``[offsets[i], offsets[i + 1])``."""

    ids: list[str]
    offsets: np.ndarray  # [N + 1] int64
    logp: np.ndarray  # [T] float32
    mu: np.ndarray
    var: np.ndarray
    mu_u: np.ndarray
    var_u: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1])

    def nll(self) -> np.ndarray:
        """ℓ: per-sample mean token negative log-likelihood [N] (float64)."""
        sums = np.add.reduceat(self.logp.astype(np.float64), self.offsets[:-1]) if self.n_tokens else np.zeros(len(self))
        return -sums / self.lengths

    def sample(self, i: int) -> dict[str, np.ndarray]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return {f: getattr(self, f)[a:b] for f in FIELDS}

    def select(self, order: Sequence[int]) -> "TokenScores":
        """Samples in the given order (a permutation or subset)."""
        order = np.asarray(order, dtype=np.int64)
        lengths = self.lengths[order]
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        if len(order):
            idx = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in order])
        else:
            idx = np.zeros(0, dtype=np.int64)
        return TokenScores([self.ids[i] for i in order], offsets,
                           *(getattr(self, f)[idx] for f in FIELDS))

    def align(self, ids: Sequence[str]) -> "TokenScores":
        """Reorder to ``ids`` (merging shards by sample id); every id must be present."""
        pos = {s: i for i, s in enumerate(self.ids)}
        missing = [s for s in ids if s not in pos]
        if missing:
            raise ExpungeError(f"log-probs missing for {len(missing)} sample(s), e.g. {missing[0]!r}")
        return self.select([pos[s] for s in ids])

    @staticmethod
    def concat(parts: Sequence["TokenScores"]) -> "TokenScores":
        ids = [i for p in parts for i in p.ids]
        if len(set(ids)) != len(ids):
            raise ExpungeError("shards overlap: a sample id was scored twice")
        lengths = np.concatenate([p.lengths for p in parts]) if parts else np.zeros(0, np.int64)
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        return TokenScores(ids, offsets, *(np.concatenate([getattr(p, f) for p in parts]) for f in FIELDS))

    def to_files(self) -> dict[str, Any]:
        return {"offsets.npy": self.offsets, **{f"{f}.npy": getattr(self, f) for f in FIELDS},
                "ids.json": list(self.ids)}

    @staticmethod
    def from_files(read: Callable[[str], Any]) -> "TokenScores":
        return TokenScores(list(read("ids.json")), np.asarray(read("offsets.npy"), dtype=np.int64),
                           *(np.asarray(read(f"{f}.npy")) for f in FIELDS))


@dataclass(frozen=True)
class ScoringSettings:
    """What changes the numbers (part of every cache key)."""

    max_length: int | None = None
    prefix_tokens: int = 0
    prompt: str | None = None

    def key(self) -> dict[str, Any]:
        # (no "token" in the key names: the store redacts manifest values under such keys)
        return {"max_length": self.max_length, "prefix_len": self.prefix_tokens, "prompt": self.prompt}


def model_max_length(model: torch.nn.Module) -> int | None:
    cfg = getattr(model, "config", None)
    for attr in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        v = getattr(cfg, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def prepare_sequences(tokenizer: Any, texts: Sequence[str], settings: ScoringSettings,
                      model_limit: int | None = None, ids: Sequence[str] | None = None) -> tuple[list[list[int]], np.ndarray]:
    """Token ids of every sequence and the number of leading *targets* to mask in each.

    Sequences longer than min(``max_length``, the model's context) are truncated at the end.
    """
    limit = min(x for x in (settings.max_length, model_limit, 1 << 30) if x)
    if settings.prompt:
        head = encode_texts(tokenizer, [settings.prompt], add_special_tokens=True)[0]
        bodies = encode_texts(tokenizer, texts, add_special_tokens=False)
        seqs = [head + b for b in bodies]
        masked = np.full(len(seqs), max(len(head) - 1, 0) + settings.prefix_tokens, dtype=np.int64)
    else:
        seqs = encode_texts(tokenizer, texts, add_special_tokens=True)
        masked = np.full(len(seqs), settings.prefix_tokens, dtype=np.int64)
    seqs = [s[:limit] for s in seqs]
    short = [i for i, s in enumerate(seqs) if len(s) - 1 - masked[i] < 1]
    if short:
        name = ids[short[0]] if ids is not None else str(short[0])
        raise ExpungeError(f"sample {name!r} has no token left to score (fewer than 2 tokens after the "
                           f"masked prefix of {int(masked[short[0]])}); {len(short)} sample(s) affected")
    return seqs, masked


def default_batch_tokens(device: torch.device | str) -> int:
    """16,384 padded tokens per batch on a GPU; 2,048 on a CPU, where smaller activations stay in
    cache (measured on the project's 2-core machine with the 2x64 byte-level GPT-2 and the 256 texts of
    ``expunge.jobs.bench_llm``, torch's 2 threads, median of 7 interleaved runs: a whole pass took
    0.33 s at 2,048 tokens per batch, 0.35 s at 1,024 and 0.44 s at 4,096)."""
    return 16384 if torch.device(device).type == "cuda" else 2048


def length_sorted_batches(lengths: Sequence[int], batch_tokens: int, max_batch_size: int) -> list[np.ndarray]:
    """Indices grouped longest-first so each batch holds <= ``batch_tokens`` padded tokens."""
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    batches, cur, cur_max = [], [], 0
    for i in order:
        L = int(lengths[i])
        new_max = max(cur_max, L)
        if cur and (new_max * (len(cur) + 1) > batch_tokens or len(cur) >= max_batch_size):
            batches.append(np.array(cur))
            cur, new_max = [], L
        cur.append(int(i))
        cur_max = new_max
    if cur:
        batches.append(np.array(cur))
    return batches


def token_stats(logits: torch.Tensor, targets: torch.Tensor, chunk: int = 4096) -> list[torch.Tensor]:
    """logp, mu, var, mu_u, var_u for rows of ``logits`` [M, V] (float32, in row chunks).

    The same quantities as :func:`_token_stats_reference` with fewer passes over the [M, V] block:
    products are formed in place, the unweighted variance is two-pass (mean, then the sum of squared
    deviations) instead of ``torch.var_mean``, and the finiteness of the log-softmax is read from
    the [M] results instead of scanning [M, V]: a -inf log-probability makes its row's weighted
    moments nan (p log p = 0 * -inf), and such a chunk is recomputed by the reference. On the
    byte-level benchmark model this is about 3x faster than the reference on a CPU; the results
    agree with it to float32 rounding (max |difference| ~2e-6 on the mean and variance of ~-5.5-valued
    log-probabilities; logp, mu and var are bitwise equal).
    """
    outs: list[list[torch.Tensor]] = [[] for _ in FIELDS]
    n_vocab = logits.shape[-1]
    for s in range(0, logits.shape[0], chunk):
        rows, tgt = logits[s:s + chunk], targets[s:s + chunk]
        lsm = torch.log_softmax(rows.float(), dim=-1)
        lp = lsm.gather(1, tgt[:, None]).squeeze(1)
        plogp = lsm.exp().mul_(lsm)
        mu = plogp.sum(-1)
        var = plogp.mul_(lsm).sum(-1) - mu * mu  # sum_v p (log p)^2 - mu^2
        mu_u = lsm.mean(-1)
        var_u = lsm.sub_(mu_u[:, None]).square_().sum(-1) / max(n_vocab - 1, 1)  # ddof 1, like torch.std
        if not bool(torch.isfinite(torch.stack([mu, var, mu_u, var_u])).all()):
            stats = _token_stats_reference(rows, tgt, chunk)
        else:
            stats = [lp, mu, var.clamp_min(0.0), mu_u, var_u]
        for lst, t in zip(outs, stats):
            lst.append(t)
    return [torch.cat(o) for o in outs]


def _token_stats_reference(logits: torch.Tensor, targets: torch.Tensor, chunk: int = 4096) -> list[torch.Tensor]:
    """The direct computation of :func:`token_stats` (what the per-sequence loop uses, and the
    fallback for chunks with masked vocabulary entries)."""
    outs: list[list[torch.Tensor]] = [[] for _ in FIELDS]
    for s in range(0, logits.shape[0], chunk):
        lsm = torch.log_softmax(logits[s:s + chunk].float(), dim=-1)
        lp = lsm.gather(1, targets[s:s + chunk, None]).squeeze(1)
        if not bool(torch.isfinite(lsm).all()):
            # -inf entries (vocabulary masked by the model) have p = 0: no weight in the weighted moments
            # (0 * -inf would be nan); for the unweighted ones they are clamped to the float32 minimum
            lsm_w = torch.nan_to_num(lsm, neginf=0.0)
            lsm_u = lsm.clamp_min(torch.finfo(torch.float32).min)
        else:
            lsm_w = lsm_u = lsm
        plogp = lsm.exp() * lsm_w
        mu = plogp.sum(-1)
        var = (plogp * lsm_w).sum(-1) - mu * mu
        var_u, mu_u = torch.var_mean(lsm_u, dim=-1)  # one pass; unbiased (ddof 1) like torch.std
        for lst, t in zip(outs, (lp, mu, var.clamp_min(0.0), mu_u, var_u)):
            lst.append(t)
    return [torch.cat(o) for o in outs]


def assemble_scores(ids: Sequence[str], per_sample: list[list[np.ndarray] | None]) -> TokenScores:
    lengths = np.array([len(ps[0]) for ps in per_sample], dtype=np.int64)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    cols = [np.concatenate([ps[k] for ps in per_sample]).astype(np.float32) if per_sample else np.zeros(0, np.float32)
            for k in range(len(FIELDS))]
    return TokenScores(list(ids), offsets, *cols)


def _forward_options(model: torch.nn.Module) -> dict[str, Any]:
    """``use_cache=False`` for models that keep a key/value cache: one scoring pass never reuses it,
    and building it costs time and memory."""
    return {"use_cache": False} if getattr(getattr(model, "config", None), "use_cache", None) is not None else {}


@torch.inference_mode()
def token_logprobs(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], ids: Sequence[str] | None = None,
                   *, settings: ScoringSettings | None = None, batch_tokens: int | None = None, max_batch_size: int = 256,
                   progress: Callable[[int, int], None] | None = None) -> TokenScores:
    """The batched pass (module docstring). ``ids`` default to "0".."N-1". ``batch_tokens`` (padded
    tokens per batch) defaults to :func:`default_batch_tokens` of the model's device.

    Batches are right-padded and passed without an attention mask: under causal attention a real
    position never attends to a later one, so the padding (a repeat of each row's last token) cannot
    change a scored logit, and the model takes its plain causal path, which skips building and
    applying a [B, 1, W, W] padding mask (about 10% of a CPU pass on the benchmark model; the
    logits at the scored positions were bitwise equal to the masked pass there). Token ids are packed
    into one tensor once, each batch is gathered from it, and each batch's statistics are written
    straight into the output arrays (no per-sample slicing).
    """
    settings = settings or ScoringSettings()
    ids = [str(i) for i in range(len(texts))] if ids is None else list(ids)
    seqs, masked = prepare_sequences(tokenizer, texts, settings, model_max_length(model), ids)
    device = model_device(model)
    batch_tokens = batch_tokens or default_batch_tokens(device)
    options = _forward_options(model)
    lengths = np.fromiter((len(q) for q in seqs), dtype=np.int64, count=len(seqs))
    starts = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
    flat = torch.from_numpy(np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int64,
                                        count=int(lengths.sum())))
    n_scored = lengths - 1 - masked  # targets 1 .. len-1, minus the masked prefix
    offsets = np.r_[0, np.cumsum(n_scored)].astype(np.int64)
    cols = [np.empty(int(offsets[-1]), dtype=np.float32) for _ in FIELDS]
    done = 0
    for batch in length_sorted_batches(lengths, batch_tokens, max_batch_size):
        blen, bmask = lengths[batch], masked[batch]
        width = int(blen.max())
        pos = np.arange(width)
        x = flat[torch.from_numpy(starts[batch, None] + np.minimum(pos[None, :], blen[:, None] - 1))].to(device)
        logits = model(input_ids=x, **options).logits[:, :-1]
        # logits at position t predict token t + 1: scored where t + 1 is a real token and t >= the masked prefix
        valid = torch.from_numpy((pos[None, :-1] < blen[:, None] - 1) & (pos[None, :-1] >= bmask[:, None])).to(device)
        stats = token_stats(logits[valid], x[:, 1:][valid])
        # valid rows come out row by row, each row's scored tokens in order: sample i's block of the output
        counts = n_scored[batch]
        dest = np.arange(int(counts.sum())) + np.repeat(offsets[batch] - np.r_[0, np.cumsum(counts)[:-1]], counts)
        for col, t in zip(cols, stats):
            col[dest] = t.cpu().numpy()
        done += len(batch)
        if progress:
            progress(done, len(seqs))
    return TokenScores(ids, offsets, *cols)


@torch.inference_mode()
def naive_token_logprobs(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str],
                         ids: Sequence[str] | None = None, *, settings: ScoringSettings | None = None) -> TokenScores:
    """The baseline: one sequence at a time, as a plain Hugging Face loop (same outputs)."""
    settings = settings or ScoringSettings()
    ids = [str(i) for i in range(len(texts))] if ids is None else list(ids)
    device = model_device(model)
    per_sample = []
    for k, text in enumerate(texts):
        seq, masked = prepare_sequences(tokenizer, [text], settings, model_max_length(model), [ids[k]])
        x = torch.tensor(seq, device=device)
        logits = model(input_ids=x).logits[0, :-1]
        m = int(masked[0])
        stats = _token_stats_reference(logits[m:], x[0, 1 + m:])
        per_sample.append([t.cpu().numpy() for t in stats])
    return assemble_scores(ids, per_sample)


# --- cache -------------------------------------------------------------------------------------
def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def directory_fingerprint(path: str) -> str:
    """A cheap key for a model directory: a stored artifact's content hash, else the names, sizes and
    modification times of its files; for a hub id (no such directory), the id itself."""
    import os

    if not os.path.isdir(path):
        return hashlib.sha256(f"hub:{path}".encode()).hexdigest()
    manifest = os.path.join(path, "manifest.json")
    if os.path.isfile(manifest):
        with open(manifest) as f:
            ch = json.load(f).get("content_hash")
        if ch:
            return ch
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            st = os.stat(os.path.join(root, name))
            h.update(f"{os.path.relpath(os.path.join(root, name), path)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


class LogProbCache:
    """In-memory cache of :class:`TokenScores`, optionally persisted in an artifact store.

    :meth:`scores` returns the scores of ``data`` (a :class:`~expunge.llm.data.TextSet`) under a model in
    this process; :meth:`get` is the general form that takes the keys and a ``compute`` callable (the
    Ray path, where the model lives in actors). Computation happens only when neither the memory nor
    the store has the entry. Keys: model (weight fingerprint, or a stored model's content hash),
    tokenizer fingerprint, data hash (ids and texts) and the scoring settings.
    """

    KIND = "llm_logprobs"

    def __init__(self, store: Any = None, batch_tokens: int | None = None, rebuild: bool = False) -> None:
        self.store = store
        self.batch_tokens = batch_tokens
        self.rebuild = rebuild  # recompute instead of reading the store (and replace what is there)
        self._mem: dict[str, TokenScores] = {}
        self.hits = {"memory": 0, "store": 0, "computed": 0}

    @staticmethod
    def key(model_key: str, tok_key: str, data_hash: str, settings: ScoringSettings) -> str:
        full = _digest({"model": model_key, "tokenizer": tok_key, "data": data_hash, "settings": settings.key()})
        return f"{model_key[:12]}-{data_hash[:12]}-{full[:12]}"

    def get(self, data: Any, compute: Callable[[], TokenScores], *, model_key: str, tokenizer_key: str,
            settings: ScoringSettings | None = None, label: str = "") -> TokenScores:
        settings = settings or ScoringSettings()
        key = self.key(model_key, tokenizer_key, data.hash, settings)
        if key in self._mem:
            self.hits["memory"] += 1
            return self._mem[key]
        if self.store is not None and not self.rebuild:
            art = self.store.get(self.KIND, key)
            if art is not None:
                scores = TokenScores.from_files(art.read)
                self._mem[key] = scores
                self.hits["store"] += 1
                return scores
        t0 = time.perf_counter()
        scores = compute()
        if list(scores.ids) != list(data.ids):
            scores = scores.align(data.ids)
        self.hits["computed"] += 1
        if self.store is not None:
            from expunge.errors import ArtifactError

            try:
                self.store.put(self.KIND, key, scores.to_files(), config=settings.key(), model_key=model_key,
                               tok_fingerprint=tokenizer_key, data_hash=data.hash, label=label,
                               n_scored=scores.n_tokens, seconds=round(time.perf_counter() - t0, 3),
                               replace=self.rebuild, repair=self.rebuild)
            except ArtifactError:
                pass  # a concurrent writer stored the same scores first
        self._mem[key] = scores
        return scores

    def scores(self, model: torch.nn.Module, tokenizer: Any, data: Any, *, settings: ScoringSettings | None = None,
               model_key: str | None = None, label: str = "") -> TokenScores:
        """Scores of ``data`` under an in-process model (batched pass on a miss)."""
        settings = settings or ScoringSettings()
        return self.get(data, lambda: token_logprobs(model, tokenizer, data.texts, data.ids, settings=settings,
                                                     batch_tokens=self.batch_tokens),
                        model_key=model_key or model_fingerprint(model),
                        tokenizer_key=tokenizer_fingerprint(tokenizer), settings=settings, label=label)
