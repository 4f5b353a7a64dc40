"""Sweep figures (matplotlib, PNG bytes): the objective against each hyperparameter, per method, and
the Pareto scatter of the first two Pareto columns."""
from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from expunge.config import SweepConfig
from expunge.report.figures import to_png

STATUS_STYLE = {"completed": ("o", None), "stopped": ("x", 0.5), "diverged": ("^", 0.5), "error": ("s", 0.3)}


def sweep_figures(table: pd.DataFrame, spaces: dict[str, dict[str, Any]], sweep: SweepConfig) -> dict[str, bytes]:
    """``objective_<method>.png`` (one panel per hyperparameter; log axis for loguniform ones;
    early-stopped trials drawn faint, at their last reported value) and ``pareto.png``."""
    out: dict[str, bytes] = {}
    if "objective" not in table:
        return out
    for method, space in spaces.items():
        rows = table[table["method"] == method]
        dims = [d for d in space if f"param.{d}" in rows]
        if rows.empty or not dims:
            continue
        fig = Figure(figsize=(3.2 * len(dims), 3))
        axes = fig.subplots(1, len(dims), squeeze=False)
        for ax, dim in zip(axes[0], dims):
            for status, (marker, alpha) in STATUS_STYLE.items():
                part = rows[rows["status"] == status]
                if len(part):
                    x = part[f"param.{dim}"]
                    x = x.astype(str) if x.dtype == object else x
                    ax.scatter(x, part["objective"], marker=marker, alpha=alpha or 0.9, label=status)
            if space[dim].kind == "loguniform":
                ax.set_xscale("log")
            ax.set_xlabel(dim)
            ax.set_ylabel(str(sweep.objective))
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{method}: {sweep.objective} ({sweep.mode}) per hyperparameter")
        out[f"objective_{method.replace('+', '_plus_')}.png"] = to_png(fig)
    if len(sweep.pareto) >= 2:
        x, y = list(sweep.pareto)[:2]
        done = table[(table["status"] == "completed") & table[x].notna() & table[y].notna()]
        if len(done):
            fig = Figure(figsize=(4.5, 3.5))
            ax = fig.subplots()
            for method, part in done.groupby("method"):
                ax.scatter(part[x], part[y], label=method, alpha=0.7)
            front = done[done["pareto"]].sort_values(x)
            ax.plot(front[x], front[y], "k--", lw=1, label="Pareto front")
            ax.set_xlabel(f"{x} ({sweep.pareto[x]})")
            ax.set_ylabel(f"{y} ({sweep.pareto[y]})")
            ax.legend(fontsize=7)
            out["pareto.png"] = to_png(fig)
    return out
