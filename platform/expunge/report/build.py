"""Build a run's report and store it: ``<run>/reports/report/`` holds ``report.html`` (self-contained),
``report.md`` (the Markdown summary) and the figures the summary links to.

The outline is fixed (:data:`SECTIONS`); a section whose data is missing says so. A section that hits
an unreadable artifact shows the store's error in place, so one corrupt file does not hide the rest.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from expunge.errors import ArtifactError
from expunge.report.blocks import Paragraph, Section, figures_of
from expunge.report.collect import RunData, load_run
from expunge.report.html import render_html
from expunge.report.markdown import render_markdown
from expunge.report.provenance import manifest_section
from expunge.report.sections import (cr_section, histogram_section, leaderboard_section, overview_section,
                                     relearn_section, roc_section)
from expunge.report.sweeps import sweep_section
from expunge.report.epsilon import epsilon_section
from expunge.report.scoreui import scoreui_section
from expunge.report.ledger import ledger_section

KIND, KEY = "reports", "report"
HTML, MARKDOWN = "report.html", "report.md"
SECTIONS: tuple[tuple[str, str, Callable[[RunData], Section]], ...] = (
    ("run", "Run", overview_section),
    ("leaderboard", "Leaderboard", leaderboard_section),
    ("roc", "ROC curves (LiRA, RMIA, IAM)", roc_section),
    ("histograms", "Per-sample scores: retained vs unlearned", histogram_section),
    ("cr", "Conformal coverage ratio (CR) against alpha", cr_section),
    ("relearn", "Relearning and RCD curves", relearn_section),
    ("scoreui", "ScoreUI: scores against partial membership", scoreui_section),
    ("epsilon", "Per-example epsilon (NeurIPS 2023 challenge)", epsilon_section),
    ("sweeps", "Sweeps", sweep_section),
    ("ledger", "Sequential-unlearning ledger", ledger_section),
    ("manifest", "Run manifest", manifest_section),
)


def build_sections(run: RunData) -> list[Section]:
    """Every section in order; an :class:`ArtifactError` inside one becomes a note in that section."""
    out = []
    for sid, title, build in SECTIONS:
        try:
            out.append(build(run))
        except ArtifactError as exc:
            out.append(Section(sid, title, (Paragraph(f"Could not read this section's data: {exc}", note=True),)))
    return out


def titles(run: RunData) -> tuple[str, str]:
    plan = run.plan or {}
    name = (run.config or {}).get("name") or Path(run.uri.rstrip("/")).name
    what = f"{plan.get('dataset')}, forget {plan.get('forget_spec')}; " if plan else ""
    return f"expunge report: {name}", f"{what}generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"


def report_files(run: RunData) -> dict[str, Any]:
    """The report's files: the HTML page, the Markdown summary and each figure as a PNG."""
    sections = build_sections(run)
    title, subtitle = titles(run)
    files: dict[str, Any] = {HTML: render_html(title, subtitle, sections),
                             MARKDOWN: render_markdown(title, subtitle, sections)}
    for section in sections:
        files.update({f.name: f.png for f in figures_of(section.blocks)})
    return files


def _copy_out(files: dict[str, Any], out: str) -> str:
    """``out`` ending in .html: the page alone there; otherwise a folder with the page, summary and figures."""
    target = Path(out).expanduser()
    if target.suffix == ".html":
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(files[HTML])
        return str(target)
    target.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (target / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(target / HTML)


def write_report(run_dir: str, out: str | None = None, rebuild: bool = False) -> dict[str, Any]:
    """Render the report of the run at ``run_dir`` into its store (and a copy at ``out``).

    Raises :class:`ArtifactError` before writing anything when ``run_dir`` is not an expunge run, or
    when the stored report is damaged and ``rebuild`` is not set."""
    run = load_run(run_dir)
    files = report_files(run)
    sections = [sid for sid, _, _ in SECTIONS]
    art = run.store.put(KIND, KEY, files, config={"run": run.uri, "sections": sections}, replace=True,
                        repair=rebuild,
                        split_hash=(run.plan or {}).get("hash"), seed=(run.plan or {}).get("seed"))
    return {"path": art.path, "html": f"{art.path}/{HTML}", "markdown": f"{art.path}/{MARKDOWN}",
            "sections": sections, "figures": sorted(n for n in files if n.endswith(".png")),
            "out": _copy_out(files, out) if out else None}
