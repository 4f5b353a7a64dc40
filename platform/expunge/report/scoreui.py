"""The report's ScoreUI section: what ``expunge scoreui`` stored under ``<run>/audit/scoreui-<tag>/``.

ScoreUI (IAM paper, Wang et al., USENIX Security 2025): checkpoints b = 0 ... B of a model trained
from an OUT shadow on the target set have ground-truth membership b / B; an attack's per-sample scores
are min-max normalised over all samples x checkpoints and correlated with b / B (Spearman, the
paper's headline; Pearson; MSE). The section shows the stored table with its bootstrap intervals and
a figure of each attack's mean normalised score against the degree of membership.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from expunge.report import figures
from expunge.report.blocks import Block, Figure, Paragraph, Section, Table
from expunge.report.collect import RunData
from expunge.store import Artifact

SID, TITLE = "scoreui", "ScoreUI: scores against partial membership"
PREFIX = "scoreui-"


def scoreui_artifacts(run: RunData) -> dict[str, Artifact]:
    """The run's ScoreUI tables, oldest first, by key."""
    arts = {k: run.store.get("audit", k) for k in run.store.keys("audit") if k.startswith(PREFIX)}
    return dict(sorted(arts.items(), key=lambda ka: ka[1].manifest.get("created", "")))


def _with_interval(table: pd.DataFrame, what: str) -> pd.Series:
    """``0.612 [0.570, 0.651]`` (the bootstrap 95% interval in brackets, where stored)."""
    low, high = table.get(f"{what}_low"), table.get(f"{what}_high")
    if low is None or high is None:
        return table[what]
    return pd.Series([f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite([lo, hi]).all() else f"{v:.3f}"
                      for v, lo, hi in zip(table[what], low, high)], index=table.index)


def degree_figure(scores: dict[str, np.ndarray], fractions: np.ndarray) -> bytes:
    """Per attack, the mean min-max normalised score (over samples) at each degree of membership;
    the diagonal is a score that equals the membership. Means, not quantiles: SVC-MIA's 0/1
    predictions then read as the fraction of samples called members."""
    import matplotlib
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.8", lw=1, label="score = membership")
    cycle = matplotlib.colormaps["tab10"].colors
    for i, (attack, s) in enumerate(scores.items()):
        s = np.where(np.isfinite(s), s, np.nan)
        lo, hi = np.nanmin(s), np.nanmax(s)
        norm = (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)  # as expunge.metrics.scoreui does
        ax.plot(fractions, np.nanmean(norm, axis=1), marker="o", ms=3, color=cycle[i % len(cycle)],
                ls="--" if attack.endswith("-Off") else "-", label=attack)
    ax.set_xlabel("ground-truth membership b / B (fraction of training done)")
    ax.set_ylabel("mean normalised membership score")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return figures.to_png(fig)


def scoreui_blocks(key: str, art: Artifact) -> list[Block]:
    files = art.files()
    summary = art.read("summary.json") if "summary.json" in files else {}
    table = art.read("table.parquet")
    shown = pd.DataFrame({"attack": table["attack"], "spearman [95% CI]": _with_interval(table, "spearman"),
                          "pearson [95% CI]": _with_interval(table, "pearson"), "mse": table["mse"]})
    breaks = summary.get("breaks")
    blocks: list[Block] = [
        Paragraph(f"{key}: {breaks + 1 if breaks else '?'} checkpoints of a model initialised from an OUT shadow "
                  f"(models/{summary.get('init')}) and trained on the original's training set for "
                  f"{summary.get('epochs')} epochs; checkpoint b has membership b/{breaks}. Scored: the "
                  f"{summary.get('samples')} {summary.get('scored_set', 'forget')} samples under each checkpoint, "
                  "against the original and the audit's shadows. Spearman (the IAM paper's headline) and Pearson "
                  "of the min-max normalised scores with b/B, 95% intervals from "
                  f"{summary.get('bootstrap')} bootstrap resamples of samples. Stored in {art.path}."),
        Table(shown, caption="ScoreUI per attack (-On: the original as IN reference; -Off: shadows only)."),
    ]
    scores = {f.removeprefix("scores__").removesuffix(".npy"): art.read(f) for f in files
              if f.startswith("scores__") and f.endswith(".npy")}
    order = list(table["attack"])
    scores = {a: scores[a] for a in order if a in scores}
    if scores and "fractions.npy" in files:
        blocks.append(Figure(f"scoreui_{key.removeprefix(PREFIX)}.png", degree_figure(scores, art.read("fractions.npy")),
                             "Normalised score against the degree of membership, per attack (a perfect ScoreUI "
                             "attack rises monotonically)."))
    return blocks


def scoreui_section(run: RunData) -> Section:
    arts = scoreui_artifacts(run)
    if not arts:
        return Section(SID, TITLE, (Paragraph(
            "This run has no ScoreUI table (`expunge scoreui CONFIG` writes one).", note=True),))
    blocks: list[Block] = []
    for key, art in arts.items():
        blocks += scoreui_blocks(key, art)
    return Section(SID, TITLE, tuple(blocks))
