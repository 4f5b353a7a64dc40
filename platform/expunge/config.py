"""The experiment schema (one place), YAML loading and ``key=value`` overrides.

Every section is a strict pydantic model: an unknown key, a wrong type or an out-of-range value is a
:class:`~expunge.errors.ConfigError` naming the dotted key and what is allowed, raised before any
compute. Names that live in registries (datasets, models, methods) are checked against them too.
"""
from __future__ import annotations

import math
import os
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from expunge.errors import ConfigError, ExpungeError


def safe_name(v: str) -> str:
    """A name that becomes one path segment of the run directory: no separators, no '..'."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", v) or ".." in v:
        raise ValueError("must be 1-100 characters of letters, digits, '_', '-', '.' (no path separators)")
    return v


def names_to_dicts(v: Any) -> Any:
    """YAML shorthand: a bare method name in a list means ``{name: <it>}``."""
    if isinstance(v, list):
        return [{"name": m} if isinstance(m, str) else m for m in v]
    return v


def _numeric_field(annotation: Any) -> bool:
    """Whether a field annotation admits an int or a float (``float | None``, ``float | int``, ...)."""
    if annotation in (int, float):
        return True
    return any(_numeric_field(a) for a in typing.get_args(annotation))


class Section(BaseModel):
    """Strict types for every section: an int field takes an int and a float field an int or a float,
    never a boolean (``seed=true`` would otherwise be 1), a string or a float with an integral value;
    floats must be finite (NaN fails every range check, so it would be reported as out of range)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _plain_numbers(cls, v: Any, info: Any) -> Any:
        field = cls.model_fields.get(info.field_name)
        if field is None or not _numeric_field(field.annotation):
            return v
        if type(v).__module__ == "numpy" and getattr(v, "ndim", None) == 0:
            return v.item()  # a NumPy scalar computed by code is its Python number (np.bool_ stays refused)
        if isinstance(v, str):
            try:
                finite = math.isfinite(float(v))
            except ValueError:
                return v
            if not finite:  # `lr=nan` / `lr=inf` on the command line: text, not YAML's .nan
                raise ValueError("must be finite")
        return v


class SizesConfig(Section):
    """Held-out sets: a float in [0, 1) is a fraction, an int a count (see SplitPlan)."""

    test: float | int = Field(0.2, ge=0)
    calibration: float | int = Field(0.1, ge=0)
    population: float | int = Field(0.1, ge=0)
    shadow_pool: float | int = Field(0.0, ge=0)

    @field_validator("test", "calibration", "population", "shadow_pool")
    @classmethod
    def _fraction_below_one(cls, v: float | int) -> float | int:
        if isinstance(v, float) and v >= 1.0:
            raise ValueError(f"a fraction must be < 1 (use an integer for a count), got {v}")
        return v


class DataConfig(Section):
    dataset: str = "digits"
    root: str | None = None
    #: keyword arguments of the dataset loader (e.g. synthetic's n, shape, noise; cifar's download)
    options: dict[str, Any] = Field(default_factory=dict)
    forget: str = "random:0.1"
    sizes: SizesConfig = Field(default_factory=SizesConfig)
    #: symmetric label noise on the whole pool (expunge.data.noise), e.g. 0.1 with ``forget: mislabeled``
    label_noise: float = Field(0.0, ge=0, lt=1)
    #: seed of the corruption; independent of the split seed, so every seed sees the same noisy data
    label_noise_seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _mislabeled_needs_noise(self) -> "DataConfig":
        if self.forget == "mislabeled" and self.label_noise == 0:
            raise ValueError("data.forget: mislabeled forgets the corrupted samples; set data.label_noise > 0")
        return self

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        from expunge.data import DATASETS

        if not v.startswith("hf:") and v not in DATASETS:
            raise ValueError(DATASETS.unknown_message(v))
        return v

    @field_validator("forget")
    @classmethod
    def _forget_spec(cls, v: str) -> str:
        from expunge.data.splits import ForgetSpec

        try:
            return str(ForgetSpec.parse(v))
        except ExpungeError as exc:
            raise ValueError(str(exc)) from None


class ModelConfig(Section):
    name: str = "cnn"
    kwargs: dict[str, Any] = Field(default_factory=dict)
    #: the user's trained original (safetensors, or a weights-only torch file): imported, not trained
    weights: str | None = None

    @field_validator("name")
    @classmethod
    def _known_model(cls, v: str) -> str:
        from expunge.models import MODELS

        if not v.startswith("timm:") and v not in MODELS:
            raise ValueError(MODELS.unknown_message(v))
        return v


class TrainConfig(Section):
    """Hyperparameters of the plain training loop (originals, retrains, shadows, fine-tuning).

    ``recipe`` names a preset from ``expunge.train.recipes`` (``fast``, ``resnet18-standard``, ...)
    whose values fill every key the config does not set itself.
    """

    recipe: str | None = None
    epochs: int = Field(30, ge=1, le=10_000)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0, le=100)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["cosine", "onecycle", "constant", "step"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: bool = True
    grad_clip: float | None = Field(None, gt=0)
    #: bf16 autocast and channels_last apply on CUDA only
    bf16: bool = True
    channels_last: bool = True
    compile: bool = False
    #: data-dependent init of the first layer when the model has one (fastnet's patch whitening)
    data_init: bool = False
    eval_batch_size: int = Field(1024, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _apply_recipe(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("recipe") is not None:
            from expunge.train.recipes import RECIPES

            name = data["recipe"]
            if name not in RECIPES:
                raise ValueError(RECIPES.unknown_message(name))
            return {**RECIPES.get(name), **data}
        return data


class MethodSpec(Section):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    #: the leaderboard's name for this row (default: ``name``), e.g. "salun (tuned)"; not part of any identity
    label: str | None = Field(None, min_length=1, max_length=60)


class UnlearnConfig(Section):
    methods: list[MethodSpec] = Field(default_factory=list)
    #: the fewest optimiser steps of every shared-loop method (``shared_loop``) whose ``params`` do not set it
    #: (``expunge.unlearn.base``): None keeps each method's default (200), 0 runs every paper's step
    #: count as it is; written into each method's params, so it is part of every artifact's identity
    min_steps: int | None = Field(None, ge=0, le=1_000_000)

    @field_validator("methods", mode="before")
    @classmethod
    def _names_to_specs(cls, v: Any) -> Any:
        return names_to_dicts([v] if isinstance(v, str) else v)

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, v: list[MethodSpec]) -> list[MethodSpec]:
        from expunge.unlearn import METHODS

        for spec in v:
            try:
                METHODS.get(spec.name).parse_config(spec.params)
            except ExpungeError as exc:
                raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _apply_min_steps(self) -> "UnlearnConfig":
        if self.min_steps is None:
            return self
        from expunge.unlearn import METHODS

        specs = [spec if "min_steps" in spec.params or not METHODS.get(spec.name).shared_loop
                 else spec.model_copy(update={"params": {**spec.params, "min_steps": self.min_steps}})
                 for spec in self.methods]
        # object.__setattr__: assignment validation would run this validator again
        object.__setattr__(self, "methods", specs)
        return self


class AuditConfig(Section):
    """What the audit stage computes (``expunge audit``; run by ``expunge run`` when set)."""

    #: registered metric names (``expunge info``); "relearn" adds the relearning attack
    metrics: list[str] = Field(default_factory=lambda: ["accuracy"])
    #: OUT-only shadow models trained on subsets of the shadow pool (LiRA, RMIA, IAM references)
    shadows: int = Field(0, ge=0, le=4096)
    shadow_fraction: float = Field(0.8, gt=0, le=1)
    relearn_epochs: int = Field(10, ge=1, le=1000)
    #: augmented query views per sample for LiRA (0: the clean image only)
    augmented_views: int = Field(0, ge=0, le=64)
    #: keyword arguments per metric, e.g. {rmia: {gamma: 1.5, signal: taylor}, iam: {n_levels: 50}}
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, v: list[str]) -> list[str]:
        from expunge.metrics import METRICS

        for name in v:
            if name != "relearn" and name not in METRICS:
                raise ValueError(METRICS.unknown_message(name))
        return v

    @model_validator(mode="after")
    def _params_for_known_metrics(self) -> "AuditConfig":
        import inspect

        from expunge.metrics import METRICS

        for name, kwargs in self.params.items():
            if name not in self.metrics:
                raise ValueError(f"audit.params.{name}: not in audit.metrics ({', '.join(self.metrics)})")
            if name == "relearn":
                raise ValueError("audit.params.relearn: use audit.relearn_epochs")
            fn = METRICS.get(name).fn
            allowed = [p for p in inspect.signature(fn).parameters if p != "inputs"]
            hints = typing.get_type_hints(fn)
            for key, value in kwargs.items():
                if key not in allowed:
                    raise ValueError(f"audit.params.{name}.{key}: unknown parameter (allowed: {', '.join(allowed)})")
                # the value against the metric's own annotation (a Literal lists the valid choices),
                # so a bad value is refused with the config, not when the metric runs after training
                try:
                    TypeAdapter(hints[key]).validate_python(value) if key in hints else None
                except ValidationError as exc:
                    raise ValueError(f"audit.params.{name}.{key}: {exc.errors()[0]['msg'].lower()} "
                                     f"(got {value!r})") from None
        return self


class FleetConfig(Section):
    """K models of one kind, trained in parallel (``expunge fleet``)."""

    kind: Literal["shadow", "retrain", "unlearned"] = "shadow"
    size: int = Field(0, ge=0, le=4096)
    #: shadow fleets: "balanced" (each universe sample IN for half the models, LiRA) or "out_only"
    policy: Literal["balanced", "out_only"] = "balanced"
    universe: list[Literal["train", "test", "shadow_pool"]] = Field(
        default_factory=lambda: ["train", "test", "shadow_pool"])
    #: out_only: the fraction of the shadow pool each member trains on
    fraction: float = Field(0.8, gt=0, le=1)
    #: unlearned fleets: the method applied to each member's own original
    method: MethodSpec | None = None
    cpus_per_model: float = Field(1.0, gt=0)
    gpus_per_model: float = Field(0.0, ge=0)
    max_retries: int = Field(2, ge=0, le=100)
    #: members trained together as one batched ensemble (torch.func vmap) per task; 1: one model per task
    ensemble: int = Field(1, ge=1, le=256)

    @model_validator(mode="after")
    def _kind_needs(self) -> "FleetConfig":
        if self.ensemble > 1 and self.kind == "unlearned":
            raise ValueError("fleet.ensemble: only shadow and retrain fleets train as batched ensembles")
        if self.kind == "unlearned" and self.method is None:
            raise ValueError("fleet.method: an unlearned fleet needs a method (e.g. {name: salun})")
        if self.kind != "unlearned" and self.method is not None:
            raise ValueError(f"fleet.method: only unlearned fleets take a method (kind is {self.kind})")
        if self.method is not None:
            from expunge.unlearn import METHODS

            METHODS.get(self.method.name).parse_config(self.method.params)
        return self


class SweepMethod(Section):
    """One method of a sweep: fixed ``params`` and ``space``, which overrides the method's registered
    search space dimension by dimension (``{loguniform: [1e-4, 1e-1]}``, ``{choice: [...]}``,
    ``{grid: [...]}``, ``{uniform: [lo, hi]}``, ``{randint: [lo, hi]}``, a constant, or null to drop a
    registered dimension); ``default_space: false`` starts from an empty space."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, Any] = Field(default_factory=dict)
    default_space: bool = True

    @model_validator(mode="after")
    def _valid_space(self) -> "SweepMethod":
        from expunge.sweep.space import method_space

        method_space(self)  # unknown method or hyperparameter, empty range, bounds the method refuses
        return self


class SweepConfig(Section):
    """A Ray Tune sweep over unlearning hyperparameters (``expunge sweep``), scored against retrain."""

    name: str = "sweep"
    methods: list[SweepMethod] = Field(default_factory=list)
    #: trials per method (random / optuna / hyperopt); grid search runs each grid point once
    num_samples: int = Field(8, ge=1, le=100_000)
    search: Literal["random", "grid", "optuna", "hyperopt"] = "random"
    scheduler: Literal["asha", "fifo"] = "asha"
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(2.0, gt=1)
    #: a leaderboard column (avg_gap, gap_iam_binui_auc, CR_forget, relearn_acc@10, TA_drop, RTE_s, ...)
    #: or a weighted sum {column: weight}
    objective: str | dict[str, float] = "avg_gap"
    mode: Literal["min", "max"] = "min"
    #: "<column> <op> <number>" with op in <=, >=, <, > (e.g. "TA_drop <= 2"); a trial that breaks one
    #: is infeasible: kept in the table, never chosen as best
    constraints: list[str] = Field(default_factory=list)
    #: columns and directions whose Pareto front is reported, e.g. {gap_UA: min, TA: max}
    pareto: dict[str, Literal["min", "max"]] = Field(default_factory=dict)
    max_concurrent: int = Field(2, ge=1, le=10_000)
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)
    #: retries of a trial whose worker died (a deterministic error is not retried forever)
    max_failures: int = Field(1, ge=0, le=100)
    #: audit metrics computed per trial (default: audit.metrics)
    metrics: list[str] | None = None

    @field_validator("methods", mode="before")
    @classmethod
    def _names_to_methods(cls, v: Any) -> Any:
        return names_to_dicts(v)

    @field_validator("name")
    @classmethod
    def _safe_sweep_name(cls, v: str) -> str:
        return safe_name(v)

    @field_validator("constraints")
    @classmethod
    def _constraint_syntax(cls, v: list[str]) -> list[str]:
        from expunge.sweep.objective import Constraint

        for c in v:
            try:
                Constraint.parse(c)
            except ExpungeError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("objective")
    @classmethod
    def _objective_weights(cls, v: str | dict[str, float]) -> str | dict[str, float]:
        if isinstance(v, dict) and not v:
            raise ValueError("a weighted objective needs at least one {column: weight}")
        return v

    @field_validator("metrics")
    @classmethod
    def _known_sweep_metrics(cls, v: list[str] | None) -> list[str] | None:
        return AuditConfig._known_metrics(v) if v is not None else v


class ScalingConfig(Section):
    """How the original trains: Ray Train's TorchTrainer (DDP) when num_workers > 1 or use_gpu."""

    num_workers: int = Field(1, ge=1, le=1024)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    #: restarts of the whole worker group from the last checkpoint after a worker is lost
    max_failures: int = Field(2, ge=0, le=100)
    #: Ray's placement of the workers: PACK fills one node first (fast collectives), SPREAD puts
    #: them on as many nodes as it can (one node's loss takes fewer workers with it)
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"

    @property
    def distributed(self) -> bool:
        return self.num_workers > 1 or self.use_gpu


class ExperimentConfig(Section):
    """One experiment: data and split, model, the original's training, unlearning methods."""

    name: str = "experiment"
    seed: int = Field(0, ge=0)
    #: repeated trials: run the experiment once per seed (split and initialisation), see per_seed_configs
    seeds: list[int] | None = None
    #: run directory root: a local path or a pyarrow/fsspec URI (s3://, gs://, file://)
    storage: str = "runs"
    device: str = "auto"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    unlearn: UnlearnConfig = Field(default_factory=UnlearnConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)

    @model_validator(mode="after")
    def _sweep_metrics(self) -> "ExperimentConfig":
        extra = set(self.sweep.metrics or ()) - set(self.audit.metrics)
        needs_shadows = [m for m in extra if m != "relearn" and "shadows" in _metric_requires(m)]
        if needs_shadows and self.audit.shadows == 0:
            raise ValueError(f"sweep.metrics: {', '.join(sorted(needs_shadows))} need shadow models (set audit.shadows)")
        return self

    @model_validator(mode="after")
    def _sweep_min_steps(self) -> "ExperimentConfig":
        """``unlearn.min_steps`` is the step rule of every shared-loop run, sweep trials included: it is
        fixed in each sweep method's ``params`` unless the method fixes or searches ``min_steps`` itself."""
        if self.unlearn.min_steps is None or not self.sweep.methods:
            return self
        from expunge.unlearn import METHODS

        methods = [m if "min_steps" in m.params or "min_steps" in m.space or not METHODS.get(m.name).shared_loop
                   else m.model_copy(update={"params": {**m.params, "min_steps": self.unlearn.min_steps}})
                   for m in self.sweep.methods]
        # object.__setattr__: assignment validation would run the validators again
        object.__setattr__(self.sweep, "methods", methods)
        return self

    @model_validator(mode="after")
    def _audit_needs(self) -> "ExperimentConfig":
        from expunge.metrics import METRICS

        needs_shadows = [m for m in self.audit.metrics if m in METRICS and "shadows" in METRICS.get(m).requires]
        if needs_shadows and self.audit.shadows == 0:
            raise ValueError(f"audit.shadows: metrics {', '.join(needs_shadows)} need shadow models (set >= 1)")
        if self.audit.shadows and self.data.sizes.shadow_pool == 0:
            raise ValueError("data.sizes.shadow_pool: shadow models need a shadow pool (set a fraction > 0)")
        f = self.fleet
        if f.ensemble > 1 and (self.train.grad_clip or self.train.compile):
            raise ValueError("fleet.ensemble: batched ensembles do not support train.grad_clip or train.compile "
                             "(set fleet.ensemble=1)")
        pool_needed = (f.kind == "shadow" and (f.policy == "out_only" or "shadow_pool" in f.universe))
        if f.size and pool_needed and self.data.sizes.shadow_pool == 0:
            raise ValueError("data.sizes.shadow_pool: this shadow fleet draws on the shadow pool (set a fraction > 0"
                             " or leave shadow_pool out of fleet.universe)")
        return self

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return safe_name(v)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int] | None) -> list[int] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("give at least one seed, or leave seeds out")
        if any(s < 0 for s in v):
            raise ValueError(f"seeds must be >= 0, got {v}")
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, got {v}")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", v):
            raise ValueError("allowed: auto, cpu, cuda, cuda:<n>, mps")
        return v

    @property
    def run_dir(self) -> str:
        return join_uri(self.storage, self.name)

    def per_seed_configs(self) -> list["ExperimentConfig"]:
        """One config per seed of ``seeds`` (or ``[self]`` without it).

        Seed ``s`` runs in ``<storage>/<name>/seed-<s>`` with ``seed = s``: the split plan, every
        model's initialisation and every method's randomness derive from it. The runs share the
        loaded dataset (and so its fingerprint and, with ``data.label_noise``, the corrupted labels,
        which have their own seed); nothing stored depends on two seeds at once, and the
        cross-seed summary lives in ``<storage>/<name>/``.
        """
        if self.seeds is None:
            return [self]
        return [self.model_copy(update={"seed": s, "seeds": None, "storage": self.run_dir, "name": f"seed-{s}"})
                for s in self.seeds]


def _metric_requires(name: str) -> tuple[str, ...]:
    from expunge.metrics import METRICS

    return METRICS.get(name).requires


def join_uri(base: str, *parts: str) -> str:
    if "://" in base:
        return "/".join([base.rstrip("/"), *parts])
    return str(Path(base, *parts))


# --- loading and overrides -------------------------------------------------------------------
#: pydantic's wording replaced where it misleads (a strict type refusal reads "valid integer")
_MESSAGES = {"int_type": "must be an integer", "float_type": "must be a number", "finite_number": "must be finite",
             "bool_type": "must be true or false", "string_type": "must be a string"}


def _union_member(part: str) -> bool:
    """A location part pydantic adds for a member of a union (``int``, ``dict[str,float]``, ...)."""
    return part in ("int", "float", "str", "bool", "none") or "[" in part


def _format_error(exc: ValidationError, model: type[BaseModel]) -> str:
    lines: list[str] = []
    for err in exc.errors():
        # one message per key, not one per member of its union
        loc = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and _union_member(p)))
        if any(line.startswith(f"{loc}: ") for line in lines):
            continue
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, err["loc"][:-1])
            lines.append(f"{loc}: unknown key (allowed: {', '.join(allowed)})")
        else:
            msg = _MESSAGES.get(err["type"]) or err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
            lines.append(f"{loc}: {msg}{shown}" if loc else msg)
    return "; ".join(lines)


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return []
    return list(model.model_fields)


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader with two fixes for configs.

    * Floats are read as YAML 1.2 writes them: ``1e-4`` and ``1E5`` are numbers (YAML 1.1, which
      PyYAML follows, needs a dot and a signed exponent: ``1.0e-4``), so a strict float field
      accepts what a user types.
    * Duplicate keys are refused by :func:`load_yaml` (YAML 1.2 requires unique keys; PyYAML keeps
      the last value silently).
    """


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _duplicate_keys(node: yaml.Node, path: str, source: str, seen: set[int]) -> None:
    """Raise on the first mapping (at any depth) that repeats a key, naming it and both lines."""
    if id(node) in seen:  # an alias of a node already checked (or a recursive anchor)
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` keys override by design
                continue
            key = (key_node.tag, key_node.value) if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            name = f"{path}.{key_node.value}" if path else str(key_node.value)
            mark = key_node.start_mark
            if key in first:
                (l0, c0), l1, c1 = first[key], mark.line + 1, mark.column + 1
                where = f"lines {l0} and {l1}" if l0 != l1 else f"line {l1}, columns {c0} and {c1}"
                raise ConfigError(f"{source}: duplicate key {name} ({where})")
            first[key] = (mark.line + 1, mark.column + 1)
            _duplicate_keys(value_node, name, source, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _duplicate_keys(item, f"{path}[{i}]", source, seen)


def load_yaml(text: str, source: str, path: str = "") -> Any:
    """Parse one YAML document with :class:`ConfigLoader`; a repeated key is a :class:`ConfigError`
    naming ``source``, the dotted key (under ``path``) and the lines of both occurrences."""
    loader = ConfigLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _duplicate_keys(node, path, source, set())
        return loader.construct_document(node)
    finally:
        loader.dispose()


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["train.epochs=5", "data.forget=class:3"]`` -> nested dict (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or not re.fullmatch(r"[A-Za-z_][\w.]*", key):
            raise ConfigError(f"override {item!r} must look like section.key=value")
        try:
            value = load_yaml(raw, f"override {item!r}", key) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override of {p}")
        node[parts[-1]] = value
    return out


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def read_yaml(path: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML mapping; ``base: other.yaml`` (relative to this file) is read first and this file's
    keys are deep-merged over it, so a sweep config states only what differs from its experiment."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise ConfigError(f"config file {path} is empty")
    try:
        data = load_yaml(text, f"config file {path}")
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        raise ConfigError(f"config file {path} holds no settings (only comments)")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"config file {path}: base must be a path to another YAML file")
    base_path = (p.parent / base).resolve()
    if base_path in _seen or base_path == p.resolve():
        raise ConfigError(f"config file {path}: base {base} includes itself")
    return deep_merge(read_yaml(base_path, (*_seen, p.resolve())), data)


def validate(model: type[BaseModel], data: dict[str, Any], source: str = "config"):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_format_error(exc, model)}") from None


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = (),
                model: type[BaseModel] = ExperimentConfig):
    """Read YAML (or defaults), apply ``key=value`` overrides, validate into ``model``."""
    data = read_yaml(path) if path is not None else {}
    data = deep_merge(data, parse_overrides(list(overrides)))
    cfg = validate(model, data, source=str(path) if path else "config")
    if isinstance(cfg, ExperimentConfig):
        check_storage(cfg.storage)
    return cfg


#: set by Ray's job supervisor in the environment of a ``ray job submit`` entrypoint
RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def check_storage(storage: str) -> None:
    """Refuse, before anything is read or computed, a local ``storage`` that cannot hold a run: one
    whose nearest existing ancestor is a file. Under ``ray job submit`` the entrypoint's working
    directory is the job's unpacked package (``<ray temp>/session_*/runtime_resources/
    working_dir_files/_ray_pkg_*``), which Ray deletes later, so a relative ``storage`` would put the
    whole run where the user never finds it: refused too."""
    if "://" in storage:
        return
    existing = Path(storage).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"storage={storage!r}: {existing} is a file, not a directory")
    if RAY_JOB_ENV in os.environ and not os.path.isabs(storage):
        raise ConfigError(f"storage={storage!r} is relative: under `ray job submit` it would land in the job's "
                          f"temporary package folder ({os.getcwd()}), which Ray deletes; set storage= to a path "
                          "every node sees (e.g. storage=/mnt/shared/runs) or an object store URI (s3://, gs://)")
