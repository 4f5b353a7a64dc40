"""The sweep's progress line (called back by Tune, :class:`expunge.runtime.tune.TrialEndCallback`): trials done / running / stopped early / errors.

Counts are read from Tune's own trial list on every event, never kept in the callback, so a sweep
resumed with ``Tuner.restore`` (which restores a pickled copy of this callback) still counts right.
"""
from __future__ import annotations

import math
from typing import Any

from expunge.experiment import log


def summarize(trials: list[Any], finishing: Any = None, error: bool = False) -> dict[str, Any]:
    """Counts and the best feasible sweep score of the trials Tune holds. ``finishing`` is the trial
    whose completion (or ``error``) is being reported: Tune calls back before it updates its status."""
    def status(t: Any) -> str:
        if t is finishing:
            return "ERROR" if error else "TERMINATED"
        return t.status

    done = [t for t in trials if status(t) in ("TERMINATED", "ERROR")]
    finals = [t.last_result or {} for t in done if status(t) == "TERMINATED"]
    best = min((float(r.get("sweep_score", math.inf)) for r in finals if r.get("final") and r.get("feasible")),
               default=math.inf)
    return {"done": len(done), "running": sum(status(t) == "RUNNING" for t in trials),
            "errors": sum(status(t) == "ERROR" for t in trials),
            "stopped": sum(status(t) == "TERMINATED" and not (t.last_result or {}).get("final") for t in trials),
            "best": best}


#: method -> trials ended as last reported in this driver process; a module-level record because a
#: resumed Tuner calls back a restored copy of the callback, not the instance the driver holds
ENDED: dict[str, int] = {}


class SweepProgress:
    """``progress(trials, trial, error)`` logs one line per ended trial."""

    def __init__(self, method: str, total: int) -> None:
        self.method, self.total = method, total

    def __call__(self, trials: list[Any], trial: Any, error: bool) -> None:
        s = summarize(trials, trial, error)
        ENDED[self.method] = s["done"]
        best = f"; best sweep score {s['best']:.4g}" if math.isfinite(s["best"]) else ""
        log(f"sweep {self.method}: {s['done']}/{self.total} trials done ({s['stopped']} stopped early, "
            f"{s['errors']} errors), {s['running']} running{best}")
