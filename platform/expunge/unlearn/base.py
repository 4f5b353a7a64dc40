"""The unlearning method contract and the shared loop every iterative method runs in.

A method is one module: a registered :class:`UnlearnMethod` subclass with a typed ``Config``
(defaults from its paper or reference code, ``search_space()`` for sweeps). The shared loop
(:func:`run_loop`, after SalUn's ``iterative_unlearn``) owns epochs, optimizer, learning-rate schedule,
device and per-epoch reporting; a method supplies only what is its own: its data mix
(``batches``), its loss (``loss``), and optional hooks around the optimizer step (gradient masks,
weight noise).

Step counts (``min_steps``). The papers' defaults (SalUn's GA: lr 1e-4 for 5 epochs; SCRUB, Boundary,
Bad Teacher) were set on CIFAR-10, where a 4 500-sample forget set gives ~35 optimiser steps per epoch
and a 45 000-sample retain set ~350. On a forget set of 63 samples the same "5 epochs" are 5 steps,
and the model barely moves (GA's weights by 8e-5 relative on digits): the method's effect silently
depends on the forget set's size. The rule here: a run makes at least ``min_steps`` optimiser steps
(default :data:`MIN_STEPS` = 200), by repeating each epoch's pass over its data
``k = max(1, ceil(min_steps / (epochs · steps_per_epoch)))`` times (:func:`passes_per_epoch`). The
per-epoch structure the methods rely on (SCRUB's max/min epochs, l1-sparse's α decay, the per-epoch
reports) stays per epoch, a method's ``batches`` is called once per pass (CPU recalibrates q_hat
every pass), and the lr schedule spans all planned steps. A run already
``min_steps`` long is the paper's recipe unchanged; ``min_steps=0`` always is (one override away).
Methods outside the shared loop (retrain, SSD, Fisher, PRU) do not use it.
"""
from __future__ import annotations

import copy
import itertools
import math
import time
from abc import ABC
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, ClassVar, Iterator, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from expunge import seeds
from expunge.config import ForgetSpec, TrainConfig, describe_validation_error
from expunge.data.device import DeviceData
from expunge.data.splits import SplitPlan
from expunge.errors import ConfigError
from expunge.registry import Registry
from expunge.unlearn.space import Domain, loguniform, randint
from expunge.train.engine import run_steps
from expunge.train.optim import OptimizerSpec, build_optimizer, lr_factor

METHODS: Registry[type["UnlearnMethod"]] = Registry("unlearning method")

#: default ``MethodConfig.min_steps`` (see the module docstring)
MIN_STEPS = 200


def register_method(name: str) -> Callable[[type["UnlearnMethod"]], type["UnlearnMethod"]]:
    """``@register_method("salun")``: registers the class in :data:`METHODS` and sets its ``name``."""
    return METHODS.register(name, name=name)


class MethodConfig(BaseModel):
    """Hyperparameters every iterative method shares; subclasses add their own and change defaults."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    epochs: int = Field(5, ge=0, le=10_000)
    lr: float = Field(0.01, gt=0, le=100)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["constant", "cosine", "onecycle", "step"] = "cosine"
    augment: bool = False
    #: fewest optimiser steps of a run: each epoch makes ``passes_per_epoch`` passes over its data
    #: (module docstring); 0 runs exactly ``epochs`` single passes, the paper's recipe
    min_steps: int = Field(MIN_STEPS, ge=0, le=1_000_000)

    @classmethod
    def search_space(cls) -> dict[str, Domain]:
        return {"lr": loguniform(1e-4, 1e-1), "epochs": randint(1, 11)}


@dataclass
class Batch:
    """One step's data: forget and/or retain tensors, plus a tag a method may branch on."""

    forget: tuple[torch.Tensor, torch.Tensor] | None = None
    retain: tuple[torch.Tensor, torch.Tensor] | None = None
    tag: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class UnlearnContext:
    """Everything a method may use. ``original`` is never modified: methods work on a copy."""

    original: nn.Module
    data: DeviceData
    plan: SplitPlan
    train_cfg: TrainConfig
    model_factory: Callable[[], nn.Module]
    seed: int = 0
    callback: Callable[[dict[str, Any]], None] | None = None

    @property
    def device(self) -> torch.device:
        return self.data.device

    def generator(self, salt: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(seeds.stream(self.seed, salt))

    def loader(self, which: str, batch_size: int, shuffle: bool = True, augment: bool = False,
               generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        return self.data.loader(self.plan.indices[which], batch_size, shuffle=shuffle, augment=augment,
                                generator=generator)


class UnlearnMethod(ABC):
    """Base class; see the module docstring. Subclasses set ``Config`` and override what they own."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    #: forget-spec kinds the method applies to (None: all)
    forget_kinds: ClassVar[tuple[str, ...] | None] = None
    #: whether ``run`` goes through :func:`run_loop` (so ``min_steps`` applies); False for a method
    #: with its own procedure (retrain, SSD, Fisher, PRU)
    shared_loop: ClassVar[bool] = True

    # --- configuration -----------------------------------------------------------------------
    @classmethod
    def parse_config(cls, params: dict[str, Any] | None) -> MethodConfig:
        try:
            return cls.Config.model_validate(params or {})
        except ValidationError as exc:
            raise ConfigError(f"method {cls.name}: {describe_validation_error(exc, cls.Config)}") from None

    @classmethod
    def check_forget_spec(cls, forget_spec: str) -> None:
        """Refuse a forget spec the method does not apply to (needs no data: runs first)."""
        kind = ForgetSpec.parse(forget_spec).kind
        if cls.forget_kinds is not None and kind not in cls.forget_kinds:
            raise ConfigError(f"method {cls.name} applies to forget specs {', '.join(cls.forget_kinds)}; "
                              f"got {forget_spec}")

    @classmethod
    def check(cls, plan: SplitPlan, cfg: MethodConfig) -> None:
        """Refuse, before any compute, a split the method does not apply to."""
        cls.check_forget_spec(plan.forget_spec)

    # --- what a method owns ------------------------------------------------------------------
    def prepare(self, ctx: UnlearnContext, cfg: MethodConfig, model: nn.Module) -> None:
        """One-off work before the loop (a saliency mask, a teacher, new soft labels)."""

    def batches(self, ctx: UnlearnContext, cfg: MethodConfig, epoch: int,
                gen: torch.Generator) -> Iterator[Batch]:
        """The data mix of one epoch; default: the retain set."""
        for x, y, _ in ctx.loader("retain", cfg.batch_size, augment=cfg.augment, generator=gen):
            yield Batch(retain=(x, y))

    def loss(self, ctx: UnlearnContext, cfg: MethodConfig, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The method's objective for one batch (minimised by the shared loop)."""
        x, y = batch.retain
        return nn.functional.cross_entropy(model(x), y)

    def before_step(self, ctx: UnlearnContext, cfg: MethodConfig, model: nn.Module, epoch: int) -> None:
        """Called between ``backward`` and ``optimizer.step`` (e.g. mask gradients)."""

    def after_step(self, ctx: UnlearnContext, cfg: MethodConfig, model: nn.Module, epoch: int) -> None:
        """Called after ``optimizer.step`` (e.g. add weight noise)."""

    def steps_per_epoch(self, ctx: UnlearnContext, cfg: MethodConfig) -> int:
        return max(1, math.ceil(len(ctx.plan.retain) / cfg.batch_size))

    def run(self, ctx: UnlearnContext, cfg: MethodConfig) -> nn.Module:
        """Default: copy the original and run the shared loop with this method's hooks."""
        model = copy.deepcopy(ctx.original).to(ctx.device)
        self.prepare(ctx, cfg, model)
        return run_loop(self, ctx, cfg, model)


def paired_batches(ctx: UnlearnContext, cfg: MethodConfig, gen: torch.Generator, primary: str = "retain",
                   forget_batch_size: int | None = None) -> Iterator[Batch]:
    """One epoch over ``primary`` ("retain" or "forget"), each step paired with a batch of the other set.

    The secondary set is cycled (reshuffled each pass) so every step sees both: NegGrad+, SCRUB, IEU
    and the CPU hinge need a forget and a retain batch in the same step.
    """
    secondary = "forget" if primary == "retain" else "retain"
    sec_bs = forget_batch_size or cfg.batch_size

    def cycle() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            for x, y, _ in ctx.loader(secondary, sec_bs, augment=cfg.augment, generator=gen):
                yield x, y

    other = cycle()
    for x, y, _ in ctx.loader(primary, cfg.batch_size, augment=cfg.augment, generator=gen):
        pair = next(other)
        yield Batch(retain=(x, y), forget=pair) if primary == "retain" else Batch(forget=(x, y), retain=pair)


def passes_per_epoch(min_steps: int, epochs: int, steps_per_epoch: int) -> int:
    """k = max(1, ceil(min_steps / (epochs · steps_per_epoch))): the fewest passes per epoch that make
    the run at least ``min_steps`` optimiser steps long."""
    return max(1, math.ceil(min_steps / max(1, epochs * steps_per_epoch)))


@dataclass
class LoopPlan:
    """The shared loop's schedule, set on the method before the first step (hooks may read it)."""

    epochs: int
    passes_per_epoch: int
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        """Planned optimiser steps T = epochs · passes · steps-per-pass (the lr and noise schedules' T)."""
        return max(1, self.epochs * self.passes_per_epoch * self.steps_per_epoch)


def plan_loop(method: UnlearnMethod, ctx: UnlearnContext, cfg: MethodConfig) -> LoopPlan:
    """The schedule :func:`run_loop` will run ``method`` on: ``cfg.epochs`` epochs of
    :func:`passes_per_epoch` passes each (``prepare`` may call it to size per-step schedules)."""
    spe = method.steps_per_epoch(ctx, cfg)
    return LoopPlan(cfg.epochs, passes_per_epoch(cfg.min_steps, cfg.epochs, spe), spe)


def run_loop(method: UnlearnMethod, ctx: UnlearnContext, cfg: MethodConfig, model: nn.Module) -> nn.Module:
    """The shared loop: optimizer, per-step schedule, epochs of ``passes_per_epoch`` passes, per-epoch
    report to ``ctx.callback``; the plan and the steps taken are left on ``method`` (``loop_plan``,
    ``steps_taken``) for :class:`UnlearnResult`. The steps themselves run in the training step core
    (:func:`expunge.train.engine.run_steps`)."""
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad],
                                OptimizerSpec(cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay))
    plan = method.loop_plan = plan_loop(method, ctx, cfg)
    total = plan.total_steps
    method.steps_taken = 0
    model.train()
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        # pass index + 1: with one pass per epoch, the same shuffles as epoch + 1
        passes = (method.batches(ctx, cfg, epoch, ctx.generator(epoch * plan.passes_per_epoch + rep + 1))
                  for rep in range(plan.passes_per_epoch))
        losses = run_steps(optimizer, itertools.chain.from_iterable(passes),
                           partial(method.loss, ctx, cfg, model),  # None: a step the method skips
                           lr_at=lambda step: cfg.lr * lr_factor(cfg.schedule, min(step, total - 1), total, 0),
                           step=method.steps_taken, device=ctx.device, bf16=ctx.train_cfg.bf16,
                           before_step=partial(method.before_step, ctx, cfg, model, epoch),
                           after_step=partial(method.after_step, ctx, cfg, model, epoch),
                           diverged=f"{method.name}: loss diverged at epoch {epoch + 1}; lower lr")
        method.steps_taken += len(losses)
        if ctx.callback is not None:
            ctx.callback({"epoch": epoch + 1, "loss": sum(float(loss) for loss in losses) / max(1, len(losses)),
                          "seconds": time.perf_counter() - t0, "passes": plan.passes_per_epoch,
                          "steps": method.steps_taken, "_model": model})
    model.eval()
    return model


@dataclass
class UnlearnResult:
    model: nn.Module
    config: MethodConfig
    seconds: float
    #: optimiser steps the shared loop took (None: a method without it, e.g. SSD, Fisher, retrain)
    steps: int | None = None
    #: passes over the data per epoch (> 1 when ``min_steps`` lengthened the run)
    passes_per_epoch: int | None = None


def unlearn(method_name: str, params: dict[str, Any] | None, ctx: UnlearnContext) -> UnlearnResult:
    """Validate, check applicability, run a method and time it (RTE, wall-clock seconds)."""
    method_cls = METHODS.get(method_name)
    cfg = method_cls.parse_config(params)
    method_cls.check(ctx.plan, cfg)
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    t0 = time.perf_counter()
    method = method_cls()
    model = method.run(ctx, cfg)
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    seconds = time.perf_counter() - t0
    plan = getattr(method, "loop_plan", None)
    return UnlearnResult(model, cfg, seconds, getattr(method, "steps_taken", None),
                         plan.passes_per_epoch if isinstance(plan, LoopPlan) else None)


def forget_mask(plan: SplitPlan, idx: torch.Tensor) -> torch.Tensor:
    """Boolean mask of which dataset positions in ``idx`` are forget samples."""
    forget = torch.as_tensor(plan.forget, device=idx.device)
    return torch.isin(idx, forget)
