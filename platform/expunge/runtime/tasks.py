"""Run stage functions as Ray tasks, gathering results as they finish, with one progress display
(a bar on a terminal, one line per finished task in logs: :mod:`expunge.progress`)."""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from expunge.errors import ExpungeError
from expunge.progress import progress


def run_tasks(fn: Callable[..., Any], calls: Sequence[dict[str, Any]], *, num_cpus: float = 1,
              num_gpus: float = 0, max_retries: int = 1, desc: str = "tasks", unit: str = "task",
              use_ray: bool = True) -> list[Any]:
    """``[fn(**kw) for kw in calls]``, as parallel Ray tasks when ``use_ray`` (results in call order).

    Without Ray the calls run one after another in this process: the same code path the GPU
    benchmark machine (which has no Ray) uses.
    """
    bar = progress(len(calls), desc, unit)
    start = time.perf_counter()

    def tick() -> None:
        bar.advance(f"{3600 * (bar.n + 1) / max(1e-9, time.perf_counter() - start):.0f} {unit}s/hour")

    try:
        if not use_ray:
            results = []
            for kw in calls:
                results.append(fn(**kw))
                tick()
            return results
        import ray

        remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries)(fn)
        refs = [remote.remote(**kw) for kw in calls]
        order = {ref: i for i, ref in enumerate(refs)}
        results = [None] * len(refs)
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    results[order[ref]] = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    # surface the user-facing error itself, not Ray's wrapped traceback
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, ExpungeError):
                        raise cause from None
                    raise
                tick()
        return results
    finally:
        bar.close()


def current_node() -> str:
    """The Ray node this task runs on (its node id), or ``"local"`` outside Ray."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
