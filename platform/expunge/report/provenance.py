"""The report's manifest section: what produced this run, where, with which versions, and how long
each stage took.

Config: the whole experiment config when the pipeline recorded one with its stage timings, else the
pieces every artifact manifest keeps (split, original model, methods, audit). Seeds, code versions
and content hashes come from the model manifests; hardware and library versions from the stage
timing records (the machines that ran the stages, not the one rendering the report).
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import yaml

from expunge.report.blocks import Block, Bullets, Code, Details, Paragraph, Section, Table
from expunge.report.collect import RunData
from expunge.report.environment import environment

RECORD_COLUMNS = ("stage", "seconds", "status", "started", "finished", "host", "device")


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=110).rstrip()


def model_table(run: RunData) -> pd.DataFrame:
    """One row per stored model (audited ones, then fleet members): method, seed, wall time, hashes."""
    rows = []
    keys = [*[k for k in run.audited if k in run.model_manifests], *[k for k in run.model_manifests
                                                                       if k not in run.audited]]
    entries = [(k, run.model_manifests[k]) for k in keys]
    entries += [(k, m) for fleet in run.fleets.values() for k, m in fleet["members"].items()]
    for key, m in entries:
        rows.append({"model": key, "method": m.get("method", ""), "seed": m.get("seed"),
                     "run_time_s": m.get("run_time_s"), "created": m.get("created", ""),
                     "code_version": m.get("code_version", ""), "expunge_version": m.get("expunge_version", ""),
                     "content_hash": str(m.get("content_hash", ""))[:12]})
    return pd.DataFrame(rows, columns=["model", "method", "seed", "run_time_s", "created", "code_version",
                                       "expunge_version", "content_hash"])


def stage_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The latest record of each stage, in the order the stages last started, plus a total row."""
    latest: dict[str, dict[str, Any]] = {}
    for r in records:
        latest[r["stage"]] = r
    order = sorted(latest.values(), key=lambda r: r["started"])
    frame = pd.DataFrame([{"stage": r["stage"], "seconds": r["seconds"], "status": r["status"],
                           "started": r["started"], "host": r.get("host", ""), "device": r.get("device") or ""}
                          for r in order])
    total = {"stage": "total", "seconds": float(frame["seconds"].sum()), "status": "", "started": "", "host": "",
             "device": ""}
    return pd.concat([frame, pd.DataFrame([total])], ignore_index=True)


def _environment_blocks(env: dict[str, Any], where: str) -> list[Block]:
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
    return [Bullets((f"{where}: {env.get('host', '?')}, {env.get('platform', '?')}, Python {env.get('python', '?')}, "
                     f"{env.get('cpus', '?')} CPUs, GPUs: {', '.join(env.get('gpus') or []) or 'none'}",
                     f"libraries: {versions}",
                     f"code: git commit {env.get('git_commit') or 'unknown (not a git checkout)'}"))]


def config_pieces(run: RunData) -> dict[str, Any]:
    """What the artifact manifests record of the config, when no stage recorded the whole one."""
    pieces: dict[str, Any] = {}
    if run.split is not None:
        pieces["data"] = run.split.manifest.get("config")
    original = run.model_manifests.get("original", {})
    if original:
        pieces["original"] = original.get("config")
    pieces["unlearn"] = {k: {"method": m.get("method"), "params": (m.get("config") or {}).get("params")}
                         for k, m in run.model_manifests.items() if (m.get("config") or {}).get("method")}
    if run.audit is not None:
        pieces["audit"] = run.audit_config
    return pieces


def manifest_section(run: RunData) -> Section:
    plan = run.plan or {}
    models = model_table(run)
    versions = sorted((set(models["code_version"]) | set(models["expunge_version"])) - {""})
    seeds = ", ".join(f"{method} {', '.join(str(s) for s in sorted(set(part['seed'].dropna().astype(int))))}"
                      for method, part in models.groupby("method", sort=False))
    blocks: list[Block] = [Bullets((
        f"run directory: {run.uri}",
        f"split hash: {plan.get('hash', 'no split stored')}",
        f"split seed: {plan.get('seed')}; model seeds: {seeds or 'none'}",
        f"dataset fingerprint: {plan.get('dataset_fingerprint', '?')}",
        f"code versions in the model manifests (package, or stage/version): {', '.join(versions) or 'unknown'}"))]
    blocks.append(Paragraph("Wall time per stage (latest invocation of each; a stage that reused stored "
                            "artifacts shows that short time):"))
    if run.timings:
        blocks.append(Table(stage_table(run.timings)))
        blocks += _environment_blocks(run.timings[-1].get("env", {}) | {"host": run.timings[-1].get("host")},
                                      "ran on")
        blocks.append(Details(f"All {len(run.timings)} stage records", (Table(pd.DataFrame(
            [{k: r.get(k) for k in RECORD_COLUMNS} for r in run.timings])),)))
    else:
        blocks.append(Paragraph("No stage timings recorded in this run (they are written by `expunge run` / "
                                "the pipeline job); per-model times are in the table below.", note=True))
    blocks.append(Table(models, caption="Stored models: seed, wall time of training or unlearning "
                                                  "(run_time_s), code version and content hash."))
    if run.config:
        blocks.append(Details("Experiment config (as recorded by the pipeline)", (Code(_yaml(run.config)),)))
    else:
        blocks.append(Details("Config, from the artifact manifests (no whole config recorded)",
                              (Code(_yaml(config_pieces(run))),)))
    blocks += _environment_blocks(environment(), "this report rendered on")
    return Section("manifest", "Run manifest", tuple(blocks))
