"""A method's sweep space: its registered ``search_space()`` with the YAML's overrides, validated
against the method's typed config before any trial starts, and turned into Ray Tune domains."""
from __future__ import annotations

from typing import Any

from expunge.errors import ConfigError
from expunge.unlearn.space import Domain


def to_tune(space: dict[str, Domain], search: str) -> dict[str, Any]:
    """Ray Tune domains. ``grid`` search needs grid / choice dimensions (each point runs once);
    Optuna and HyperOpt cannot take ``grid`` dimensions (use ``choice``)."""
    from ray import tune

    makers = {"grid": lambda a: tune.grid_search(list(a)), "choice": lambda a: tune.choice(list(a)),
              "uniform": lambda a: tune.uniform(*a), "loguniform": lambda a: tune.loguniform(*a),
              "randint": lambda a: tune.randint(*a)}
    out: dict[str, Any] = {}
    for name, d in space.items():
        kind = d.kind
        if search == "grid":
            if kind not in ("grid", "choice"):
                raise ConfigError(f"sweep: grid search needs grid or choice dimensions; {name} is {kind}")
            kind = "grid"
        elif kind == "grid" and search != "random":
            raise ConfigError(f"sweep: search {search} cannot take grid dimensions ({name}); use choice")
        out[name] = makers[kind](d.args)
    return out
