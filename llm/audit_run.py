"""One audit of Hugging Face causal LMs, as steps: check every input, load the data, score, attack,
evaluate and write the report. ``expunge llm-audit`` (:mod:`expunge.jobs.llm_audit`) calls
:func:`run_llm_audit`.

The report goes to ``<out>/llm_audit/<name>/`` (report.md, results.csv/.parquet, summary.csv,
per-sample scores, ROC plots); per-token log-probabilities are cached under ``<out>/llm_logprobs``.
All inputs are checked before any model is loaded.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from expunge.errors import ExpungeError


def log(msg: str) -> None:
    """Print a progress line to stderr."""
    print(msg, file=sys.stderr, flush=True)


def parse_checkpoint(spec: str, i: int, n: int) -> tuple[str, float]:
    """``PATH@FRACTION`` (or ``PATH``: evenly spaced fractions (i+1)/n)."""
    path, sep, frac = spec.rpartition("@")
    if not sep:
        return spec, (i + 1) / n
    try:
        f = float(frac)
    except ValueError:
        raise ExpungeError(f"--checkpoint {spec!r}: the part after @ must be a fraction of training") from None
    if not 0.0 <= f <= 1.0:
        raise ExpungeError(f"--checkpoint {spec!r}: fraction must be in [0, 1]")
    return path, f


def run_llm_audit(target: str, data: str, out: str, *, fit: Sequence[str] = (), references: Sequence[str] = (),
                  population: str | None = None, checkpoints: Sequence[str] = (), attacks: Sequence[str] | None = None,
                  name: str = "audit", text_column: str = "text", label_column: str = "label",
                  id_column: str | None = None, label_map: str | None = None, split: str | None = None,
                  chunk: str = "none", window: int = 256, max_samples: int | None = None,
                  max_length: int | None = None, prefix_tokens: int = 0, prompt: str | None = None,
                  batch_tokens: int | None = None, n_boot: int = 1000, gamma: float = 2.0, n_levels: int = 1000,
                  k: float = 0.2, device: str = "auto", trust_remote_code: bool = False, use_ray: bool = False,
                  n_actors: int | None = None, seed: int = 0, rebuild: bool = False) -> dict[str, Any]:
    """Check every input, score, attack, evaluate and write the report; returns the tables and path."""
    import torch
    from expunge.llm.audit import ModelRef, audit_lm
    from expunge.store import Store

    check_inputs(target, fit, references, checkpoints, attacks, name, k=k, gamma=gamma, n_levels=n_levels, chunk=chunk)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    target_ref = ModelRef("target", target, trust_remote_code=trust_remote_code)
    queries, pop = load_queries(data, population, target_ref, text_column=text_column, label_column=label_column,
                                id_column=id_column, split=split, label_map=label_map, chunk=chunk, window=window,
                                max_samples=max_samples)
    store = Store(out)
    scorer = make_scorer(store, use_ray=use_ray, n_actors=n_actors, device=device, batch_tokens=batch_tokens,
                         rebuild=rebuild, max_length=max_length, prefix_tokens=prefix_tokens, prompt=prompt)
    fits, refs, ckpts = model_refs(fit, references, checkpoints, trust_remote_code)
    params = {"rmia_online": {"gamma": gamma}, "iam_online": {"n_levels": n_levels},
              "mink": {"k": k}, "minkpp": {"k": k}, "minkpp_unweighted": {"k": k}}
    try:
        res = audit_lm(target_ref, queries, fit=fits, refs=refs, population=pop, attacks=attacks, params=params,
                       scorer=scorer, checkpoints=ckpts, n_boot=n_boot, seed=seed)
    finally:
        scorer.close()
    return write_report(store, res, queries, name=name, target=target, fit=fit, references=references, data=data,
                        population=population, checkpoints=checkpoints, rebuild=rebuild)


def check_inputs(target: str, fit: Sequence[str], references: Sequence[str], checkpoints: Sequence[str],
                 attacks: Sequence[str] | None, name: str, *, k: float, gamma: float, n_levels: int,
                 chunk: str) -> None:
    """Refuse a bad model source, attack, report name or setting, cheapest first, before anything loads."""
    from expunge.config import safe_name
    from expunge.llm.attacks import ATTACKS
    from expunge.llm.models import check_model_source

    for role, paths in (("target", [target]), ("fit model", fit), ("reference model", references),
                        ("checkpoint", [parse_checkpoint(c, i, len(checkpoints))[0] for i, c in enumerate(checkpoints)])):
        for p in paths:
            check_model_source(p, role)
    for a in attacks or ():
        ATTACKS.get(a)
    try:
        safe_name(name)  # the report's folder under <out>/llm_audit/: refused before anything is scored
    except ValueError as exc:
        raise ExpungeError(f"--name {name!r}: {exc}") from None
    if not 0 < k <= 1:
        raise ExpungeError(f"--k must be a fraction in (0, 1], got {k}")
    if gamma <= 0:
        raise ExpungeError(f"--gamma must be positive, got {gamma}")
    if n_levels < 2:
        raise ExpungeError(f"--levels must be >= 2, got {n_levels}")
    if chunk not in ("none", "words", "tokens"):
        raise ExpungeError(f"--chunk must be none, words or tokens, got {chunk!r}")


def load_queries(data: str, population: str | None, target_ref: Any, *, text_column: str, label_column: str,
                 id_column: str | None, split: str | None, label_map: str | None, chunk: str, window: int,
                 max_samples: int | None) -> tuple[Any, Any]:
    """Load the labelled queries and the optional population (logged); refuse a dataset with one label."""
    from expunge.llm.data import load_population, load_text_dataset, parse_label_map

    tok = target_ref.get_tokenizer() if chunk == "tokens" else None
    queries = load_text_dataset(data, text_column=text_column, label_column=label_column, id_column=id_column,
                                split=split, label_map=parse_label_map(label_map), chunk=chunk, window=window,
                                tokenizer=tok, max_samples=max_samples)
    pop = None
    if population:
        pop = load_population(population, text_column=text_column, chunk=chunk, window=window, tokenizer=tok)
    counts = queries.counts()
    log(f"data: {len(queries)} sequences from {data} ({', '.join(f'{v} {k_}' for k_, v in counts.items() if v)})"
        + (f"; population {len(pop)}" if pop is not None else ""))
    if sum(1 for v in counts.values() if v) < 2:
        raise ExpungeError(f"dataset {data}: only one label present ({counts}); every task needs two groups")
    return queries, pop


def make_scorer(store: Any, *, use_ray: bool, n_actors: int | None, device: str, batch_tokens: int | None,
                rebuild: bool, max_length: int | None, prefix_tokens: int, prompt: str | None) -> Any:
    """Start Ray when asked and build the cached log-prob scorer (Ray actors or this process)."""
    from expunge.llm.audit import Scorer
    from expunge.llm.scoring import LogProbCache, ScoringSettings

    if use_ray:
        from expunge.runtime import init_ray

        init_ray()
    return Scorer(LogProbCache(store, batch_tokens=batch_tokens, rebuild=rebuild),
                  ScoringSettings(max_length=max_length, prefix_tokens=prefix_tokens, prompt=prompt),
                  use_ray=use_ray, n_actors=n_actors, device=device, log=log)


def model_refs(fit: Sequence[str], references: Sequence[str], checkpoints: Sequence[str],
               trust_remote_code: bool) -> tuple[list[Any], list[Any], list[tuple[Any, float]]]:
    """The fit and reference models and the checkpoints with their fraction of training, named by role."""
    from expunge.llm.audit import ModelRef

    trc = trust_remote_code
    fits = [ModelRef(f"fit{i}" if len(fit) > 1 else "fit", p, trust_remote_code=trc) for i, p in enumerate(fit)]
    refs = [ModelRef(f"reference{i}" if len(references) > 1 else "reference", p, trust_remote_code=trc)
            for i, p in enumerate(references)]
    ckpts = []
    for i, c in enumerate(checkpoints):
        path, frac = parse_checkpoint(c, i, len(checkpoints))
        ckpts.append((ModelRef(f"checkpoint{i}", path, trust_remote_code=trc), frac))
    return fits, refs, ckpts


def write_report(store: Any, res: dict[str, Any], queries: Any, *, name: str, target: str, fit: Sequence[str],
                 references: Sequence[str], data: str, population: str | None, checkpoints: Sequence[str],
                 rebuild: bool) -> dict[str, Any]:
    """Evaluate the audit, store the report under ``llm_audit/<name>``, print the summary and where it
    is; returns the tables and the report's path."""
    from expunge.llm.evaluate import (
        TASKS,
        auc_summary,
        fmt_table,
        per_sample_table,
        report_files,
        roc_png,
    )

    results, scores = res["results"], res["scores"]
    summary = auc_summary(results)
    plots = {}
    for task in TASKS:
        png = roc_png(scores, queries.labels, task)
        if png:
            plots[f"roc_{task}.png"] = png
    notes = [(f"target {target}; fit {', '.join(fit) or '-'}; reference {', '.join(references) or '-'}; "
              f"data {data} ({len(queries)} sequences); population {population or '-'}"),
             "Skipped: " + (", ".join(f"{a} ({why})" for a, why in res["skipped"].items()) or "none"),
             f"Model passes: {res['passes']['computed']} computed, {res['passes']['store']} read from the cache."]
    extra = {"scoreui": res["scoreui"]} if res["scoreui"] is not None else None
    files = report_files(results, summary, per_sample_table(queries.ids, queries.labels, scores), plots,
                         "expunge LLM audit", notes, extra)
    art = store.put("llm_audit", name, files, replace=True, repair=rebuild,
                    config={"target": target, "fit": list(fit), "references": list(references), "data": data,
                            "population": population, "checkpoints": list(checkpoints),
                            "attacks": res["attacks"], "data_hash": queries.hash})
    print("\n" + fmt_table(summary) + "\n", flush=True)
    if res["skipped"]:
        log("skipped: " + "; ".join(f"{a}: {why}" for a, why in res["skipped"].items()))
    log(f"report: {art.path}/report.md (results.csv, summary.csv, scores.parquet, {len(plots)} ROC plots)")
    return {"results": results, "summary": summary, "scoreui": res["scoreui"], "skipped": res["skipped"],
            "path": art.path, "passes": res["passes"]}
