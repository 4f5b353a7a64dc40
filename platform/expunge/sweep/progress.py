"""The sweep's progress line (a Ray Tune callback): trials done / running / stopped early / errors.

Counts are read from Tune's own trial list on every event, never kept in the callback, so a sweep
resumed with ``Tuner.restore`` (which restores a pickled copy of this callback) still counts right.
"""
from __future__ import annotations

import math
from typing import Any

from ray.tune import Callback

from expunge.experiment import log


def summarize(trials: list[Any]) -> dict[str, Any]:
    """Counts and the best feasible sweep score of the trials Tune holds."""
    done = [t for t in trials if t.status in ("TERMINATED", "ERROR")]
    last = [t.last_result or {} for t in done]
    best = min((float(r.get("sweep_score", math.inf)) for r in last if r.get("final") and r.get("feasible")),
               default=math.inf)
    return {"done": len(done), "running": sum(t.status == "RUNNING" for t in trials),
            "errors": sum(t.status == "ERROR" for t in trials),
            "stopped": sum(t.status == "TERMINATED" and not (t.last_result or {}).get("final") for t in trials),
            "best": best}


class SweepProgress(Callback):
    def __init__(self, method: str, total: int) -> None:
        self.method, self.total = method, total

    def _line(self, trials: list[Any]) -> None:
        s = summarize(trials)
        best = f"; best sweep score {s['best']:.4g}" if math.isfinite(s["best"]) else ""
        log(f"sweep {self.method}: {s['done']}/{self.total} trials done ({s['stopped']} stopped early, "
            f"{s['errors']} errors), {s['running']} running{best}")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trials)
