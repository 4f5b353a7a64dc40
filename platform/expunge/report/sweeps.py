"""The report's sweep section: what ``expunge sweep`` stored under ``<run>/sweeps/<name>/``.

Shows each sweep's objective, trial counts, leaderboard (best trial per method), best configurations,
Pareto front, and embeds the figures the sweep drew (objective against each hyperparameter, Pareto
scatter) as they are, so the report and the sweep's own files agree.
"""
from __future__ import annotations

from typing import Any

from expunge.report.blocks import Block, Bullets, Code, Details, Figure, Paragraph, Section, Table
from expunge.report.collect import RunData
from expunge.store import Artifact

#: Pareto-front columns shown besides the Pareto objectives themselves
PARETO_SHOWN = ("method", "trial_id", "objective")


def _figure_caption(file: str, summary: dict[str, Any]) -> str:
    if file == "pareto.png":
        return "Pareto front over " + ", ".join(f"{k} ({v})" for k, v in summary.get("pareto", {}).items())
    method = file.removeprefix("objective_").removesuffix(".png").replace("_plus_", "+")
    return f"{method}: {summary.get('objective')} ({summary.get('mode')}) against each hyperparameter"


def sweep_blocks(name: str, art: Artifact) -> list[Block]:
    files = art.files()
    summary = art.read("summary.json") if "summary.json" in files else {}
    status = ", ".join(f"{v} {k}" for k, v in summary.get("status", {}).items())
    blocks: list[Block] = [Paragraph(
        f"Sweep {name}: objective {summary.get('objective')} ({summary.get('mode')}), {summary.get('trials')} "
        f"trials ({status or 'no status'}); constraints: {', '.join(summary.get('constraints') or []) or 'none'}. "
        f"Stored in {art.path}.")]
    if "leaderboard.csv" in files:
        blocks.append(Table(art.read("leaderboard.csv"), caption="Best feasible trial per method, by the objective."))
    best = summary.get("best", {})
    if best:
        blocks.append(Bullets(tuple(f"best by {what}: {b['method']} = {b['value']:.4g} (trial {b['trial_id']}; "
                                    f"config {art.path}/{b['file']})" for what, b in best.items())))
    blocks += [Figure(f"sweep_{name}_{f}", art.read_bytes(f), _figure_caption(f, summary))
               for f in sorted(files, key=lambda f: (f == "pareto.png", f)) if f.endswith(".png")]
    if "pareto.csv" in files:
        front = art.read("pareto.csv")
        cols = [c for c in (*PARETO_SHOWN, *summary.get("pareto", {})) if c in front]
        cols += [c for c in front.columns if c.startswith("param.")]
        blocks.append(Details(f"Pareto front ({len(front)} trials)", (Table(front[list(dict.fromkeys(cols))]),)))
    if "best_objective.yaml" in files:
        blocks.append(Details("Best configuration by the objective (YAML)", (Code(art.read("best_objective.yaml")),)))
    return blocks


def sweep_section(run: RunData) -> Section:
    if not run.sweeps:
        return Section("sweeps", "Sweeps", (Paragraph(
            "This run has no sweeps (`expunge sweep CONFIG` with a sweep: block writes them here).", note=True),))
    blocks: list[Block] = []
    for name, art in run.sweeps.items():
        blocks += sweep_blocks(name, art)
    return Section("sweeps", "Sweeps", tuple(blocks))
