"""What the benchmark jobs share: timed sections long enough to be stable, interleaved rounds, and
the median and range of a ratio over those rounds.

A benchmark compares a baseline with a candidate in the same run. Timing each once, or all baseline
runs before all candidate runs, lets a change in the machine's load between the two (another process
starting, a CPU clock change) pass for a difference between them. So the sections run in rounds,
baseline then candidate, again and again; each round gives one ratio, and the median and range of
those ratios are reported. Each timed section repeats its work until it has run for at least
``min_seconds``, so a fast path is not timed over a few milliseconds.

No Ray here: the GPU benchmark imports this on a machine without it.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence


def timed(work: Callable[[], float], min_seconds: float = 0.0,
          sync: Callable[[], None] | None = None) -> tuple[float, float]:
    """Run ``work`` (returning the amount it did: tokens, models, ...) until ``min_seconds`` of wall
    time have passed, at least once; returns (total amount, seconds). ``sync`` waits for queued device
    work before the clock is read (``torch.cuda.synchronize``)."""
    done = 0.0
    t0 = time.perf_counter()
    while True:
        done += work()
        if sync:
            sync()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds:
            return done, elapsed


def interleaved(sections: Sequence[tuple[str, Callable[[], float]]], rounds: int, min_seconds: float = 0.0,
                sync: Callable[[], None] | None = None) -> dict[str, list[tuple[float, float]]]:
    """``rounds`` rounds of every section in the given order (A, B, A, B, ...); for each section
    the (amount, seconds) of every round."""
    out: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in sections}
    for _ in range(rounds):
        for name, work in sections:
            out[name].append(timed(work, min_seconds, sync))
    return out


def rates(samples: Sequence[tuple[float, float]], per: float = 1.0) -> list[float]:
    """Amount per ``per`` seconds of each round (per=3600: per hour)."""
    return [per * amount / seconds for amount, seconds in samples]


def median_round(ratios: Sequence[float]) -> int:
    """Index of the round whose ratio is the median (the lower middle one for an even count), so the
    reported median is one round's actual measurement."""
    order = sorted(range(len(ratios)), key=lambda i: ratios[i])
    return order[(len(order) - 1) // 2]


def ratio_summary(candidate: Sequence[float], baseline: Sequence[float], digits: int = 2) -> dict[str, object]:
    """Per-round candidate/baseline rate ratios: their median (:func:`median_round`), min, max and
    the list, rounded to ``digits``."""
    ratios = [c / b for c, b in zip(candidate, baseline)]
    i = median_round(ratios)
    return {"ratio": round(ratios[i], digits), "ratio_min": round(min(ratios), digits),
            "ratio_max": round(max(ratios), digits), "ratios": [round(r, digits) for r in ratios],
            "median_round": i}


def describe_ratio(summary: dict[str, object]) -> str:
    """``2.31x (median of 5 interleaved rounds; range 2.10-2.52x)``."""
    n = len(summary["ratios"])  # type: ignore[arg-type]
    return (f"{summary['ratio']:.2f}x (median of {n} interleaved round{'s' if n != 1 else ''}; "
            f"range {summary['ratio_min']:.2f}-{summary['ratio_max']:.2f}x)")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))
