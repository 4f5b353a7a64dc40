"""A pool of Ray actors of one class: one per GPU in the cluster, else one per CPU slot.

Callers pass their own actor class (e.g. :class:`expunge.llm.parallel.ScorerActor`); this module
holds the Ray calls, so the code above it imports no Ray. A user error raised inside an actor
surfaces as the same one-line :class:`~expunge.errors.ExpungeError`.
"""
from __future__ import annotations

from typing import Any, Sequence

import ray

from expunge.errors import ExpungeError
from expunge.runtime.ray_env import init_ray


def cluster_gpus() -> int:
    """GPUs in the cluster (joined or started locally first)."""
    init_ray()
    return int(ray.cluster_resources().get("GPU", 0))


class ActorPool:
    """``n_actors`` actors of ``cls`` (default: one per GPU with ``num_gpus=1``, else
    ``min(CPUs, max_cpu_actors)`` with one CPU each)."""

    def __init__(self, cls: type, n_actors: int | None = None, max_cpu_actors: int = 4) -> None:
        init_ray()
        res = ray.cluster_resources()
        gpus = int(res.get("GPU", 0))
        if gpus:
            n = min(n_actors or gpus, gpus)
            opts = {"num_gpus": 1, "num_cpus": 1}
        else:
            n = n_actors or max(1, min(int(res.get("CPU", 1)), max_cpu_actors))
            opts = {"num_cpus": 1}
        self.actors = [ray.remote(**opts)(cls).remote() for _ in range(n)]

    def __len__(self) -> int:
        return len(self.actors)

    def call_all(self, method: str, *args: Any) -> list[Any]:
        """``actor.method(*args)`` on every actor, gathered."""
        return self._get([getattr(a, method).remote(*args) for a in self.actors])

    def call_each(self, method: str, args: Sequence[tuple]) -> list[Any]:
        """``actor_i.method(*args[i])``, gathered in order (``len(args) <= len(self)``)."""
        return self._get([getattr(a, method).remote(*x) for a, x in zip(self.actors, args)])

    @staticmethod
    def _get(refs: list) -> list:
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ExpungeError):
                raise cause from None
            raise

    def close(self) -> None:
        for a in self.actors:
            ray.kill(a)
        self.actors = []
