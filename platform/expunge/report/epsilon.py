"""The report's per-example epsilon section: what ``expunge epsilon`` (or ``expunge fleet`` with an
unlearned and a retrain fleet of one size) stored under ``<run>/audit/epsilon-<fleet>/``.

NeurIPS 2023 Machine Unlearning Challenge (Triantafillou et al. 2024): per forget example, ε of the
best threshold rule telling M unlearned models from M retrained ones (δ = 1e-5, capped at 50); forget
score F = Σ_e 2^{-⌊2 ε_e⌋} / E for ε_e below ceil(log(M − 1)), else 0; challenge score
F × (RA_u / RA_r) × (TA_u / TA_r), with the RA and TA ratios ``fleet_epsilon`` stored beside it.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from expunge.report import figures
from expunge.report.blocks import Block, Figure, Paragraph, Section, Table
from expunge.report.collect import RunData
from expunge.store import Artifact

SID, TITLE = "epsilon", "Per-example epsilon (NeurIPS 2023 challenge)"
PREFIX = "epsilon-"


def epsilon_artifacts(run: RunData) -> dict[str, Artifact]:
    """The run's per-example epsilon results, oldest first, by key."""
    arts = {k: run.store.get("audit", k) for k in run.store.keys("audit") if k.startswith(PREFIX)}
    return dict(sorted(arts.items(), key=lambda ka: ka[1].manifest.get("created", "")))


def epsilon_row(run: RunData, key: str, art: Artifact) -> dict[str, Any]:
    summary = art.read("summary.json")
    config = art.manifest.get("config") or {}
    u = config.get("unlearned", [])
    first = run.store.get("models", u[0]) if u else None
    eps = art.read("epsilon.npy")
    return {"fleet": key.removeprefix(PREFIX), "method": (first.manifest.get("method") if first else None) or "?",
            "models": summary.get("models_per_fleet"), "examples": len(eps),
            "forget_score": summary.get("forget_score"),
            "RA_ratio": summary.get("ra_ratio"), "TA_ratio": summary.get("ta_ratio"),
            "challenge_score": summary.get("challenge_score"), "epsilon_median": summary.get("epsilon_median"),
            "epsilon_max": summary.get("epsilon_max")}


def epsilon_figure(eps: dict[str, np.ndarray]) -> bytes:
    """Histogram of the per-example epsilons, one outline per fleet."""
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.subplots()
    finite = [e[np.isfinite(e)] for e in eps.values()]
    top = max([float(e.max()) for e in finite if len(e)] + [1.0])
    bins = np.linspace(0, top, 26)
    for name, e in zip(eps, finite):
        ax.hist(e, bins=bins, histtype="step", lw=1.5, label=f"{name} ({len(e)} examples)")
    ax.set_xlabel("per-example epsilon (capped at 50)")
    ax.set_ylabel("forget examples")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    return figures.to_png(fig)


def epsilon_section(run: RunData) -> Section:
    arts = epsilon_artifacts(run)
    if not arts:
        return Section(SID, TITLE, (Paragraph(
            "This run has no per-example epsilon (`expunge epsilon CONFIG --method NAME --models M` writes it).",
            note=True),))
    rows = [epsilon_row(run, k, a) for k, a in arts.items()]
    blocks: list[Block] = [
        Paragraph("Per forget example, epsilon is how well the best threshold on the logit-scaled confidence tells "
                  "M unlearned models (the method applied to M originals) from M models retrained without the "
                  "forget set (delta = 1e-5, capped at 50). Forget score = mean over examples of 2^-floor(2 eps) "
                  "(0 from ceil(log(M - 1)) on); challenge score = forget score x RA ratio x TA ratio (retain and "
                  "test accuracy, unlearned over retrained, fleet means). Higher is better; the challenge used "
                  "M = 512, and a small M makes the score coarse. Stored in "
                  + ", ".join(a.path for a in arts.values()) + "."),
        Table(pd.DataFrame(rows), caption="Per-example epsilon per unlearned fleet."),
        Figure("epsilon.png", epsilon_figure({k.removeprefix(PREFIX): a.read("epsilon.npy") for k, a in arts.items()}),
               "Per-example epsilon of the forget set (lower: the unlearned models look more like retrained ones)."),
    ]
    return Section(SID, TITLE, tuple(blocks))
