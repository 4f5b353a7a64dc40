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

from expunge.jobs.common import add_runtime_args, main_wrapper
from expunge.llm.audit_run import run_llm_audit

__all__ = ["build_parser", "main", "run_llm_audit"]


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
