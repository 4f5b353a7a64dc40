"""The report's figures, drawn with matplotlib's object API (Agg, no pyplot state) into PNG bytes.

Each function takes plain arrays keyed by a model label and returns one PNG; what goes into them is
assembled by ``expunge.report.sections``. Styles are shared so a method has the same colour in every
figure: original grey dotted, retrain black dashed, the methods in the tab10 colours.
"""
from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

DPI = 100
Style = dict[str, Any]


def to_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def styles(labels: list[str], methods: list[str]) -> dict[str, Style]:
    """Line style per label: original grey dotted, retrain black dashed, others tab10 in order."""
    import matplotlib

    cycle = matplotlib.colormaps["tab10"].colors
    out, i = {}, 0
    for label, method in zip(labels, methods):
        if method == "original":
            out[label] = {"color": "0.55", "ls": ":", "lw": 1.6}
        elif method == "retrain":
            out[label] = {"color": "black", "ls": "--", "lw": 1.6}
        else:
            out[label] = {"color": cycle[i % len(cycle)], "ls": "-", "lw": 1.4}
            i += 1
    return out


def roc_figure(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, float]]], style: dict[str, Style],
               n_pos: int, n_neg: int) -> bytes:
    """:func:`roc_plot` as PNG bytes."""
    return to_png(roc_plot(curves, style, n_pos, n_neg))


def roc_plot(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, float]]], style: dict[str, Style],
             n_pos: int, n_neg: int) -> Figure:
    """One log-log ROC panel per attack; ``curves[attack][label] = (fpr, tpr, auc)``.

    Points with FPR or TPR = 0 cannot be drawn on log axes; the axes start at the smallest nonzero
    rate the sample sizes allow (1/n), and the diagonal is chance. Each panel's legend sits below
    its axes, so it never hides a curve (the caller limits how many curves a panel gets)."""
    attacks = list(curves)
    fig = Figure(figsize=(4.2 * len(attacks), 5.0), layout="constrained")
    axes = fig.subplots(1, len(attacks), squeeze=False)[0]
    lo = min(1.0 / max(n_neg, 1), 1.0 / max(n_pos, 1)) * 0.8
    for ax, attack in zip(axes, attacks):
        ax.plot([lo, 1], [lo, 1], color="0.8", lw=1, label="chance")
        for label, (fpr, tpr, auc) in curves[attack].items():
            keep = (fpr > 0) & (tpr > 0)
            ax.plot(fpr[keep], tpr[keep], label=f"{label} (AUC {auc:.3f})", drawstyle="steps-post", **style[label])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, 1.05)
        ax.set_ylim(lo, 1.05)
        ax.set_xlabel("false positive rate (unlearned called retained)")
        ax.set_ylabel("true positive rate (retained detected)")
        ax.set_title(f"{attack}: retained vs unlearned")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    return fig


def histogram_figure(scores: dict[str, tuple[np.ndarray, np.ndarray]], reference: np.ndarray | None,
                     score_name: str) -> bytes:
    """Small multiples: per model, the score of retained vs unlearned samples (density); the
    retrained model's unlearned-sample distribution is drawn as a black outline for reference."""
    labels = list(scores)
    cols = min(3, len(labels))
    rows = -(-len(labels) // cols)
    fig = Figure(figsize=(3.6 * cols, 2.7 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    allv = np.concatenate([np.concatenate(v) for v in scores.values()])
    bins = np.linspace(float(np.min(allv)), float(np.max(allv)) + 1e-12, 31)
    for ax, label in zip(axes, labels):
        retained, unlearned = scores[label]
        ax.hist(retained, bins=bins, density=True, alpha=0.5, color="tab:blue", label="retained")
        ax.hist(unlearned, bins=bins, density=True, alpha=0.6, color="tab:orange", label="unlearned")
        if reference is not None:
            ax.hist(reference, bins=bins, density=True, histtype="step", color="black", lw=1.2,
                    label="unlearned, retrain")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(score_name, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(labels):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)


def cr_alpha_figure(frames: dict[str, pd.DataFrame], style: dict[str, Style], configured: list[float]) -> bytes:
    """One panel per evaluation set: CR against alpha per model; configured alphas dotted."""
    sets = list(dict.fromkeys(s for f in frames.values() for s in f["set"]))
    fig = Figure(figsize=(4.0 * len(sets), 3.6))
    axes = fig.subplots(1, len(sets), squeeze=False)[0]
    for ax, name in zip(axes, sets):
        for label, frame in frames.items():
            part = frame[frame["set"] == name]
            ax.plot(part["alpha"], part["CR"], marker="o", ms=3, label=label, **style[label])
        for a in configured:
            ax.axvline(a, color="0.6", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("alpha (target miscoverage, log scale)")
        ax.set_ylabel("CR = coverage / set size")
        ax.set_title(f"CR on {name}")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)


def curve_figure(panels: list[dict[str, Any]], style: dict[str, Style]) -> bytes:
    """Line panels: each ``{"title", "xlabel", "ylabel", "lines": {label: (x, y)}, "hlines": {text: y}}``."""
    fig = Figure(figsize=(4.4 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        for label, (x, y) in panel["lines"].items():
            ax.plot(x, y, marker="o", ms=3, label=label, **style[label])
        for text, y in panel.get("hlines", {}).items():
            ax.axhline(y, color="tab:red", ls=":", lw=1, label=text)
        ax.set_title(panel["title"])
        ax.set_xlabel(panel["xlabel"])
        ax.set_ylabel(panel["ylabel"])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)
