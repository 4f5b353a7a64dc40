"""Resolution: a schema-valid config checked against the registries, once, before any compute.

:mod:`expunge.config` is pure (it imports no registry). Here every name a config uses (dataset,
model, methods, metrics, sweep methods and their spaces) is looked up in its registry, every
method's ``params`` is validated by the method's typed config, every metric's ``audit.params`` by the
metric's own annotations, and cross-section needs (shadow models, a shadow pool) are checked.
``unlearn.min_steps`` is written into each shared-loop method's params here, so it is part of each
artifact's identity. A problem is one :class:`~expunge.errors.ConfigError` line naming the dotted key.
"""
from __future__ import annotations

import inspect
import os
import typing
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from expunge.config import ExperimentConfig, MethodSpec, SweepMethod, read_config
from expunge.config import validate as validate_schema
from expunge.data import DATASETS
from expunge.errors import ConfigError, ExpungeError
from expunge.metrics import METRICS
from expunge.models import MODELS
from expunge.unlearn import METHODS
from expunge.unlearn.space import Domain, endpoints, parse_domain

_NOTHING = object()


def _fail(source: str, key: str, message: str, got: Any = _NOTHING) -> ConfigError:
    shown = "" if got is _NOTHING or isinstance(got, (dict, list)) else f" (got {got!r})"
    return ConfigError(f"{source}: {key}: {message}{shown}" if key else f"{source}: {message}")


def _check_method(spec: MethodSpec) -> None:
    METHODS.get(spec.name).parse_config(spec.params)


def _check_metrics(names: list[str], key: str, source: str) -> None:
    for name in names:
        if name != "relearn" and name not in METRICS:
            raise _fail(source, key, METRICS.unknown_message(name))


def _check_metric_params(params: dict[str, dict[str, Any]], metrics: list[str], source: str) -> None:
    """Each ``audit.params.<metric>.<key>`` against the metric function's signature and annotation
    (a Literal lists the valid choices), so a bad value is refused with the config, not when the
    metric runs after training."""
    for name, kwargs in params.items():
        if name not in metrics:
            raise _fail(source, "audit", f"audit.params.{name}: not in audit.metrics ({', '.join(metrics)})")
        if name == "relearn":
            raise _fail(source, "audit", "audit.params.relearn: use audit.relearn_epochs")
        fn = METRICS.get(name).fn
        allowed = [p for p in inspect.signature(fn).parameters if p != "inputs"]
        hints = typing.get_type_hints(fn)
        for key, value in kwargs.items():
            if key not in allowed:
                raise _fail(source, "audit", f"audit.params.{name}.{key}: unknown parameter "
                                             f"(allowed: {', '.join(allowed)})")
            try:
                TypeAdapter(hints[key]).validate_python(value) if key in hints else None
            except ValidationError as exc:
                raise _fail(source, "audit", f"audit.params.{name}.{key}: {exc.errors()[0]['msg'].lower()} "
                                             f"(got {value!r})") from None


def _check_robustness(cfg: ExperimentConfig, source: str) -> None:
    """The IAM paper's robustness settings: ``audit.shadow_data`` / ``audit.shadow_model`` name registered
    entries and need shadows; ``data.incremental`` trains its original in one process. (Class count and
    image shape of the shadow data are checked against the target when the data is loaded, in
    :meth:`expunge.experiment.Experiment.preflight`.)"""
    a = cfg.audit
    if a.shadow_data is not None:
        name = a.shadow_data.dataset
        if not name.startswith("hf:") and name not in DATASETS:
            raise _fail(source, "audit.shadow_data.dataset", DATASETS.unknown_message(name), name)
    if a.shadow_model is not None:
        name = a.shadow_model.name
        if not name.startswith("timm:") and name not in MODELS:
            raise _fail(source, "audit.shadow_model.name", MODELS.unknown_message(name), name)
    for key, value in (("shadow_data", a.shadow_data), ("shadow_model", a.shadow_model)):
        if value is not None and a.shadows == 0:
            raise _fail(source, f"audit.{key}", "configures the audit's shadow models; set audit.shadows >= 1")
    if cfg.data.incremental is not None and cfg.scaling.distributed:
        raise _fail(source, "data.incremental", "the warm-started original trains in one process; leave "
                                                "scaling.num_workers=1 and scaling.use_gpu=false (device=cuda "
                                                "still trains it on a GPU)")


def _needs_shadows(metrics: list[str]) -> list[str]:
    return [m for m in metrics if m in METRICS and "shadows" in METRICS.get(m).requires]


def _with_min_steps(params: dict[str, Any], name: str, min_steps: int, searched: bool = False) -> dict[str, Any]:
    if "min_steps" in params or searched or not METHODS.get(name).shared_loop:
        return params
    return {**params, "min_steps": min_steps}


def resolve(cfg: ExperimentConfig, source: str = "config") -> ExperimentConfig:
    """``cfg`` checked against the registries, with ``unlearn.min_steps`` applied (see the module)."""
    if not cfg.data.dataset.startswith("hf:") and cfg.data.dataset not in DATASETS:
        raise _fail(source, "data.dataset", DATASETS.unknown_message(cfg.data.dataset), cfg.data.dataset)
    if not cfg.model.name.startswith("timm:") and cfg.model.name not in MODELS:
        raise _fail(source, "model.name", MODELS.unknown_message(cfg.model.name), cfg.model.name)
    _check_robustness(cfg, source)
    for key, specs in (("unlearn.methods", cfg.unlearn.methods),
                       ("fleet", [cfg.fleet.method] if cfg.fleet.method is not None else [])):
        for spec in specs:
            try:
                _check_method(spec)
            except ExpungeError as exc:
                raise _fail(source, key, str(exc)) from None
    _check_metrics(cfg.audit.metrics, "audit.metrics", source)
    _check_metric_params(cfg.audit.params, cfg.audit.metrics, source)
    for i, m in enumerate(cfg.sweep.methods):
        try:
            method_space(m)  # unknown method or hyperparameter, empty range, bounds the method refuses
        except ExpungeError as exc:
            raise _fail(source, f"sweep.methods.{i}", str(exc)) from None
    if cfg.sweep.metrics is not None:
        _check_metrics(cfg.sweep.metrics, "sweep.metrics", source)
    extra = sorted(set(cfg.sweep.metrics or ()) - set(cfg.audit.metrics) - {"relearn"})
    if _needs_shadows(extra) and cfg.audit.shadows == 0:
        raise _fail(source, "", f"sweep.metrics: {', '.join(_needs_shadows(extra))} need shadow models "
                                "(set audit.shadows)")
    needs = _needs_shadows(cfg.audit.metrics)
    if needs and cfg.audit.shadows == 0:
        raise _fail(source, "", f"audit.shadows: metrics {', '.join(needs)} need shadow models (set >= 1)")
    steps = cfg.unlearn.min_steps
    if steps is None:
        return cfg
    # the step rule of every shared-loop run, sweep trials included, unless a method fixes or searches it
    unlearn = cfg.unlearn.model_copy(update={"methods": [
        s.model_copy(update={"params": _with_min_steps(s.params, s.name, steps)}) for s in cfg.unlearn.methods]})
    sweep = cfg.sweep.model_copy(update={"methods": [
        m.model_copy(update={"params": _with_min_steps(m.params, m.name, steps, "min_steps" in m.space)})
        for m in cfg.sweep.methods]})
    return cfg.model_copy(update={"unlearn": unlearn, "sweep": sweep})


def validate(model: type[BaseModel], data: dict[str, Any], source: str = "config"):
    """``model`` validated from ``data`` by the schema, then (an experiment) resolved."""
    cfg = validate_schema(model, data, source)
    return resolve(cfg, source) if isinstance(cfg, ExperimentConfig) else cfg


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = (),
                model: type[BaseModel] = ExperimentConfig):
    """Read YAML (or defaults), apply ``key=value`` overrides, validate into ``model`` and (an
    experiment) resolve it against the registries."""
    cfg = read_config(path, overrides, model)
    return resolve(cfg, str(path) if path else "config") if isinstance(cfg, ExperimentConfig) else cfg


def _field_names(config_cls: type) -> dict[str, str]:
    """Every accepted key (field name, alias or deprecated spelling) -> the field name."""
    names = {}
    for name, field in config_cls.model_fields.items():
        names[name] = name
        if field.alias:
            names[field.alias] = name
        for alias in getattr(field.validation_alias, "choices", ()):  # deprecated spellings (CPU's lambda)
            names[str(alias)] = name
    return names


def method_space(spec: "SweepMethod") -> dict[str, Domain]:
    """The validated space of one sweep method (field names as keys).

    Refused with a :class:`ConfigError` naming the method and key: an unknown method or
    hyperparameter, a malformed or empty domain, a loguniform with a non-positive bound, a domain
    whose end points (or any choice) the method's config rejects, a dimension that is also fixed in
    ``params``, and an empty space.
    """
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
