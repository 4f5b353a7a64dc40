"""A method's sweep space: its registered ``search_space()`` with the YAML's overrides, validated
against the method's typed config before any trial starts, and turned into Ray Tune domains."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from expunge.errors import ConfigError
from expunge.search_space import Domain, endpoints, parse_domain

if TYPE_CHECKING:
    from expunge.config import SweepMethod


def _field_names(config_cls: type) -> dict[str, str]:
    """Every accepted key (field name or alias) -> the field name."""
    names = {}
    for name, field in config_cls.model_fields.items():
        names[name] = name
        if field.alias:
            names[field.alias] = name
    return names


def method_space(spec: "SweepMethod") -> dict[str, Domain]:
    """The validated space of one sweep method (field names as keys).

    Refused with a :class:`ConfigError` naming the method and key: an unknown method or
    hyperparameter, a malformed or empty domain, a loguniform with a non-positive bound, a domain
    whose end points (or any choice) the method's config rejects, a dimension that is also fixed in
    ``params``, and an empty space.
    """
    from expunge.unlearn import METHODS

    cls = METHODS.get(spec.name)
    cfg_cls = cls.Config
    known = _field_names(cfg_cls)
    where = f"sweep method {spec.name}"
    fixed = {}
    for key, value in spec.params.items():
        if key not in known:
            raise ConfigError(f"{where}: params.{key}: unknown hyperparameter (allowed: {', '.join(cfg_cls.model_fields)})")
        fixed[known[key]] = value
    space: dict[str, Domain] = dict(cfg_cls.search_space()) if spec.default_space else {}
    for key, raw in spec.space.items():
        if key not in known:
            raise ConfigError(f"{where}: space.{key}: unknown hyperparameter (allowed: {', '.join(cfg_cls.model_fields)})")
        name = known[key]
        if raw is None:
            space.pop(name, None)
            continue
        space[name] = parse_domain(f"{spec.name}.{key}", raw)
    for name in list(space):
        if name in fixed:
            if name in {known.get(k) for k in spec.space}:
                raise ConfigError(f"{where}: {name} is both fixed in params and swept in space")
            space.pop(name)  # a fixed value replaces the registered dimension
    if not space:
        raise ConfigError(f"{where}: nothing to sweep (the space is empty)")
    for name, domain in space.items():
        for value in endpoints(domain):
            try:
                cfg_cls.model_validate({**fixed, name: value})
            except ValidationError as exc:
                err = exc.errors()[0]
                raise ConfigError(f"{where}: space.{name}: value {value!r} is refused by the method "
                                  f"({err['msg']})") from None
    try:
        cfg_cls.model_validate(fixed)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{where}: params.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    return space


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
