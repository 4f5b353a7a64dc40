"""One LLM audit: score every model once per dataset (cached), run the attacks, evaluate.

Roles (the IAM paper's LLM protocol): the **target** is the model under audit (e.g. after
unlearning); **fit** models are IN for every query (e.g. the original model); **reference** models
never saw the queries (OUT). Optional **checkpoints** of a training run with their fraction of
training give the ScoreUI correlation. Each model scores its own tokenisation, so models with
different tokenizers can be mixed (all attacks here combine models at the sequence level).

The passes needed are derived from the chosen attacks: the target on the queries (always), on the
lowercased queries (``lowercase``) and on the population (``rmia_online``); fit and reference models
on the queries and, for RMIA, the population. Every pass goes through one :class:`LogProbCache`, in
this process or on Ray actors (:mod:`expunge.llm.parallel`).
"""
from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from expunge.errors import ExpungeError
from expunge.llm.attacks import ATTACKS, AttackInputs, resolve_attacks, run_attacks
from expunge.llm.data import TextSet
from expunge.llm.evaluate import TASKS, evaluate_scores, scoreui_table
from expunge.llm.models import check_same_tokenizer, load_causal_lm, model_fingerprint, tokenizer_fingerprint
from expunge.llm.scoring import LogProbCache, ScoringSettings, TokenScores, directory_fingerprint


@dataclass
class ModelRef:
    """A model to score: a directory / hub id (``path``), or an in-process ``model`` + ``tokenizer``."""

    name: str
    path: str | None = None
    model: Any = None
    tokenizer: Any = None
    trust_remote_code: bool = False
    _key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.path is None and (self.model is None or self.tokenizer is None):
            raise ValueError(f"model {self.name}: give a path or a model and its tokenizer")

    def key(self) -> str:
        if self._key is None:
            self._key = directory_fingerprint(self.path) if self.model is None else model_fingerprint(self.model)
        return self._key

    def get_tokenizer(self) -> Any:
        if self.tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self.tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=self.trust_remote_code)
            except (OSError, ValueError) as exc:
                raise ExpungeError(f"tokenizer of {self.name} ({self.path}) could not be loaded: "
                                   f"{str(exc).splitlines()[0]}") from None
        return self.tokenizer


class Scorer:
    """Computes (or fetches) :class:`TokenScores` of datasets under models, in-process or on Ray."""

    def __init__(self, cache: LogProbCache | None = None, settings: ScoringSettings | None = None, *,
                 use_ray: bool = False, n_actors: int | None = None, device: str = "cpu",
                 log: Callable[[str], None] | None = None) -> None:
        self.cache = cache or LogProbCache()
        self.settings = settings or ScoringSettings()
        self.use_ray = use_ray
        self.n_actors = n_actors
        self.device = device
        self.log = log or (lambda m: None)
        self._pool: Any = None  # one RayScorer for every model, created on the first Ray pass

    def close(self) -> None:
        """Stop the Ray actors, if any were started."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def score_model(self, ref: ModelRef, datasets: dict[str, TextSet]) -> dict[str, TokenScores]:
        """Scores of each dataset under ``ref``; a path model is loaded (in this process, or into the Ray
        actors) only if some dataset misses the cache; in-process it is released afterwards."""
        tok = ref.get_tokenizer()
        mkey, tkey = ref.key(), tokenizer_fingerprint(tok)
        holder: dict[str, Any] = {}

        def compute_for(data: TextSet) -> Callable[[], TokenScores]:
            def compute() -> TokenScores:
                self.log(f"scoring {len(data)} sequences under {ref.name}"
                         + (" on Ray" if self.use_ray and ref.path else ""))
                if self.use_ray and ref.path is not None:
                    from expunge.llm.parallel import ModelSpec, RayScorer

                    if self._pool is None:
                        self._pool = RayScorer(n_actors=self.n_actors)
                    spec = ModelSpec(ref.path, ref.trust_remote_code)
                    if self._pool.spec != spec:
                        self._pool.load(spec)
                    return self._pool.score(data, self.settings, self.cache.batch_tokens)
                if ref.model is not None:
                    model = ref.model
                else:
                    if "model" not in holder:
                        holder["model"], _ = load_causal_lm(ref.path, trust_remote_code=ref.trust_remote_code,
                                                            device=self.device)
                    model = holder["model"]
                from expunge.llm.scoring import token_logprobs

                return token_logprobs(model, tok, data.texts, data.ids, settings=self.settings,
                                      batch_tokens=self.cache.batch_tokens)
            return compute

        try:
            return {name: self.cache.get(data, compute_for(data), model_key=mkey, tokenizer_key=tkey,
                                         settings=self.settings, label=f"{ref.name}:{name}")
                    for name, data in datasets.items()}
        finally:
            holder.clear()
            gc.collect()


def audit_lm(target: ModelRef, data: TextSet, *, fit: Sequence[ModelRef] = (), refs: Sequence[ModelRef] = (),
             population: TextSet | None = None, attacks: Sequence[str] | None = None,
             params: dict[str, dict[str, Any]] | None = None, scorer: Scorer | None = None,
             checkpoints: Sequence[tuple[ModelRef, float]] = (), tasks: Sequence[str] | None = None,
             n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Score, attack and evaluate. ``attacks=None`` runs every registered attack whose inputs exist
    (the skipped ones are listed with the reason); named attacks with missing inputs are an error.

    Returns ``{"results": per (attack, task) rows, "scores": {attack: [N]}, "skipped": {attack: why},
    "attacks": the ones run, "scoreui": per-attack table or None, "passes": cache hit counts}``.
    """
    if data.labels is None:
        raise ExpungeError(f"dataset {data.source} has no labels; an audit needs member / unlearned / nonmember")
    scorer = scorer or Scorer()
    for bad in [t for t in (tasks or ()) if t not in TASKS]:
        raise ExpungeError(f"unknown task {bad!r} (known: {', '.join(TASKS)})")
    avail = {"lower"}
    if fit:
        avail.add("fit")
    if refs:
        avail.add("reference")
    if population is not None:
        avail.add("population")
    names, skipped = resolve_attacks(attacks, avail, strict=attacks is not None)
    if not names:
        raise ExpungeError("no attack can run with the models given")
    if scorer.settings.prefix_tokens:
        # "the first N tokens" must mean the same text for every model
        models = [target, *fit, *refs, *(m for m, _ in checkpoints)]
        for m in models[1:]:
            check_same_tokenizer(target.get_tokenizer(), m.get_tokenizer(),
                                 f"prefix_tokens={scorer.settings.prefix_tokens} with {target.name} and {m.name}")
    need = set().union(*(ATTACKS.get(n).needs for n in names))
    lower = data.lowercased() if "lower" in need else None

    def sets(with_lower: bool) -> dict[str, TextSet]:
        d = {"queries": data}
        if with_lower and lower is not None:
            d["lowercased"] = lower
        if "population" in need:
            d["population"] = population
        return d

    t = scorer.score_model(target, sets(True))
    fit_s = [scorer.score_model(m, sets(False)) for m in fit] if "fit" in need or "population" in need else []
    ref_s = [scorer.score_model(m, sets(False)) for m in refs] if "reference" in need or "population" in need else []

    def inputs(ts: dict[str, TokenScores]) -> AttackInputs:
        return AttackInputs(texts=data.texts, target=ts["queries"], target_lower=ts.get("lowercased"),
                            fit=[f["queries"] for f in fit_s], refs=[r["queries"] for r in ref_s],
                            pop_target=ts.get("population"), pop_fit=[f["population"] for f in fit_s if "population" in f],
                            pop_refs=[r["population"] for r in ref_s if "population" in r])

    scores = run_attacks(inputs(t), names, params)
    results = evaluate_scores(scores, data.labels, tasks=tasks, n_boot=n_boot, seed=seed)

    sui = None
    if checkpoints:
        trained = data.mask("member", "unlearned")
        if trained.sum() < 2:
            raise ExpungeError("ScoreUI needs at least two member / unlearned samples")
        per_ckpt: dict[str, list[np.ndarray]] = {n: [] for n in names}
        for ref, _ in checkpoints:
            sc = run_attacks(inputs(scorer.score_model(ref, sets(True))), names, params)
            for n in names:
                per_ckpt[n].append(sc[n][trained])
        sui = scoreui_table({n: np.stack(v) for n, v in per_ckpt.items()}, [f for _, f in checkpoints])
    return {"results": results, "scores": scores, "skipped": skipped, "attacks": names, "scoreui": sui,
            "passes": dict(scorer.cache.hits)}
