"""The pipeline stage: split -> original -> fleet -> each unlearning method -> audit -> report.

Every stage reads the store first and skips what is already there with a matching manifest. With
``seeds: [0, 1, 2]`` the experiment runs once per seed, each in its own run directory
``<run>/seed-<s>``, and ``<run>/seeds/summary`` holds mean ± std per metric and per gap to retrain and
paired comparisons of the methods across seeds (:mod:`expunge.audit.across_seeds`).
"""
from __future__ import annotations

from functools import partial
from typing import Any

import pandas as pd

from expunge.config import ExperimentConfig, MethodSpec
from expunge.errors import ConfigError
from expunge.experiment import Experiment, log
from expunge.audit.stage import audit_models
from expunge.stages.fleet import run_fleet
from expunge.fleet.members import audit_shadow_config, check_fleets
from expunge.stages.original import run_original
from expunge.report.build import write_report
from expunge.report.markdown import markdown_table
from expunge.report.timings import stage_timer


def unlearn_task(cfg: dict[str, Any], spec: dict[str, Any], rebuild: bool) -> dict[str, Any]:
    """Ray task body: one method on the stored original."""
    ex = Experiment(ExperimentConfig.model_validate(cfg), rebuild=rebuild)
    art = ex.unlearn(MethodSpec.model_validate(spec))
    return {"key": art.key, "path": art.path, "run_time_s": art.manifest.get("run_time_s")}


def run_pipeline(cfg: ExperimentConfig, rebuild: bool = False, use_ray: bool = True,
                 print_table: bool = True) -> dict[str, Any]:
    """One experiment end to end; with ``cfg.seeds``, once per seed plus the cross-seed summary."""
    check_work(cfg)
    if cfg.seeds is not None:
        return run_seeds(cfg, rebuild, use_ray, print_table)
    return run_single(cfg, rebuild, use_ray, print_table)


def check_work(cfg: ExperimentConfig) -> None:
    """An experiment with nothing to unlearn or nothing to measure is a mistake, not a run: refused
    before anything is trained (``expunge train`` trains the original alone)."""
    if not cfg.unlearn.methods:
        raise ConfigError("unlearn.methods is empty: name the methods to run (`expunge info` lists them), "
                          "e.g. unlearn.methods=[retrain,finetune]; `expunge train` trains the original alone")
    if not cfg.audit.metrics:
        raise ConfigError("audit.metrics is empty: name the metrics to compute (`expunge info` lists them), "
                          "e.g. audit.metrics=[accuracy]")


def run_seeds(cfg: ExperimentConfig, rebuild: bool = False, use_ray: bool = True,
              print_table: bool = True) -> dict[str, Any]:
    """:func:`run_single` for every seed (all configs checked first), then :func:`write_seed_summary`."""
    per_seed = cfg.per_seed_configs()
    for c in per_seed:  # refuse inapplicable methods or stale artifacts of any seed before computing
        seed_ex = Experiment(c, rebuild=rebuild, verbose=False)
        seed_ex.preflight(c.unlearn.methods)
        check_fleets(seed_ex)
    runs = {}
    for c in per_seed:
        log(f"seed {c.seed} ({len(runs) + 1} of {len(per_seed)})")
        runs[c.seed] = run_single(c, rebuild, use_ray, print_table=False)
    summary = write_seed_summary(cfg, {s: r["table"] for s, r in runs.items()}, rebuild)
    if print_table:
        print(summary["shown"].to_string(index=False), flush=True)
    log(f"per-seed run directories: {', '.join(r['run_dir'] for r in runs.values())}")
    log(f"seed summary: {summary['path']}")
    return {"table": summary["summary"], "runs": runs, **summary}


#: columns compared in pairs across seeds (lower gap = closer to retraining)
SEED_COMPARED = ("avg_gap", "gap_UA", "gap_TA", "gap_MIA_efficacy")
#: the summary's printed columns (every column's mean and std are in summary.csv)
SEED_SHOWN = ("UA", "RA", "TA", "MIA_efficacy", "lira_forget_vs_heldout_auc", "rmia_forget_vs_heldout_auc",
              "iam_forget_vs_heldout_auc", "iam_binui_auc", "avg_gap", "RTE_s")


def write_seed_summary(cfg: ExperimentConfig, tables: dict[int, pd.DataFrame], rebuild: bool = False) -> dict[str, Any]:
    """Mean ± std of every leaderboard column and paired comparisons on :data:`SEED_COMPARED`,
    stored as ``<run>/seeds/summary`` (CSV, parquet and Markdown)."""
    from expunge.audit.across_seeds import format_mean_std, paired_comparison, seed_summary
    from expunge.store import Store

    summary = seed_summary(tables)
    pairs = pd.concat([paired_comparison(tables, c) for c in SEED_COMPARED
                       if all(c in t.columns for t in tables.values())], ignore_index=True)
    shown_cols = [c for c in SEED_SHOWN if f"{c}_mean" in summary.columns]
    shown = format_mean_std(summary, shown_cols)
    seeds = sorted(tables)
    text = "\n".join([f"# `{cfg.name}` over seeds {', '.join(map(str, seeds))}", "",
                      "Mean ± sample std over seeds (UA, RA, TA, MIA-efficacy in percent).", "",
                      markdown_table(shown), "", "## Paired comparisons across seeds", "",
                      "wins_a: seeds on which a is closer to retrain than b; mean_diff = a - b with a "
                      "paired bootstrap 95% interval over seeds.", "", markdown_table(pairs.round(4)), ""])
    art = Store(cfg.run_dir).put("seeds", "summary", {
        "summary.csv": summary, "summary.parquet": summary, "paired.csv": pairs, "paired.parquet": pairs,
        "summary.md": text}, config={"seeds": seeds, "compared": list(SEED_COMPARED)}, replace=True,
        repair=rebuild)
    return {"summary": summary, "paired": pairs, "shown": shown, "path": art.path}


def run_single(cfg: ExperimentConfig, rebuild: bool = False, use_ray: bool = True,
               print_table: bool = True) -> dict[str, Any]:
    from expunge.runtime import run_tasks

    ex = Experiment(cfg, rebuild=rebuild)
    ex.preflight(cfg.unlearn.methods)
    check_fleets(ex)  # damaged or mismatching fleet members: refused before anything is trained
    plan = ex.plan
    log(f"run {cfg.name}: {cfg.data.dataset}, forget {cfg.data.forget} ({len(plan.forget)} of "
        f"{len(plan.train)} train samples), model {cfg.model.name}, storage {ex.store.uri}")
    # each stage's wall time goes to <run>/timings/<stage> (with the config) for the report
    timed = partial(stage_timer, ex.store, device=str(ex.device), config=cfg.model_dump(mode="json"), repair=rebuild)
    with timed("original"):
        run_original(cfg, rebuild, use_ray)
    if cfg.fleet.size:  # the config's own fleet (LiRA shadows, retrain or unlearned fleets), reused when stored
        with timed("fleet"):
            run_fleet(cfg, rebuild, use_ray)
    calls = [{"cfg": cfg.model_dump(), "spec": s.model_dump(), "rebuild": rebuild} for s in cfg.unlearn.methods]
    with timed("unlearn"):
        results = run_tasks(unlearn_task, calls, desc="unlearn", use_ray=use_ray)
    if cfg.audit.shadows:  # the audit's OUT-only shadow fleet, through the fleet path
        with timed("shadows"):
            run_fleet(audit_shadow_config(cfg), rebuild, use_ray)
    with timed("audit"):
        labels = {r["key"]: s.label for r, s in zip(results, cfg.unlearn.methods) if s.label}
        audit = audit_models(ex, ["original", *[r["key"] for r in results]], labels)
    table = audit["leaderboard"]
    report, html = write_reports(ex, table)
    if print_table:
        print(table.to_string(index=False), flush=True)
    log(f"audit tables: {audit['path']}")
    log(f"run directory: {ex.store.uri}")
    log(f"report: {report}")
    log(f"html report: {html}")
    return {"table": table, "run_dir": ex.store.uri, "report": report, "html_report": html, "audit": audit["path"]}


def write_reports(ex: Experiment, table: pd.DataFrame) -> tuple[str, str]:
    """The run's Markdown summary and HTML report, rendered from the audit just stored (so they never
    show an earlier audit's numbers); returns their paths."""
    return write_summary(ex, table), write_report(ex.store.uri, rebuild=ex.rebuild)["html"]


def write_summary(ex: Experiment, table: pd.DataFrame) -> str:
    cfg, plan = ex.cfg, ex.plan
    text = "\n".join([
        f"# expunge run `{cfg.name}`", "",
        f"- dataset: {cfg.data.dataset} ({len(ex.dataset)} samples), model: {cfg.model.name}",
        f"- forget: {cfg.data.forget}: {len(plan.forget)} forget / {len(plan.retain)} retain / "
        f"{len(plan.test)} test samples; split hash `{plan.hash[:12]}`",
        "- UA = 1 - forget accuracy, RA = retain accuracy, TA = test accuracy, MIA_efficacy (percent); "
        "RTE = unlearning wall-clock seconds; gap_* and avg_gap: distance to retrain", "",
        markdown_table(table), ""])
    art = ex.store.put("reports", "summary", {"summary.md": text}, split_hash=plan.hash, seed=cfg.seed,
                       replace=True, repair=ex.rebuild)
    return f"{art.path}/summary.md"

