"""The sequential-unlearning ledger in reports: its figure, its Markdown page and a report section.

``expunge ledger`` (``expunge.stages.ledger``) stores each ledger as ``<run>/ledger/<method>-<hash>/``
with the per-sample table, the per-(version, request) summary (:func:`expunge.audit.ledger.version_summary`),
the per-version table and ``summary.json``; this module draws the completeness figure (mean IAM
unlearning score 1 − S of each request's samples against the model version), writes the ledger's
Markdown page and shows every stored ledger in ``expunge report``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure as MplFigure

from expunge.report.blocks import Block, Figure, Paragraph, Section, Table
from expunge.report.collect import RunData
from expunge.report.figures import to_png
from expunge.report.markdown import markdown_table

KIND = "ledger"
FIGURE = "completeness.png"


def completeness_plot(summary: pd.DataFrame, threshold: float) -> MplFigure:
    """Left: mean unlearning score 1 − S of each request's samples against the version, from the model
    the request was applied to (version k − 1, before forgetting) on. Right: the share of each
    request's samples scored as members again after having been scored as unlearned (regressed)."""
    fig = MplFigure(figsize=(10.0, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    import matplotlib

    colors = matplotlib.colormaps["tab10"].colors
    last = int(summary["version"].max())
    for i, (request, rows) in enumerate(summary.groupby("request", sort=True)):
        rows = rows.sort_values("version")
        x = np.r_[request - 1, rows["version"].to_numpy()]
        y = np.r_[1.0 - rows["mean_membership_before"].iloc[0], rows["mean_unlearning"].to_numpy()]
        c = colors[i % len(colors)]
        # dotted: the model the request was applied to -> its own version (the forgetting step)
        left.plot(x[:2], y[:2], color=c, ls=":", marker="o", mfc="white")
        left.plot(x[1:], y[1:], color=c, marker="o", label=f"r{request} (n={int(rows['n'].iloc[0])})")
        right.plot(rows["version"], rows["n_regressed"] / rows["n"], marker="o", color=c, label=f"r{request}")
    left.axhline(1.0 - threshold, color="0.5", ls="--", lw=1)
    left.set(xlabel="model version (0 = original)", ylabel="mean IAM unlearning score 1 − S", ylim=(-0.02, 1.02),
             title="Completeness of each request's samples")
    right.set(xlabel="model version", ylabel="share regressed", ylim=(-0.02, 1.02),
              title=f"Regressed: unlearned earlier, S ≥ {threshold:g} now")
    for ax in (left, right):
        ax.set_xticks(range(last + 1))
        ax.grid(alpha=0.3)
    left.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return fig


def completeness_figure(summary: pd.DataFrame, threshold: float) -> bytes:
    """:func:`completeness_plot` as PNG bytes."""
    return to_png(completeness_plot(summary, threshold))


def ledger_markdown(info: dict[str, Any], summary: pd.DataFrame, versions: pd.DataFrame,
                    regressed: pd.DataFrame) -> str:
    """The ledger's own page: settings, per-version table, per-(version, request) summary, regressions."""
    tau = info["threshold"]
    lines = [f"# Sequential-unlearning ledger: {info['method']} over {len(info['requests'])} requests", "",
             f"- run `{info['run']}`, dataset {info['dataset']}, model {info['model']}, seed {info['seed']}",
             f"- method {info['method']} {info['params']}, applied to the latest version with forget set r_k "
             "only and retain set = every sample still retained",
             "- requests: " + ", ".join(f"r{i} = {t} ({n} samples)" for i, (t, n) in
                                       enumerate(zip(info["requests"], info["request_sizes"]), 1)),
             f"- IAM-On membership S against the original and {info['shadows']} OUT shadow models (trained once, "
             f"shared by every version); unlearning score 1 − S; unlearned: S < {tau:g}; regressed: unlearned at "
             f"an earlier version, S ≥ {tau:g} at this one", "",
             "## Versions", "", markdown_table(versions.round(4)), "",
             f"![completeness]({FIGURE})", "",
             "## Completeness per version and request", "", markdown_table(summary.round(4)), "",
             "## Regressions", ""]
    if len(regressed):
        lines += [f"{len(regressed)} (sample, version) pairs regressed:", "",
                  markdown_table(regressed.head(50).round(4)), ""]
    else:
        lines += ["No sample scored as unlearned at one version was scored as a member at a later one.", ""]
    return "\n".join(lines)


def ledger_blocks(key: str, art: Any) -> list[Block]:
    info = art.read("summary.json")
    blocks: list[Block] = [Paragraph(
        f"Ledger {key}: {info['method']} applied sequentially for requests "
        + ", ".join(f"r{i} = {t} ({n})" for i, (t, n) in enumerate(zip(info["requests"], info["request_sizes"]), 1))
        + f"; IAM-On with {info['shadows']} shadows, unlearned at S < {info['threshold']:g}; "
        f"{info['n_regressed']} regressed (sample, version) pairs. Stored in {art.path}.")]
    blocks.append(Table(art.read("versions.csv").round(4), caption="One row per model version (0 = original)."))
    blocks.append(Figure(f"ledger_{key}.png", art.read_bytes(FIGURE),
                         "Mean IAM unlearning score of each request's samples and the share regressed, by version"))
    blocks.append(Table(art.read("summary.csv").round(4), caption="Completeness of each request's samples per version."))
    return blocks


def ledger_section(run: RunData) -> Section:
    """Every ledger stored in the run (``expunge ledger``), oldest first."""
    keys = run.store.keys(KIND)
    if not keys:
        return Section("ledger", "Sequential-unlearning ledger", (Paragraph(
            "This run has no ledger (`expunge ledger CONFIG --method NAME --requests SPEC ...` writes one).",
            note=True),))
    arts = sorted((run.store.get(KIND, k, verify=True) for k in keys), key=lambda a: a.manifest.get("created", ""))
    blocks: list[Block] = []
    for art in arts:
        blocks += ledger_blocks(art.key, art)
    return Section("ledger", "Sequential-unlearning ledger", tuple(blocks))
