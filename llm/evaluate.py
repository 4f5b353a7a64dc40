"""Audit metrics for LLM attack scores, and the report files (tables, ROC plots).

All numbers come from :mod:`expunge.metrics.roc` and :mod:`expunge.metrics.scoreui`; nothing here
re-implements them. Tasks (positive class first; scores are "higher = positive"):

* ``member_vs_nonmember``: retained members vs non-members (classic membership inference);
* ``retained_vs_unlearned``: retained members vs unlearned samples (BinUI, the IAM protocol:
  retained = positive, so TPR@FPR means "detect retained at a low false-retained rate");
* ``unlearned_vs_nonmember``: unlearned samples vs non-members (AUC near 0.5 = the unlearned samples
  look never seen; above 0.5 = residual memorisation).

A task is evaluated when both of its classes are present. Per task and attack: AUC, TPR at FPR in
{0.1, 0.01, 0.001} and TNR at FNR at the same rates (:func:`~expunge.metrics.roc.binary_report`,
conservative operating points), and a class-balanced percentile bootstrap CI of the AUC
(:func:`~expunge.metrics.roc.bootstrap_ci` with ``class_size="min"``, the IAM fork's protocol).
ScoreUI: the Spearman correlation between min-max normalised scores of checkpoints and their
fraction of training (:func:`~expunge.metrics.scoreui.scoreui`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from expunge.metrics.roc import auc_score, binary_report, bootstrap_ci, roc_curve_fast
from expunge.metrics.scoreui import scoreui
from expunge.report.markdown import markdown_table

TASKS: dict[str, tuple[str, str]] = {
    "member_vs_nonmember": ("member", "nonmember"),
    "retained_vs_unlearned": ("member", "unlearned"),
    "unlearned_vs_nonmember": ("unlearned", "nonmember"),
}
RATES = (0.1, 0.01, 0.001)
SHOWN = {"member": "retained member", "unlearned": "unlearned", "nonmember": "non-member"}


def task_data(scores: np.ndarray, labels: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray] | None:
    pos, neg = TASKS[task]
    keep = np.isin(labels, (pos, neg))
    y = labels[keep] == pos
    if y.all() or not y.any():
        return None
    return np.asarray(scores, dtype=np.float64)[keep], y


def evaluate_scores(scores: Mapping[str, np.ndarray], labels: np.ndarray, *, tasks: Sequence[str] | None = None,
                    n_boot: int = 1000, level: float = 0.95, seed: int = 0, rates: Sequence[float] = RATES) -> pd.DataFrame:
    """One row per (attack, task) with AUC, its bootstrap CI and TPR / TNR at low rates."""
    labels = np.asarray(labels)
    rows = []
    for task in tasks or TASKS:
        for name, s in scores.items():
            d = task_data(s, labels, task)
            if d is None:
                continue
            x, y = d
            if not np.all(np.isfinite(x)):
                rows.append({"attack": name, "task": task, "n_pos": int(y.sum()), "n_neg": int((~y).sum()),
                             "note": "non-finite scores"})
                continue
            rep = binary_report(x, y, rates)
            row = {"attack": name, "task": task, "n_pos": int(rep.pop("n_pos")), "n_neg": int(rep.pop("n_neg")),
                   "auc": rep.pop("auc")}
            if n_boot > 0:
                ci = bootstrap_ci(x, y, auc_score, n_boot=n_boot, level=level, seed=seed, class_balanced=True,
                                  class_size="min")
                row.update(auc_low=ci["low"], auc_high=ci["high"], auc_std=ci["std"])
            row.update(rep)
            rows.append(row)
    return pd.DataFrame(rows)


def scoreui_table(checkpoint_scores: Mapping[str, np.ndarray], fractions: Sequence[float]) -> pd.DataFrame:
    """``checkpoint_scores[attack]`` is [B, N] (checkpoint b, sample i); one row per attack with the
    Spearman / Pearson correlation and MSE of the normalised scores against the fractions."""
    rows = []
    for name, s in checkpoint_scores.items():
        s = np.asarray(s, dtype=np.float64)
        if not np.all(np.isfinite(s)):
            rows.append({"attack": name, "scoreui_spearman": float("nan")})
            continue
        r = scoreui(s, np.asarray(fractions, dtype=np.float64))
        rows.append({"attack": name, "scoreui_spearman": r["spearman"], "scoreui_pearson": r["pearson"],
                     "scoreui_mse": r["mse"]})
    return pd.DataFrame(rows)


def auc_summary(results: pd.DataFrame, columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Wide table: one row per attack, one ``AUC [low, high]`` string column per task."""
    if results.empty:
        return pd.DataFrame()
    out = pd.DataFrame({"attack": list(dict.fromkeys(results["attack"]))})
    for task in dict.fromkeys(results["task"]):
        sub = results[results["task"] == task].set_index("attack")
        col = (columns or {}).get(task, task)

        def fmt(a: str) -> str:
            if a not in sub.index or pd.isna(sub.loc[a].get("auc", np.nan)):
                return "n/a"
            r = sub.loc[a]
            ci = f" [{r['auc_low']:.3f}, {r['auc_high']:.3f}]" if "auc_low" in r and pd.notna(r["auc_low"]) else ""
            return f"{r['auc']:.3f}{ci}"

        out[col] = [fmt(a) for a in out["attack"]]
    return out


def plot_rocs(scores: Mapping[str, np.ndarray], labels: np.ndarray, task: str, path: str | Path | Any,
              title: str | None = None) -> bool:
    """Log-log ROC curves of every attack for one task into ``path`` (a PNG file name or a binary
    file object); False (nothing written) if the task's classes are absent."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    lo = 1.0
    drawn = False
    for name, s in scores.items():
        d = task_data(s, np.asarray(labels), task)
        if d is None or not np.all(np.isfinite(d[0])):
            continue
        fpr, tpr, _ = roc_curve_fast(*d)
        lo = min(lo, 1.0 / max(1, int((~d[1]).sum())), 1.0 / max(1, int(d[1].sum())))
        ax.plot(np.maximum(fpr, lo / 2), np.maximum(tpr, lo / 2), label=f"{name} ({auc_score(*d):.3f})",
                drawstyle="steps-post", lw=1.2)
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.plot([lo / 2, 1], [lo / 2, 1], color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo / 2, 1)
    ax.set_ylim(lo / 2, 1.05)
    pos, neg = (SHOWN[c] for c in TASKS[task])
    ax.set_xlabel(f"false positive rate ({neg} called {pos})")
    ax.set_ylabel(f"true positive rate ({pos})")
    ax.set_title(title or task.replace("_", " "))
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path if hasattr(path, "write") else str(path), dpi=110, format="png")
    plt.close(fig)
    return True


def roc_png(scores: Mapping[str, np.ndarray], labels: np.ndarray, task: str, title: str | None = None) -> bytes | None:
    """:func:`plot_rocs` into PNG bytes (None if the task's classes are absent)."""
    import io

    buf = io.BytesIO()
    return buf.getvalue() if plot_rocs(scores, labels, task, buf, title) else None


def fmt_table(df: pd.DataFrame, digits: int = 3, na: str = "n/a") -> str:
    """Markdown table with floats at ``digits`` decimals and ``na`` for missing values."""
    shown = df.copy()
    for c in shown.columns:
        if shown[c].dtype.kind == "f":
            shown[c] = [(na if pd.isna(v) else f"{v:.{digits}f}") for v in shown[c]]
    return markdown_table(shown)


def per_sample_table(ids: Sequence[str], labels: np.ndarray | None, scores: Mapping[str, np.ndarray]) -> pd.DataFrame:
    df = pd.DataFrame({"id": list(ids)})
    if labels is not None:
        df["label"] = np.asarray(labels)
    for k, v in scores.items():
        df[k] = np.asarray(v, dtype=np.float64)
    return df


def report_files(results: pd.DataFrame, summary: pd.DataFrame, samples: pd.DataFrame, plots: dict[str, bytes],
                 title: str, notes: Sequence[str] = (), extra: Mapping[str, pd.DataFrame] | None = None) -> dict[str, Any]:
    """The files of a report artifact: tables as CSV + parquet, a markdown report, ROC PNGs."""
    md = [f"# {title}", "", *notes, "", "## AUC [95% class-balanced bootstrap CI]", "", fmt_table(summary), ""]
    for name, df in (extra or {}).items():
        md += [f"## {name}", "", fmt_table(df), ""]
    cols = [c for c in ("attack", "task", "n_pos", "n_neg", "auc", "tpr@fpr=0.1", "tpr@fpr=0.01", "tpr@fpr=0.001")
            if c in results.columns]
    md += ["## Details", "", fmt_table(results[cols]) if not results.empty else "(no task had both classes)", ""]
    md += [f"![{name}]({name})" for name in plots]
    files: dict[str, Any] = {"report.md": "\n".join(md) + "\n", "results.csv": results, "results.parquet": results,
                             "summary.csv": summary, "scores.parquet": samples, "scores.csv": samples, **plots}
    for name, df in (extra or {}).items():
        files[f"{name.lower().replace(' ', '_')}.csv"] = df
    return files
