"""The experiment schema: strict pydantic sections, nothing else.

Every section is a strict pydantic model: an unknown key, a wrong type or an out-of-range value is a
:class:`~expunge.errors.ConfigError` naming the dotted key and what is allowed, raised before any
compute. The schema imports no registry: names that live in registries (datasets, models, methods,
metrics) and what they need of each other are checked by :func:`expunge.resolve.resolve`, which
:func:`expunge.resolve.load_config` runs on every loaded config.
"""
from __future__ import annotations

import math
import re
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from expunge.config.constraint import Constraint
from expunge.config.forget import ForgetSpec
from expunge.config.recipes import RECIPES
from expunge.errors import ExpungeError, unknown_name


def safe_name(v: str) -> str:
    """A name that becomes one path segment of the run directory: no separators, no '..'."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", v) or ".." in v:
        raise ValueError("must be 1-100 characters of letters, digits, '_', '-', '.' (no path separators)")
    return v


def check_constraints(v: list[str]) -> list[str]:
    """Every sweep constraint parses (:meth:`Constraint.parse`); else a ValueError with its message."""
    for c in v:
        try:
            Constraint.parse(c)
        except ExpungeError as exc:
            raise ValueError(str(exc)) from None
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


class IncrementalConfig(Section):
    """Incremental training (IAM paper, Table 4: BinUI on dynamic training data).

    The split's train part is divided, with the split seed, into ``old`` positions (what the model
    that ``model.weights`` imports was trained on; ``old_fraction`` of the train part) and ``new``
    positions (the rest). The original is that model warm-started and trained ``train.epochs`` more
    on the new positions only, as the reference code does (its CIFAR-10 ResNet-18 trained further
    on 5,000 CINIC-10 samples). The forget set is drawn from the new positions, and the split's
    ``train`` / ``retain`` / ``forget`` sets are the new positions, so BinUI queries new samples
    only, as the reference does. Without ``model.weights`` the warm-start model is trained here from
    a fresh init on the old positions (``models/incremental-base``). The ``retrain`` method retrains
    from scratch on the retain set (the new positions minus the forget set); the reference instead
    warm-starts its retrained model from a model of the old data, so retrain here has seen less data
    than the original (a deviation, stated in the README)."""

    #: the fraction of the split's train part that the warm-start model saw (the rest is new data)
    old_fraction: float = Field(..., gt=0, lt=1)


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
    #: a .npy or text file of the dataset positions the original trained on, when that is not the split's
    #: own train set (an original trained elsewhere): train = these, the held-out sets are drawn from
    #: the other positions (``expunge.experiment.plan_with_train``)
    train_indices: str | None = Field(None, min_length=1)
    #: incremental training (IAM Table 4): the original is ``model.weights`` (or a model trained here on
    #: the old positions) trained further on new positions, and the forget set is drawn from the new ones
    incremental: IncrementalConfig | None = None

    @model_validator(mode="after")
    def _mislabeled_needs_noise(self) -> "DataConfig":
        if self.forget == "mislabeled" and self.label_noise == 0:
            raise ValueError("data.forget: mislabeled forgets the corrupted samples; set data.label_noise > 0")
        if self.incremental is not None and self.train_indices is not None:
            raise ValueError("data.incremental: the old and new positions are drawn from the split's own train "
                             "part; leave data.train_indices unset")
        return self

    @field_validator("forget")
    @classmethod
    def _forget_spec(cls, v: str) -> str:
        try:
            return str(ForgetSpec.parse(v))
        except ExpungeError as exc:
            raise ValueError(str(exc)) from None



class ModelConfig(Section):
    name: str = "cnn"
    kwargs: dict[str, Any] = Field(default_factory=dict)
    #: the user's trained original (safetensors, or a weights-only torch file): imported, not trained
    weights: str | None = None



class TrainConfig(Section):
    """Hyperparameters of the plain training loop (originals, retrains, shadows, fine-tuning).

    ``recipe`` names a preset from ``expunge.config.recipes`` (``fast``, ``resnet18-standard``, ...)
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
            name = data["recipe"]
            if name not in RECIPES:
                raise ValueError(unknown_name("training recipe", name, RECIPES))
            return {**RECIPES[name], **data}
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



class ShadowDataConfig(Section):
    """The dataset the audit's shadow models train on instead of the target's shadow pool (IAM paper,
    Table 3: CIFAR-10 targets audited with CINIC-10 shadows and the reverse).

    Shadow k trains on a seeded ``audit.shadow_fraction`` of this dataset's pool: every position
    outside its official test part, or ``pool`` of them drawn with the split seed. The shadows are
    OUT for every target sample (their membership over the target's positions is all False); their
    outputs are computed on the target's audit sets with the target's normalisation, as the reference
    code queries its CINIC-10 shadows on CIFAR-10 images. The class count and image shape must match
    the target's (CINIC-10 and CIFAR-10 share the ten classes, in the same order)."""

    dataset: str
    root: str | None = None
    #: keyword arguments of the dataset loader, as ``data.options``
    options: dict[str, Any] = Field(default_factory=dict)
    #: how many positions of the shadow dataset form the shadow pool (None: all outside its test part)
    pool: int | None = Field(None, ge=2)


class ShadowModelConfig(Section):
    """The architecture of the audit's shadow models when it is not the target's (IAM paper, Fig. 4:
    ResNet-18/34/50, VGG-11/16 and DenseNet-121 shadows for one target architecture). Any registered
    model or ``timm:<name>``; trained with the same ``train`` recipe as the target (the reference
    changes the learning rate or epochs for some architectures; set ``train`` accordingly)."""

    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


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
    #: out-of-distribution shadows (IAM Table 3): the shadow fleet trains on this dataset, not the
    #: target's shadow pool. IAM-Off's anchor is then the shadows' mean confidence on their own training
    #: samples of this dataset (as the reference computes it from its CINIC-10 shadows' train logits);
    #: LiRA's and RMIA's OUT references are the shadows' outputs on the target's samples and population
    shadow_data: ShadowDataConfig | None = None
    #: shadows of another architecture (IAM Fig. 4); part of the shadow fleet's identity
    shadow_model: ShadowModelConfig | None = None



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
        return check_constraints(v)

    @field_validator("objective")
    @classmethod
    def _objective_weights(cls, v: str | dict[str, float]) -> str | dict[str, float]:
        if isinstance(v, dict) and not v:
            raise ValueError("a weighted objective needs at least one {column: weight}")
        return v



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
    def _audit_needs(self) -> "ExperimentConfig":
        if self.audit.shadows and self.audit.shadow_data is None and self.data.sizes.shadow_pool == 0:
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


def join_uri(base: str, *parts: str) -> str:
    if "://" in base:
        return "/".join([base.rstrip("/"), *parts])
    return str(Path(base, *parts))


