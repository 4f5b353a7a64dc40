"""Wall time per stage, recorded in the run: ``<run>/timings/<stage>/records.json``.

Every stage of the pipeline runs inside :func:`stage_timer`, which appends one record
``{stage, seconds, started, finished, status, host, device, env}`` to that stage's artifact (latest
last, the most recent :data:`KEEP` kept). A stage that reuses stored artifacts is recorded too, with
its (short) wall time: the record says how long that invocation took. ``host`` and ``env`` describe
the process that ran the stage (the driver, when the stage fans out Ray tasks); ``device`` is the
device the caller names. The artifact's manifest holds the experiment config of the latest
invocation, so the report can show the whole config.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator

from expunge.errors import ArtifactError
from expunge.report.environment import environment
from expunge.store import Artifact, Store

KIND = "timings"
FILE = "records.json"
KEEP = 50


def _iso(t: float) -> str:
    """UTC ISO 8601 with milliseconds (records sort by it; stages can start within one second)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def stage_history(store: Store, stage: str) -> list[dict[str, Any]]:
    """The stored records of one stage, oldest first; empty when none (or unreadable: timing is advisory)."""
    try:
        art = store.get(KIND, stage)
        return list(art.read(FILE)) if art is not None else []
    except ArtifactError:
        return []


def record_stage(store: Store, stage: str, seconds: float, started: float, *, status: str = "ok",
                 device: str | None = None, config: Any = None, repair: bool = False) -> Artifact:
    """Append one timing record for ``stage`` (``started``: a ``time.time()`` stamp); a damaged
    record of earlier invocations is refused by name unless ``repair`` (``--rebuild``) starts it afresh."""
    rec = {"stage": stage, "seconds": round(float(seconds), 3), "started": _iso(started),
           "finished": _iso(started + seconds), "status": status, "device": device, **_host(environment())}
    records = [*stage_history(store, stage), rec][-KEEP:]
    return store.put(KIND, stage, {FILE: records}, config=config, replace=True, repair=repair, stage=stage)


def _host(env: dict[str, Any]) -> dict[str, Any]:
    return {"host": env["host"], "env": {k: v for k, v in env.items() if k != "host"}}


@contextmanager
def stage_timer(store: Store, stage: str, *, device: str | None = None, config: Any = None,
                repair: bool = False) -> Iterator[None]:
    """Time the ``with`` body and record it as ``stage`` (status ``failed`` when it raises)."""
    started, t0 = time.time(), time.perf_counter()
    status = "failed"
    try:
        yield
        status = "ok"
    finally:
        record_stage(store, stage, time.perf_counter() - t0, started, status=status, device=device, config=config,
                     repair=repair)


def run_timings(store: Store) -> list[dict[str, Any]]:
    """Every stage's records in the run, ordered by start time."""
    records = [r for stage in store.keys(KIND) for r in stage_history(store, stage)]
    return sorted(records, key=lambda r: r.get("started", ""))


def recorded_config(store: Store) -> dict[str, Any] | None:
    """The experiment config recorded by the most recent stage, if any stage recorded one."""
    best: tuple[str, Any] | None = None
    for stage in store.keys(KIND):
        try:
            art = store.get(KIND, stage)
        except ArtifactError:
            continue
        if art is not None and art.manifest.get("config") and (best is None or art.manifest["created"] > best[0]):
            best = (art.manifest["created"], art.manifest["config"])
    return best[1] if best else None
