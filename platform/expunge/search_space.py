"""Search-space domains that the core can describe and sample without Ray.

Each method's config declares ``search_space()`` with these; ``expunge.distributed`` turns them into
Ray Tune domains (``tune.choice``, ``tune.grid_search``, ``tune.uniform``, ``tune.loguniform``,
``tune.randint``) and the YAML ``sweep:`` block overrides them with the same five kinds.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from expunge.errors import ConfigError


@dataclass(frozen=True)
class Domain:
    kind: str
    args: tuple

    def sample(self, rng: random.Random) -> Any:
        if self.kind in ("choice", "grid"):
            return rng.choice(list(self.args))
        lo, hi = self.args
        if self.kind == "uniform":
            return rng.uniform(lo, hi)
        if self.kind == "loguniform":
            return math.exp(rng.uniform(math.log(lo), math.log(hi)))
        return rng.randrange(int(lo), int(hi))

    def to_dict(self) -> dict[str, Any]:
        return {self.kind: list(self.args)}


def choice(*values: Any) -> Domain:
    return Domain("choice", tuple(values))


def grid(*values: Any) -> Domain:
    return Domain("grid", tuple(values))


def uniform(lo: float, hi: float) -> Domain:
    return Domain("uniform", (float(lo), float(hi)))


def loguniform(lo: float, hi: float) -> Domain:
    if lo <= 0 or hi <= lo:
        raise ConfigError(f"loguniform needs 0 < lo < hi, got {lo}, {hi}")
    return Domain("loguniform", (float(lo), float(hi)))


def randint(lo: int, hi: int) -> Domain:
    """Integers in [lo, hi) (Ray Tune's convention)."""
    return Domain("randint", (int(lo), int(hi)))


def parse_domain(key: str, spec: Any) -> Domain:
    """YAML form: ``{loguniform: [1e-4, 1e-1]}``, ``{choice: [a, b]}``, ``{grid: [...]}``, or a constant."""
    if isinstance(spec, dict) and len(spec) == 1:
        (kind, args), = spec.items()
        makers = {"choice": choice, "grid": grid, "uniform": uniform, "loguniform": loguniform, "randint": randint}
        if kind not in makers:
            raise ConfigError(f"search space {key}: unknown domain {kind!r} (allowed: {', '.join(makers)})")
        if not isinstance(args, list) or not args:
            raise ConfigError(f"search space {key}: {kind} needs a non-empty list")
        return makers[kind](*args)
    return choice(spec)
