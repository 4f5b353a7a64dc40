"""Test every seed paper's claim on embedded data, over several seeds, and write the claims table.

``expunge reproduce [--seeds 0,1,2] [--quick] [--claims a,b,...] [--storage DIR]`` (also
``python -m expunge.jobs.reproduce``, a cluster job like every stage). Each claim's protocol
(:mod:`expunge.claims.protocols`) runs through the pipeline once per seed, every model and table
stored under ``<storage>/<protocol>/seed-<s>``; the rows (:mod:`expunge.claims.rows`) compare the
per-seed numbers by rules fixed in :mod:`expunge.claims.verdicts`. The claims:

  (a) retrain is at chance on its forget set while the original is clearly above;
  (b) IAM vs LiRA vs RMIA with one shadow (IAM paper);
  (c) CPU raises UA of finetune / rl / salun, at a TA cost; CR exposes fake unlearning (CP paper);
  (d) PRU vs the forget-data-only baselines under the relearning test (PRU paper);
  (e) IEU's relearning convergence delay vs FT and GA at comparable TA (IEU paper);
  (f) ScoreUI: IAM's Spearman with partial membership vs LiRA's and RMIA's (IAM paper).

Writes ``<storage>/reproduce/claims/claims.{csv,parquet,md,html}`` and prints where they are.
"""
from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import numpy as np
import pandas as pd

from expunge.claims import PROTOCOLS
from expunge.claims import rows as claim_rows
from expunge.config import ExperimentConfig
from expunge.resolve import load_config
from expunge.errors import ConfigError
from expunge.experiment import Experiment, log
from expunge.jobs.common import find_config, main_wrapper, start_ray
from expunge.stages.pipeline import run_pipeline
from expunge.report.blocks import Paragraph, Section, Table
from expunge.report.html import render_html
from expunge.report.markdown import markdown_table
from expunge.store import Store

#: claim letter -> (protocols it reads, the function that makes its rows; None: ScoreUI, see below)
CLAIMS: dict[str, tuple[tuple[str, ...], Callable[..., list] | None]] = {
    "a": (("mislabeled", "random"), claim_rows.chance_rows),
    "b": (("one_shadow", "one_shadow_memorising"), claim_rows.one_shadow_rows),
    "c": (("random",), claim_rows.cpu_rows),
    "d": (("class",), claim_rows.relearn_rows),
    "e": (("mislabeled",), claim_rows.rcd_rows),
    "f": (("mislabeled",), None),
}
DEFAULT_STORAGE = "runs/reproduce"


def parse_claims(text: str) -> list[str]:
    wanted = [c.strip().lower().strip("()") for c in text.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in CLAIMS]
    if unknown or not wanted:
        raise ConfigError(f"--claims {text!r}: allowed letters {', '.join(CLAIMS)} (comma-separated)")
    return list(dict.fromkeys(wanted))


def protocol_configs(storage: str, seeds: list[int], quick: bool, claims: list[str]) -> dict[str, ExperimentConfig]:
    """Every protocol the claims need, loaded and validated (before anything is computed)."""
    needed = list(dict.fromkeys(p for c in claims for p in CLAIMS[c][0]))
    return {p: load_config(find_config(PROTOCOLS[p].config), PROTOCOLS[p].arguments(storage, seeds, quick))
            for p in needed}


def run_reproduce(storage: str = DEFAULT_STORAGE, seeds: list[int] | None = None, quick: bool = False,
                  claims: list[str] | None = None, rebuild: bool = False, use_ray: bool = True) -> dict[str, Any]:
    seeds = seeds if seeds is not None else [0, 1, 2]
    claims = claims or list(CLAIMS)
    cfgs = protocol_configs(storage, seeds, quick, claims)
    t0 = time.perf_counter()
    tables: dict[str, dict[int, pd.DataFrame]] = {}
    for i, (name, cfg) in enumerate(cfgs.items(), 1):
        log(f"reproduce: protocol {name} ({i} of {len(cfgs)}): {PROTOCOLS[name].purpose}")
        res = run_pipeline(cfg, rebuild, use_ray, print_table=False)
        tables[name] = {s: r["table"] for s, r in res["runs"].items()}
    rows = []
    for letter in claims:
        protos, fn = CLAIMS[letter]
        if fn is not None:
            rows += fn(tables)
            continue
        log("reproduce: ScoreUI checkpoints on the memorising benchmark")
        per_seed = [scoreui_of(c, rebuild) for c in cfgs["mislabeled"].per_seed_configs()]
        rows += claim_rows.scoreui_rows({a: np.array([s[a] for s in per_seed]) for a in per_seed[0]})
    minutes = (time.perf_counter() - t0) / 60
    return write_claims(storage, pd.DataFrame([r.as_dict() for r in rows]), seeds, quick, minutes, rebuild)


def scoreui_of(cfg: ExperimentConfig, rebuild: bool) -> dict[str, float]:
    from expunge.claims.scoreui import scoreui_spearman

    return scoreui_spearman(Experiment(cfg, rebuild=rebuild, verbose=False))


def write_claims(storage: str, table: pd.DataFrame, seeds: list[int], quick: bool, minutes: float,
                 rebuild: bool = False) -> dict[str, Any]:
    # a claim tested by two protocols (e.g. (a) on the memorising and the well-generalising case) has one
    # row per protocol: the protocol column tells them apart
    shown = table[["claim", "protocol", "paper", "ours", "comparison", "verdict"]]
    used = ", ".join(f"{p} ({PROTOCOLS[p].purpose})" for p in dict.fromkeys(table["protocol"]) if p in PROTOCOLS)
    header = (f"Seeds {', '.join(map(str, seeds))}{' (--quick)' if quick else ''}; {minutes:.1f} minutes. "
              "Numbers are mean ± sample std over seeds; UA / TA in percent, AUCs and Spearman in [0, 1]. "
              f"Protocols (expunge.claims.protocols): {used}. Verdict rules: expunge.claims.verdicts.")
    text = f"# expunge reproduce: the seed papers' claims\n\n{header}\n\n{markdown_table(shown)}\n"
    html = render_html("expunge reproduce", header, [Section("claims", "Claims", (
        Paragraph(header), Table(shown.reset_index(drop=True), caption="verdict rules in the comparison column")))])
    art = Store(storage).put("reproduce", "claims", {"claims.csv": table, "claims.parquet": table, "claims.md": text,
                                                     "claims.html": html},
                             config={"seeds": seeds, "quick": quick}, run_time_s=minutes * 60, replace=True,
                             repair=rebuild)
    with pd.option_context("display.max_colwidth", 60, "display.width", 200):
        print(shown.to_string(index=False), flush=True)
    log(f"claims table: {art.path}/claims.md (csv, parquet, html beside it); {minutes:.1f} minutes")
    log(f"protocol runs: {storage}/<protocol>/seed-<s>")
    return {"table": table, "path": art.path, "minutes": minutes}


@main_wrapper
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="expunge reproduce", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--storage", default=DEFAULT_STORAGE, help=f"where the protocol runs go (default {DEFAULT_STORAGE})")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--quick", action="store_true", help="15 training epochs and 2 audit shadows: a smoke run")
    p.add_argument("--claims", default=",".join(CLAIMS), help="which claims, e.g. a,c (default: all)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS or embedded Ray)")
    p.add_argument("--local", action="store_true", help="run in this process without Ray")
    p.add_argument("--rebuild", action="store_true", help="recompute corrupt or mismatching artifacts")
    args = p.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds {args.seeds!r}: give comma-separated non-negative integers, e.g. 0,1,2") from None
    claims = parse_claims(args.claims)
    protocol_configs(args.storage, seeds, args.quick, claims)  # every config valid before Ray starts
    run_reproduce(args.storage, seeds, args.quick, claims, args.rebuild, start_ray(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
