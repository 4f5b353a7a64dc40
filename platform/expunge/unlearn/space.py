"""Search-space domains that the core can describe and sample without Ray.

Each method's config declares ``search_space()`` with these; :func:`expunge.resolve.method_space`
merges a sweep's overrides into them and :mod:`expunge.runtime.tune` turns them into Ray Tune domains (``tune.choice``, ``tune.grid_search``, ``tune.uniform``, ``tune.loguniform``,
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


def _number(v: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; accept it as the number it is meant to be."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def _bounds(kind: str, lo: Any, hi: Any) -> tuple[float, float]:
    lo, hi = _number(lo), _number(hi)
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{kind} needs two finite numbers [lo, hi], got {lo!r}, {hi!r}")
    if hi <= lo:
        raise ConfigError(f"{kind} needs lo < hi (an empty range otherwise), got {lo}, {hi}")
    return lo, hi


def uniform(lo: float, hi: float) -> Domain:
    lo, hi = _bounds("uniform", lo, hi)
    return Domain("uniform", (float(lo), float(hi)))


def loguniform(lo: float, hi: float) -> Domain:
    lo, hi = _bounds("loguniform", lo, hi)
    if lo <= 0:
        raise ConfigError(f"loguniform needs 0 < lo < hi (log of a non-positive bound), got {lo}, {hi}")
    return Domain("loguniform", (float(lo), float(hi)))


def randint(lo: int, hi: int) -> Domain:
    """Integers in [lo, hi) (Ray Tune's convention)."""
    lo, hi = _bounds("randint", lo, hi)
    if lo != int(lo) or hi != int(hi):
        raise ConfigError(f"randint needs integer bounds, got {lo}, {hi}")
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
        if kind in ("uniform", "loguniform", "randint") and len(args) != 2:
            raise ConfigError(f"search space {key}: {kind} needs [lo, hi], got {args}")
        try:
            return makers[kind](*args)
        except ConfigError as exc:
            raise ConfigError(f"search space {key}: {exc}") from None
    return choice(spec)


def endpoints(domain: Domain) -> list[Any]:
    """Values that bound what the domain can produce (every value of a choice / grid), to validate
    a search space against a method's config before any trial runs."""
    if domain.kind in ("choice", "grid"):
        return list(domain.args)
    lo, hi = domain.args
    return [lo, hi - 1] if domain.kind == "randint" else [lo, hi]
