"""Scoring and unlearning language models on Ray (imported only when Ray is used).

Scoring: :class:`RayScorer` starts one actor per GPU (``num_gpus=1``) or, without GPUs, one per CPU
slot (``num_cpus=1``, one torch thread each); every actor loads the model from its directory and keeps
it until the next model is loaded (one pool serves all the models of an audit, so actor start-up is
paid once). :meth:`RayScorer.score` shards the sequences across the actors so each gets about the same
number of characters (longest first, each to the least-loaded actor), every actor runs the batched
pass of :func:`expunge.llm.scoring.token_logprobs` on its shard, and the shards are merged by sample id
into the data's order. The numbers equal the in-process pass (same code, same per-sequence maths).

Unlearning: :func:`unlearn_on_ray` runs :func:`unlearn_task` (load, unlearn, store) as Ray tasks, one
per GPU or CPU slot, through :func:`expunge.runtime.run_tasks`, so several methods or forget sets
run side by side and a user error inside a task surfaces as the same one-line ExpungeError.

The Ray calls live in :mod:`expunge.runtime.actors` and :mod:`expunge.runtime.tasks`; :mod:`expunge.llm` imports no Ray.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from expunge.llm.scoring import FIELDS, ScoringSettings, TokenScores


@dataclass(frozen=True)
class ModelSpec:
    """Where an actor loads a model from (a local Hugging Face directory, or a hub id when online)."""

    path: str
    trust_remote_code: bool = False

    def load(self, device: str):
        from expunge.llm.models import load_causal_lm

        return load_causal_lm(self.path, trust_remote_code=self.trust_remote_code, device=device)


def shard_by_length(lengths: Sequence[int], n: int) -> list[list[int]]:
    """Greedy longest-processing-time split of indices into ``n`` shards of similar total length."""
    loads = np.zeros(n)
    shards: list[list[int]] = [[] for _ in range(n)]
    for i in np.argsort(-np.asarray(lengths), kind="stable"):
        k = int(np.argmin(loads))
        shards[k].append(int(i))
        loads[k] += lengths[i]
    return [s for s in shards if s]


class ScorerActor:
    """Holds one model at a time; scores shards of sequences (wrapped with ``ray.remote`` by
    :class:`RayScorer`). ``load`` swaps the model, so one pool of actors serves every model of an audit."""

    def __init__(self, threads: int = 1) -> None:
        import torch

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cpu":
            torch.set_num_threads(max(1, threads))
        self.spec: ModelSpec | None = None
        self.model = self.tokenizer = None

    def load(self, spec: ModelSpec) -> bool:
        if spec != self.spec:
            self.model = self.tokenizer = None
            self.model, self.tokenizer = spec.load(self.device)
            self.spec = spec
        return True

    def score(self, ids: list[str], texts: list[str], settings: dict[str, Any], batch_tokens: int | None) -> dict[str, Any]:
        from expunge.llm.scoring import token_logprobs

        s = token_logprobs(self.model, self.tokenizer, texts, ids, settings=ScoringSettings(**settings),
                           batch_tokens=batch_tokens)
        return {"ids": s.ids, "offsets": s.offsets, **{f: getattr(s, f) for f in FIELDS}}


class RayScorer:
    """A pool of :class:`ScorerActor` (:class:`expunge.runtime.actors.ActorPool`: one actor per GPU
    in the cluster, else one per CPU, at most ``max_cpu_actors``). :meth:`load` puts a model into
    every actor; :meth:`score` shards a dataset across them and merges the shards by sample id."""

    def __init__(self, spec: ModelSpec | None = None, n_actors: int | None = None, max_cpu_actors: int = 4) -> None:
        from expunge.runtime.actors import ActorPool

        self.pool = ActorPool(ScorerActor, n_actors, max_cpu_actors)
        self.spec: ModelSpec | None = None
        if spec is not None:
            self.load(spec)

    @property
    def actors(self) -> list:
        return self.pool.actors

    def load(self, spec: ModelSpec) -> None:
        self.pool.call_all("load", spec)
        self.spec = spec

    def score(self, data: Any, settings: ScoringSettings | None = None, batch_tokens: int | None = None) -> TokenScores:
        if self.spec is None:
            raise RuntimeError("RayScorer.score before load")
        settings = settings or ScoringSettings()
        shards = shard_by_length([len(t) for t in data.texts], len(self.actors))
        parts = self.pool.call_each("score", [([data.ids[i] for i in sh], [data.texts[i] for i in sh], asdict(settings),
                                               batch_tokens) for sh in shards])
        merged = TokenScores.concat([TokenScores(p["ids"], np.asarray(p["offsets"]), *(p[f] for f in FIELDS))
                                     for p in parts])
        return merged.align(data.ids)

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> "RayScorer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def unlearn_task(model_path: str, forget: list[str], retain: list[str], cfg: dict[str, Any], store_uri: str,
                 key: str, ref_path: str | None = None, replace: bool = False,
                 config_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load, unlearn and store one model as ``llm_models/<key>`` (a Ray task body; also callable
    directly). The manifest's config is ``{"unlearn": cfg, **config_extra}``."""
    import torch

    from expunge.llm.artifacts import save_lm
    from expunge.llm.models import load_causal_lm
    from expunge.llm.unlearn import make_config, unlearn_lm
    from expunge.store import Store

    device = "cuda" if torch.cuda.is_available() else "cpu"
    c = make_config(**cfg)
    model, tok = load_causal_lm(model_path, device=device, dtype=torch.float32)
    ref = ref_tok = None
    if ref_path:
        ref, ref_tok = load_causal_lm(ref_path, device=device, dtype=torch.float32)
    model, stats = unlearn_lm(model, tok, forget, retain, c, ref_model=ref, ref_tokenizer=ref_tok)
    art = save_lm(Store(store_uri), key, model, tok, config={"unlearn": c.model_dump(), **(config_extra or {})},
                  replace=replace, source=model_path, unlearn_stats=stats)
    return {"key": key, "path": art.path, **stats}


def unlearn_on_ray(calls: Sequence[dict[str, Any]], use_ray: bool = True) -> list[dict[str, Any]]:
    """Run :func:`unlearn_task` for each keyword dict in ``calls`` (one GPU, or one CPU, per task)."""
    from expunge.runtime import run_tasks

    gpus = 0
    if use_ray:
        from expunge.runtime.actors import cluster_gpus

        gpus = 1 if cluster_gpus() else 0
    return run_tasks(unlearn_task, list(calls), num_cpus=1, num_gpus=gpus, desc="llm unlearning", unit="model",
                     use_ray=use_ray)
