"""Audit Hugging Face causal LMs: ``python -m expunge.jobs.llm_audit --target PATH --fit PATH
--reference PATH [--reference PATH2] --data PATH [--population PATH] --out DIR [options]``.

``--target`` is the model under audit (e.g. after unlearning), ``--fit`` a model trained on every
query (e.g. the original; repeatable), ``--reference`` models that never saw the queries
(repeatable). ``--data`` is a labelled text dataset (JSONL, CSV, parquet, a saved dataset directory,
or a hub name when online) whose label column holds member / unlearned / nonmember (aliases:
retained, forget, non-member, ...; see :mod:`expunge.llm.data`). ``--population`` adds RMIA-On's
population set; ``--checkpoint PATH@FRACTION`` (repeatable) adds ScoreUI over training checkpoints.

Every attack whose inputs are given runs (``--attacks`` picks some); per-token log-probabilities are
computed once per (model, dataset) and cached under ``<out>/llm_logprobs``, so reruns and extra
attacks cost no model passes. Scoring runs on Ray actors (one per GPU, else per CPU slot) unless
``--local``. Writes ``<out>/llm_audit/<name>/``: report.md, results.csv/.parquet (AUC with a
class-balanced bootstrap CI, TPR at FPR 0.1/0.01/0.001), summary.csv, per-sample scores, ROC plots.
All inputs are checked before any model is loaded.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from expunge.errors import ExpungeError
from expunge.jobs.common import add_runtime_args, main_wrapper


def log(msg: str) -> None:
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

    from expunge.config import safe_name
    from expunge.llm.attacks import ATTACKS
    from expunge.llm.audit import ModelRef, Scorer, audit_lm
    from expunge.llm.data import load_population, load_text_dataset, parse_label_map
    from expunge.llm.evaluate import TASKS, auc_summary, fmt_table, per_sample_table, report_files, roc_png
    from expunge.llm.models import check_model_source
    from expunge.llm.scoring import LogProbCache, ScoringSettings
    from expunge.store import Store

    # --- checks, cheapest first; nothing is loaded before all pass ---
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
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    trc = trust_remote_code
    target_ref = ModelRef("target", target, trust_remote_code=trc)
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

    store = Store(out)
    if use_ray:
        from expunge.runtime import init_ray

        init_ray()
    scorer = Scorer(LogProbCache(store, batch_tokens=batch_tokens, rebuild=rebuild),
                    ScoringSettings(max_length=max_length, prefix_tokens=prefix_tokens, prompt=prompt),
                    use_ray=use_ray, n_actors=n_actors, device=device, log=log)
    fits = [ModelRef(f"fit{i}" if len(fit) > 1 else "fit", p, trust_remote_code=trc) for i, p in enumerate(fit)]
    refs = [ModelRef(f"reference{i}" if len(references) > 1 else "reference", p, trust_remote_code=trc)
            for i, p in enumerate(references)]
    ckpts = []
    for i, c in enumerate(checkpoints):
        path, frac = parse_checkpoint(c, i, len(checkpoints))
        ckpts.append((ModelRef(f"checkpoint{i}", path, trust_remote_code=trc), frac))
    params = {"rmia_online": {"gamma": gamma}, "iam_online": {"n_levels": n_levels},
              "mink": {"k": k}, "minkpp": {"k": k}, "minkpp_unweighted": {"k": k}}
    try:
        res = audit_lm(target_ref, queries, fit=fits, refs=refs, population=pop, attacks=attacks, params=params,
                       scorer=scorer, checkpoints=ckpts, n_boot=n_boot, seed=seed)
    finally:
        scorer.close()

    results, scores = res["results"], res["scores"]
    summary = auc_summary(results)
    plots = {}
    for task in TASKS:
        png = roc_png(scores, queries.labels, task)
        if png:
            plots[f"roc_{task}.png"] = png
    notes = [f"target {target}; fit {', '.join(fit) or '-'}; reference {', '.join(references) or '-'}; "
             f"data {data} ({len(queries)} sequences); population {population or '-'}",
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m expunge.jobs.llm_audit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", required=True, help="model under audit (directory or hub id)")
    p.add_argument("--fit", action="append", default=[], help="IN model, e.g. the original (repeatable)")
    p.add_argument("--reference", action="append", default=[], help="OUT model (repeatable)")
    p.add_argument("--data", required=True, help="labelled text dataset")
    p.add_argument("--population", help="unlabelled population set for RMIA-On")
    p.add_argument("--checkpoint", action="append", default=[], metavar="PATH[@FRACTION]",
                   help="training checkpoint for ScoreUI (repeatable)")
    p.add_argument("--out", default="runs/llm", help="output directory, an artifact store (default: runs/llm)")
    p.add_argument("--name", default="audit", help="report name under <out>/llm_audit/")
    p.add_argument("--attacks", help="comma-separated attack names (default: every attack whose inputs exist)")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--id-column")
    p.add_argument("--label-map", help="e.g. 1=member,0=unlearned for numeric labels")
    p.add_argument("--split")
    p.add_argument("--chunk", default="none", choices=("none", "words", "tokens"))
    p.add_argument("--window", type=int, default=256, help="chunk size in words or tokens")
    p.add_argument("--max-samples", type=int)
    p.add_argument("--max-length", type=int, help="truncate sequences to this many tokens")
    p.add_argument("--prefix-tokens", type=int, default=0, help="leading tokens excluded from every score")
    p.add_argument("--prompt", help="text prepended to every query and excluded from the scores")
    p.add_argument("--batch-tokens", type=int,
                   help="padded tokens per scoring batch (default 16384 on a GPU, 4096 on a CPU)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap draws for the AUC intervals")
    p.add_argument("--gamma", type=float, default=2.0, help="RMIA's likelihood-ratio threshold")
    p.add_argument("--levels", type=int, default=1000, help="IAM interpolation levels J")
    p.add_argument("--k", type=float, default=0.2, help="Min-K%% fraction")
    p.add_argument("--device", default="auto")
    p.add_argument("--n-actors", type=int, help="Ray scoring actors per model (default: one per GPU / CPU)")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    add_runtime_args(p)
    return p


@main_wrapper
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()] if args.attacks else None
    kw = dict(fit=args.fit, references=args.reference, population=args.population, checkpoints=args.checkpoint,
              attacks=attacks, name=args.name, text_column=args.text_column, label_column=args.label_column,
              id_column=args.id_column, label_map=args.label_map, split=args.split, chunk=args.chunk,
              window=args.window, max_samples=args.max_samples, max_length=args.max_length,
              prefix_tokens=args.prefix_tokens, prompt=args.prompt, batch_tokens=args.batch_tokens,
              n_boot=args.n_boot, gamma=args.gamma, n_levels=args.levels, k=args.k, device=args.device,
              trust_remote_code=args.trust_remote_code, n_actors=args.n_actors, seed=args.seed,
              rebuild=args.rebuild)
    # every input is validated inside run_llm_audit before Ray starts or a model loads
    use_ray = not args.local
    if use_ray and args.address:
        import os

        os.environ.setdefault("RAY_ADDRESS", args.address)
    run_llm_audit(args.target, args.data, args.out, use_ray=use_ray, **kw)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
