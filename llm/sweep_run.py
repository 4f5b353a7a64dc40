"""``expunge llm-sweep``: Ray Tune over the LLM unlearning methods' hyperparameters, every trial
audited once per epoch as ``expunge llm-unlearn`` audits its checkpoints.
:mod:`expunge.jobs.llm_sweep` calls :func:`run_llm_sweep`; with ``--local`` the trials run in this
process one after another, each to its last epoch (:func:`run_method_local`).

The config is ``llm-unlearn``'s (:class:`~expunge.llm.unlearn_run.LLMUnlearnJobConfig`) plus a
``sweep:`` block (:class:`LLMSweepSpec`): the methods, each with fixed ``params`` and a ``space`` that
overrides its registered search space (:func:`expunge.llm.unlearn.search_space`: lr, epochs, NPO's
beta, GradDiff's alpha, SimNPO's beta and margin, RMU's layer and steering coefficient, LoRA's rank)
dimension by dimension in the vision sweep's YAML syntax (:func:`expunge.unlearn.space.parse_domain`;
null drops a dimension), and Tune's settings. ``unlearn.*`` of the config applies to every method
where neither ``params`` nor ``space`` sets it.

Order of work: every check before any compute (:func:`check_sweep`: the methods, hyperparameters and
bounds, the constraints' columns, and everything ``llm-unlearn`` refuses) -> the fixed models' per-token
log-probs (original, retain model; every audited set, the population included) through the run
directory's :class:`~expunge.llm.scoring.LogProbCache`, once -> per method, one Tuner (new, or resumed
from its sealed state) -> the results.

A trial (:func:`run_llm_trial`) loads the original, unlearns in its own process with
:func:`expunge.llm.unlearn.unlearn_lm` and, after every epoch, scores only its in-memory model (never
cached) and audits it with ``llm-unlearn``'s functions (:func:`~expunge.llm.unlearn_audit.audit_model`,
:func:`~expunge.llm.unlearn_audit.add_utility_drop`, :func:`~expunge.llm.unlearn_audit.objective_values`)
against the fixed models' scores, which it reads from the store's cache the driver filled; it reports
that row to Tune, so ASHA can stop it after any epoch. Epoch e of a trial is the model an
``llm-unlearn`` run with ``unlearn.epochs=e`` returns (the loop has no schedule), so every row of the
table is reproducible.

Objective (lower is better): ``llm-unlearn``'s ``select.objective``: ``retain`` (closest to the retain
model: mean |AUC - AUC_retain| over attacks and tasks) or ``forgetting`` (|AUC(loss, forget vs
held-out) - 0.5| with a utility drop of at most ``select.utility_drop_max`` percent); plus the user's
``sweep.constraints`` on any column of the table (``utility_drop_pct <= 5``). A row that breaks one is
infeasible: kept in the table, never chosen best, ranked below every feasible row by the scheduler.

Results (artifact ``llm_sweeps/<sweep.name>`` of the run directory ``<storage>/<name>``): ``results``
(parquet + CSV: one row per trial and epoch), ``pareto`` (the rows no other row beats on both
``sweep.pareto`` columns, by default forgetting (or the distance to the retain model) against the utility
drop), ``best_<method>.yaml`` per method (an ``llm-unlearn`` config: the method, its best row's
settings, ``unlearn.epochs`` = that row's epoch) and ``summary.json``. Tune's state lies in
``<run>/llm_tune/<sweep.name>/<method>``, sealed after every fit (:mod:`expunge.sweep.tune_state`);
rerunning the same command after an interrupt resumes it, another config in the same place is
refused; ``--rebuild`` starts the sweep over and recomputes the fixed models' scores.
"""
from __future__ import annotations

import itertools

import json
import random
import math
import shutil
import sys
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from expunge.config import Constraint, SweepConfig, SweepMethod, join_uri, names_to_dicts, safe_name
from expunge.config.schema import check_constraints
from expunge.errors import ConfigError, ExpungeError
from expunge.llm.unlearn import LLMUnlearnConfig
from expunge.llm.unlearn_run import Inputs, LLMUnlearnJobConfig
from expunge.unlearn.space import Domain

SWEEP_KIND = "llm_sweeps"
TUNE_DIR = "llm_tune"
#: the columns a constraint or the Pareto front may name beyond the audit's (see :func:`known_columns`)
DERIVED = ("utility_drop_pct", "objective", "epoch", "step", "loss")
#: fields only LoRA uses
LORA_FIELDS = ("lora_r", "lora_alpha", "lora_dropout", "lora_targets")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- the config --------------------------------------------------------------------------------
class LLMSweepSpec(BaseModel):
    """The ``sweep:`` block of ``expunge llm-sweep``."""

    model_config = ConfigDict(extra="forbid")

    name: str = "sweep"
    methods: list[SweepMethod] = Field(default_factory=list)
    num_samples: int = Field(4, ge=1, le=100_000, description="trials per method (random search); grid search "
                                                             "runs each grid point once")
    search: Literal["random", "grid"] = "random"
    scheduler: Literal["asha", "fifo"] = "asha"
    grace_period: int = Field(1, ge=1, description="ASHA: epochs before a trial can be stopped")
    reduction_factor: float = Field(2.0, gt=1)
    max_concurrent: int = Field(2, ge=1, le=10_000)
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)
    max_failures: int = Field(1, ge=0, le=100, description="retries of a trial whose worker died")
    constraints: list[str] = Field(default_factory=list, description="'<column> <op> <number>', e.g. "
                                                                     "'utility_drop_pct <= 5'")
    pareto: dict[str, Literal["min", "max"]] | None = Field(
        None, description="two or more columns and directions; default: forgetting (else retain_distance) "
                          "and utility_drop_pct, both min")

    # the same rules as the vision sweep's (expunge.config.SweepConfig)
    _names = field_validator("methods", mode="before")(classmethod(lambda cls, v: names_to_dicts(v)))
    _safe = field_validator("name")(classmethod(lambda cls, v: safe_name(v)))
    _syntax = field_validator("constraints")(classmethod(lambda cls, v: check_constraints(v)))

    def tune_config(self) -> SweepConfig:
        """Tune's settings as :func:`expunge.runtime.tune.new_tuner` takes them."""
        return SweepConfig(name=self.name, methods=self.methods, num_samples=self.num_samples, search=self.search,
                           scheduler=self.scheduler, grace_period=self.grace_period,
                           reduction_factor=self.reduction_factor, max_concurrent=self.max_concurrent,
                           cpus_per_trial=self.cpus_per_trial, gpus_per_trial=self.gpus_per_trial,
                           max_failures=self.max_failures)


class LLMSweepJobConfig(LLMUnlearnJobConfig):
    """Every setting of ``expunge llm-sweep``: ``llm-unlearn``'s and the ``sweep:`` block."""

    sweep: LLMSweepSpec = Field(default_factory=LLMSweepSpec)

    def unlearn_job(self, **update: Any) -> LLMUnlearnJobConfig:
        """The ``llm-unlearn`` config underneath (without ``sweep``), with ``update`` applied."""
        data = {**self.model_dump(exclude={"sweep"}), **update}
        return LLMUnlearnJobConfig.model_validate(data)


def load_sweep_config(path: str | None, overrides: list[str] | tuple[str, ...] = ()) -> LLMSweepJobConfig:
    """YAML + overrides, validated (unknown keys and bad values are one-line errors)."""
    from expunge.config import check_storage, read_config

    cfg = read_config(path, list(overrides), model=LLMSweepJobConfig)
    check_storage(cfg.storage)
    return cfg


# --- search spaces -----------------------------------------------------------------------------
def base_unlearn(cfg: LLMUnlearnJobConfig) -> dict[str, Any]:
    """The ``unlearn.*`` settings the config states, which every swept method starts from; the
    method is the sweep's, and a default the config's own method brought in (``METHOD_DEFAULTS``)
    is left to each swept method's own default."""
    from expunge.llm.unlearn import METHOD_DEFAULTS

    data = cfg.unlearn.model_dump(exclude_unset=True)
    data.pop("method", None)
    for key, value in METHOD_DEFAULTS.get(cfg.unlearn.method, {}).items():
        if data.get(key) == value:
            data.pop(key)
    return data


def _wants_int(name: str) -> bool:
    """Whether a field takes whole numbers only (``epochs``: one checkpoint per epoch)."""
    field = LLMUnlearnConfig.model_fields[name]
    return name == "epochs" or field.annotation is int or int in typing.get_args(field.annotation)


def unlearn_config(base: dict[str, Any], method: str, fixed: dict[str, Any], params: dict[str, Any],
                   where: str = "") -> LLMUnlearnConfig:
    """One trial's settings: ``base``, then the method's fixed ``params``, then the trial's values.
    A refused combination is a ConfigError prefixed with ``where``."""
    values = {**base, **fixed, **{k: _plain(v) for k, v in params.items()}, "method": method}
    for k, v in values.items():
        if k in LLMUnlearnConfig.model_fields and _wants_int(k) and isinstance(v, float) and v.is_integer():
            values[k] = int(v)
    try:
        cfg = LLMUnlearnConfig.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{where}{'.'.join(map(str, err['loc']))}: {err['msg'].removeprefix('Value error, ')}") \
            from None
    if cfg.epochs != int(cfg.epochs):
        raise ConfigError(f"{where}epochs: a whole number of epochs, one audit each (got {cfg.epochs})")
    return cfg


def method_space(spec: SweepMethod, base: dict[str, Any], *, lora: bool,
                 num_layers: int | None) -> dict[str, Domain]:
    """The checked space of one swept method: an unknown method or hyperparameter, a malformed or empty
    domain, a dimension also fixed in ``params``, a fractional domain for a whole-number field, a LoRA
    dimension without ``unlearn.lora``, an empty space and any end point the method refuses (RMU's layer
    against ``num_layers`` when known) are ConfigErrors naming the method and the key."""
    from expunge.llm.unlearn import LLM_METHODS, check_rmu_layer, search_space
    from expunge.unlearn.space import endpoints, parse_domain

    if spec.name not in LLM_METHODS:
        raise ConfigError(f"sweep.methods: {LLM_METHODS.unknown_message(spec.name)}")
    where = f"sweep method {spec.name}"
    _check_keys(spec, where, lora)
    space = dict(search_space(spec.name, lora=lora, num_layers=num_layers)) if spec.default_space else {}
    for key, raw in spec.space.items():
        if raw is None:
            space.pop(key, None)
        else:
            space[key] = parse_domain(f"{spec.name}.{key}", raw)
    for key in list(space):
        if key in spec.params:
            if key in spec.space:
                raise ConfigError(f"{where}: {key} is both fixed in params and swept in space")
            space.pop(key)  # a fixed value replaces the registered dimension
    if not space:
        raise ConfigError(f"{where}: nothing to sweep (the space is empty)")
    fixed = unlearn_config(base, spec.name, spec.params, {}, f"{where}: params.")
    for key, domain in space.items():  # each dimension's end points, the others at their fixed values
        if _wants_int(key) and domain.kind in ("uniform", "loguniform"):
            raise ConfigError(f"{where}: space.{key}: takes whole numbers; use randint, choice or grid")
        for value in endpoints(domain):
            unlearn_config(base, spec.name, spec.params, {key: value},
                           f"{where}: space.{key}: value {value!r} is refused by the method: ")
    if num_layers is not None:  # RMU's layer: every swept value, else the fixed one
        swept = "rmu_layer" in space
        where_layer = "space" if swept else "params" if "rmu_layer" in spec.params else "unlearn"
        for layer in endpoints(space["rmu_layer"]) if swept else [fixed.rmu_layer]:
            try:
                check_rmu_layer(fixed.model_copy(update={"rmu_layer": int(layer)}), num_layers)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {where_layer}.rmu_layer: "
                                  f"{str(exc).removeprefix('llm unlearning config: ')}") from None
    return space


def _check_keys(spec: SweepMethod, where: str, lora: bool) -> None:
    fields = LLMUnlearnConfig.model_fields
    for section, keys in (("params", spec.params), ("space", spec.space)):
        for key in keys:
            if key not in fields:
                raise ConfigError(f"{where}: {section}.{key}: unknown hyperparameter (allowed: "
                                  f"{', '.join(k for k in fields if k not in ('method', 'steps'))})")
            if key == "method":
                raise ConfigError(f"{where}: {section}.method: each method is its own entry of sweep.methods")
            if key == "steps":
                raise ConfigError(f"{where}: {section}.steps: trials are audited once per epoch; set epochs")
            if key in LORA_FIELDS and not lora:
                raise ConfigError(f"{where}: {section}.{key}: has no effect without unlearn.lora=true")


def max_epochs(space: dict[str, Domain], cfg: LLMUnlearnConfig) -> int:
    """The most epochs a trial of the space can run (ASHA's horizon)."""
    from expunge.unlearn.space import endpoints

    if "epochs" in space:
        return max(1, int(max(endpoints(space["epochs"]))))
    return int(cfg.epochs)


# --- the columns of a trial's row --------------------------------------------------------------
def known_columns(inp: Inputs) -> set[str]:
    """Every column of a trial's row that an objective, constraint or Pareto front can name, from the
    sets and attacks alone (no compute): the audit's (:func:`~expunge.llm.unlearn_audit.audit_model`),
    the utility drop, ``forgetting`` (with a held-out set), ``retain_distance`` (with a retain model),
    the selected ``objective``, and the epoch, step and training loss."""
    from expunge.llm.unlearn_audit import FORGET_HELDOUT, auc_column

    sets = inp.sets
    cols = {"forget_loss", *DERIVED}
    cols |= {f"{r}_ppl" for r in ("retain", "heldout") if r in sets.queries()}
    if sets.forget.qa:
        cols |= {f"{r}_answer_prob" for r in sets.queries()}
    cols |= {auc_column(a, t) for a in inp.attacks for t in sets.tasks()}
    if auc_column("loss", FORGET_HELDOUT) in cols:
        cols.add("forgetting")
    if inp.cfg.retain_model:
        cols.add("retain_distance")
    return cols


def constraints(cfg: LLMSweepJobConfig) -> list[Constraint]:
    """The user's constraints, and the utility limit of the ``forgetting`` objective."""
    out = [Constraint.parse(c) for c in cfg.sweep.constraints]
    if cfg.objective() == "forgetting":
        out.append(Constraint("utility_drop_pct", "<=", float(cfg.select.utility_drop_max)))
    return out


def pareto_columns(cfg: LLMSweepJobConfig, inp: Inputs) -> dict[str, str]:
    if cfg.sweep.pareto is not None:
        return dict(cfg.sweep.pareto)
    first = "forgetting" if "forgetting" in known_columns(inp) else "retain_distance"
    return {first: "min", "utility_drop_pct": "min"}


def scored_row(row: dict[str, Any], fixed_rows: dict[str, dict[str, Any]], objective: str,
               rules: list[Constraint]) -> dict[str, Any]:
    """A model's audit row with ``llm-unlearn``'s derived columns, computed as its per-epoch table does
    (the original, this model and the retain model as rows of one table): ``utility_drop_pct``,
    ``forgetting``, ``retain_distance``, ``objective`` (the ``objective`` one), then ``feasible`` and
    ``sweep_score`` (:func:`expunge.sweep.objective.score` under ``rules``)."""
    from expunge.llm.unlearn_audit import add_utility_drop, objective_values
    from expunge.sweep.objective import score

    rows = [{"model": "original", **fixed_rows["original"]}, {"model": "target", **row}]
    if "retain model" in fixed_rows:
        rows.append({"model": "retain model", **fixed_rows["retain model"]})
    table = add_utility_drop(pd.DataFrame(rows))
    out = {**row, "utility_drop_pct": float(table["utility_drop_pct"].iloc[1])}
    for name, rule in (("forgetting", "forgetting"), ("retain_distance", "retain")):
        if rule == "retain" and "retain model" not in fixed_rows:
            continue
        try:
            out[name] = float(objective_values(table, rule)[1])
        except ExpungeError:
            continue  # no held-out set (or no loss attack): no forgetting column
    out["objective"] = out[{"retain": "retain_distance", "forgetting": "forgetting"}[objective]]
    return {**out, **score(out, "objective", "min", rules)}


# --- checks before any compute -----------------------------------------------------------------
@dataclass
class Setup:
    """The checked sweep: the config with absolute paths, the user's own (for the best configs), the
    inputs (sets, attacks, tokenizer), each method's space and the trials' device and threads."""

    cfg: LLMSweepJobConfig
    user_cfg: LLMSweepJobConfig
    inp: Inputs
    base: dict[str, Any]
    spaces: dict[str, dict[str, Domain]]
    rules: list[Constraint]
    pareto: dict[str, str]
    device: str
    threads: int

    @property
    def spec(self) -> LLMSweepSpec:
        return self.cfg.sweep


def with_absolute_paths(cfg: LLMSweepJobConfig) -> LLMSweepJobConfig:
    """Tune runs trials in their own working directories: local paths must not move."""
    update = {}
    for key in ("storage", "model", "retain_model", "forget", "retain", "heldout", "population"):
        value = getattr(cfg, key)
        if value and "://" not in value and (key == "storage" or Path(value).exists()):
            update[key] = str(Path(value).resolve())
    return cfg.model_copy(update=update)


def check_sweep(user_cfg: LLMSweepJobConfig, use_ray: bool = True) -> Setup:
    """Every user error as one line, before a model is loaded or a file written (module docstring)."""
    from expunge.llm.unlearn_run import num_layers, check_inputs, check_model_dir

    spec = user_cfg.sweep
    _check_shape(user_cfg)
    cfg = with_absolute_paths(user_cfg)
    check_model_dir(cfg.model, "model")
    n_layers = num_layers(cfg.model, cfg.trust_remote_code)
    base = base_unlearn(cfg)
    spaces = {m.name: method_space(m, base, lora=cfg.unlearn.lora, num_layers=n_layers) for m in spec.methods}
    _check_search(cfg, spaces)
    rules = constraints(cfg)
    # the method-independent checks (objective, models, tokenizers, data, LoRA's package) with ga, which
    # needs neither a retain set nor a reference; each method's own needs are checked after
    inp = check_inputs(cfg.unlearn_job(unlearn=unlearn_config(base, "ga", {}, {})))
    for m in spec.methods:  # what each method needs of the data (a retain set, ...)
        _check_method_data(m, spaces[m.name], base, inp)
    _check_columns(cfg, inp, rules)
    device, threads = trial_resources(cfg)
    return Setup(cfg, user_cfg, inp, base, spaces, rules, pareto_columns(cfg, inp), device, threads)


def _check_shape(cfg: LLMSweepJobConfig) -> None:
    """Methods listed, each once; one process per trial."""
    names = [m.name for m in cfg.sweep.methods]
    if not names:
        raise ConfigError("sweep.methods: nothing to sweep (list methods under sweep.methods)")
    if len(set(names)) != len(names):
        raise ConfigError(f"sweep.methods: each method once (got {', '.join(names)}); its space covers its "
                          "variants")
    if cfg.scaling.num_workers != 1:
        raise ConfigError("scaling.num_workers: each sweep trial unlearns in one process; set sweep.cpus_per_trial "
                          "and sweep.gpus_per_trial instead")


def _first(domain: Domain) -> Any:
    from expunge.unlearn.space import endpoints

    return endpoints(domain)[0]


def _check_search(cfg: LLMSweepJobConfig, spaces: dict[str, dict[str, Domain]]) -> None:
    """Each space as Tune's domains (grid search takes grid and choice dimensions only)."""
    from expunge.runtime.tune import to_tune

    for method, space in spaces.items():
        try:
            to_tune(space, cfg.sweep.search)
        except ConfigError as exc:
            raise ConfigError(f"sweep method {method}: {str(exc).removeprefix('sweep: ')}") from None


def plan(cfg: LLMSweepJobConfig) -> str:
    """What the sweep would run, from the config alone (no model or data is read: RMU's layer is
    checked against the model when the sweep runs)."""
    from expunge.sweep.runner import expected_trials

    _check_shape(cfg)
    base = base_unlearn(cfg)
    spaces = {m.name: method_space(m, base, lora=cfg.unlearn.lora, num_layers=None) for m in cfg.sweep.methods}
    _check_search(cfg, spaces)
    return "; ".join(f"{m}: {expected_trials(sp, cfg.sweep.tune_config())} trial(s) over {', '.join(sp)}"
                     for m, sp in spaces.items())


def _check_method_data(m: SweepMethod, space: dict[str, Domain], base: dict[str, Any], inp: Inputs) -> None:
    from expunge.llm.unlearn import check_inputs as check_method_inputs
    from expunge.unlearn.space import endpoints

    forget, retain = inp.forget.items(), inp.retain.items() if inp.retain else []
    point = {k: _first(d) for k, d in space.items()}
    for key, domain in space.items():
        for value in endpoints(domain):
            cfg = unlearn_config(base, m.name, m.params, {**point, key: value}, f"sweep method {m.name}: ")
            try:
                check_method_inputs(cfg, forget, retain)
            except ExpungeError as exc:
                raise ConfigError(f"sweep method {m.name} ({key}={value!r}): "
                                  f"{str(exc).removeprefix('llm unlearning: ')}") from None


def _check_columns(cfg: LLMSweepJobConfig, inp: Inputs, rules: list[Constraint]) -> None:
    known = known_columns(inp)
    if cfg.objective() == "forgetting" and "forgetting" not in known:
        raise ConfigError("select.objective=forgetting needs the loss attack (audit.attacks) and a held-out set")
    pareto = pareto_columns(cfg, inp)
    for what, names in (("sweep.constraints", [r.column for r in rules]), ("sweep.pareto", list(pareto))):
        for name in names:
            if name not in known:
                raise ConfigError(f"{what}: unknown column {name!r} (known: {', '.join(sorted(known))})")
    if len(pareto) < 2:
        raise ConfigError("sweep.pareto: a front needs two or more columns")


def trial_resources(cfg: LLMSweepJobConfig) -> tuple[str, int]:
    """The trials' device (a GPU only when ``sweep.gpus_per_trial`` gives them one) and torch threads
    (``threads``, else the trial's CPUs)."""
    spec = cfg.sweep
    if cfg.device == "auto":
        device = "cuda" if spec.gpus_per_trial > 0 else "cpu"
    else:
        device = cfg.device
    if device.startswith("cuda") and spec.gpus_per_trial <= 0:
        raise ConfigError(f"device={cfg.device}: sweep trials get a GPU only with sweep.gpus_per_trial > 0")
    return device, int(cfg.threads or max(1, math.floor(spec.cpus_per_trial)))


# --- the fixed models and one trial ------------------------------------------------------------
class Uncached:
    """The cache interface of :class:`~expunge.llm.unlearn_audit.SplitScorer` without a cache: every
    pass is computed and nothing is kept (a trial's model changes every epoch)."""

    def __init__(self, batch_tokens: int | None = None) -> None:
        self.batch_tokens = batch_tokens
        self.hits = {"memory": 0, "store": 0, "computed": 0}

    def get(self, data: Any, compute: Callable[[], Any], **keys: Any) -> Any:
        scores = compute()
        self.hits["computed"] += 1
        return scores if list(scores.ids) == list(data.ids) else scores.align(data.ids)


#: per process, the store-backed cache trials read the fixed models' scores from: a Tune worker reused
#: for the next trial (``reuse_actors``) reads them from memory
_CACHES: dict[tuple[str, int | None], Any] = {}


def shared_cache(store_uri: str, batch_tokens: int | None) -> Any:
    from expunge.llm.scoring import LogProbCache
    from expunge.store import Store

    key = (store_uri, batch_tokens)
    if key not in _CACHES:
        _CACHES.clear()  # one sweep's run directory at a time
        _CACHES[key] = LogProbCache(Store(store_uri), batch_tokens=batch_tokens)
    return _CACHES[key]


def fixed_scores(inp: Inputs, cache: Any, device: str, log_to: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``{role: {set: TokenScores}}`` of the original and the retain model through ``cache`` (the
    handles and keys of ``llm-unlearn``, :func:`~expunge.llm.unlearn_run.fixed_models`)."""
    from expunge.llm.scoring import ScoringSettings
    from expunge.llm.unlearn_audit import SplitScorer
    from expunge.llm.unlearn_run import fixed_models

    scorer = SplitScorer(cache, ScoringSettings(max_length=inp.cfg.audit.max_length), log=log_to)
    return {role: scorer.score_all(handle, inp.sets) for role, handle in fixed_models(inp, device).items()}


def fixed_rows(inp: Inputs, scores: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The original's and the retain model's audit rows (what every epoch row is compared with)."""
    from expunge.llm.unlearn_audit import audit_model
    from expunge.llm.unlearn_run import attack_params

    params = attack_params(inp.cfg)
    orig, ref = scores["original"], scores.get("retain model")
    return {role: audit_model(s, orig, ref, inp.sets, inp.attacks, params)["row"] for role, s in scores.items()}


@dataclass
class TrialJob:
    """What every trial of a sweep reads (``tune.with_parameters`` ships it once per Tuner)."""

    inp: Inputs
    base: dict[str, Any]
    store_uri: str
    objective: str
    rules: list[Constraint]
    device: str
    threads: int


def run_llm_trial(params: dict[str, Any], report: Callable[[dict[str, Any]], None], *, job: TrialJob, method: str,
                  fixed: dict[str, Any], share: bool = True) -> list[dict[str, Any]]:
    """Unlearn ``method`` with ``fixed | params`` and report every epoch's scored row (module
    docstring); returns the rows. ``share=False`` scores the fixed models in the trial instead of
    reading the driver's cache (the benchmark's baseline)."""
    from expunge.llm.train import torch_threads

    with torch_threads(job.threads):
        return _trial(params, report, job, method, fixed, share)


def _trial(params: dict[str, Any], report: Callable[[dict[str, Any]], None], job: TrialJob, method: str,
           fixed: dict[str, Any], share: bool) -> list[dict[str, Any]]:
    from transformers.utils import logging as hf_logging

    from expunge.llm.models import load_causal_lm
    from expunge.llm.scoring import LogProbCache, ScoringSettings
    from expunge.llm.unlearn import unlearn_lm
    from expunge.llm.unlearn_audit import ModelHandle, SplitScorer, audit_model
    from expunge.llm.unlearn_run import attack_params

    hf_logging.disable_progress_bar()  # a bar per model load in every trial's log would bury the sweep's
    t0 = time.perf_counter()
    inp, ucfg = job.inp, unlearn_config(job.base, method, fixed, params)
    bt = inp.cfg.audit.batch_tokens
    cache = shared_cache(job.store_uri, bt) if share else LogProbCache(None, batch_tokens=bt)
    before = dict(cache.hits)
    scores = fixed_scores(inp, cache, job.device)
    counts = {k: cache.hits[k] - before[k] for k in cache.hits}
    base_rows = fixed_rows(inp, scores)
    own = SplitScorer(Uncached(bt), ScoringSettings(max_length=inp.cfg.audit.max_length))
    model, _ = load_causal_lm(inp.cfg.model, trust_remote_code=inp.cfg.trust_remote_code, device=job.device,
                              dtype=inp.dtype)
    spent = {"fixed_s": time.perf_counter() - t0, "audit_s": 0.0, "start": time.perf_counter()}
    rows: list[dict[str, Any]] = []

    def on_epoch(epoch: int, m: Any, state: dict[str, Any]) -> None:
        ta = time.perf_counter()
        own_scores = own.score_all(ModelHandle(f"epoch {epoch}", f"trial-epoch-{epoch}", inp.tokenizer, model=m),
                                   inp.sets)
        res = audit_model(own_scores, scores["original"], scores.get("retain model"), inp.sets, inp.attacks,
                          attack_params(inp.cfg))
        row = scored_row(res["row"], base_rows, job.objective, job.rules)
        spent["audit_s"] += time.perf_counter() - ta
        row.update(epoch=epoch, epochs=int(ucfg.epochs), step=int(state["step"]), loss=float(state["losses"][-1]),
                   final=float(epoch == int(ucfg.epochs)), fixed_computed=counts["computed"],
                   fixed_read=counts["memory"] + counts["store"], fixed_s=spent["fixed_s"], audit_s=spent["audit_s"],
                   train_s=time.perf_counter() - spent["start"] - spent["audit_s"])
        rows.append(row)
        report(row)

    unlearn_lm(model, inp.tokenizer, inp.forget.items(), inp.retain.items() if inp.retain else [], ucfg,
               on_epoch=on_epoch)
    return rows


# --- the Tuners --------------------------------------------------------------------------------
def sweep_state(s: Setup) -> dict[str, Any]:
    """What the sweep's Tune state was made with, checked before it is resumed: the sweep (its
    concurrency aside), the methods' settings, the audit, the objective, the inputs' fingerprints,
    the trials' device and threads (float reductions depend on them)."""
    cfg, inp = s.cfg, s.inp
    return {"sweep": cfg.sweep.model_dump(mode="json", exclude={"max_concurrent"}), "unlearn": s.base,
            "audit": cfg.audit.model_dump(mode="json", exclude={"n_boot"}),
            "select": cfg.select.model_dump(mode="json"),
            "objective": cfg.objective(), "attacks": inp.attacks,
            "inputs": {k: v for k, v in inp.identity.items() if k not in ("unlearn", "data_parallel")},
            "retain_model": fixed_key(cfg.retain_model), "sets": {r: x.hash for r, x in inp.sets.scored().items()},
            "device": s.device, "threads": s.threads}


def fixed_key(path: str | None) -> str | None:
    from expunge.llm.scoring import directory_fingerprint

    return directory_fingerprint(path) if path else None


def check_state(tune_root: str, state: dict[str, Any], rebuild: bool) -> None:
    """Tune state in ``tune_root`` made with another config is refused; ``rebuild`` clears it (the
    sweep starts over)."""
    from expunge.store.store import diff

    if "://" in tune_root:
        return  # remote: the seal check refuses to restore from it
    root = Path(tune_root)
    marker = root / "sweep.json"
    if rebuild and root.exists():
        log(f"sweep state in {root} removed (--rebuild); starting over")
        shutil.rmtree(root)
    elif marker.is_file():
        changed = diff(json.loads(marker.read_text()), json.loads(json.dumps(state, default=str)))
        if changed:
            raise ConfigError(f"sweep state in {root} was made with another config ({'; '.join(changed[:4])}); "
                              "rerun with --rebuild to start it over, or set sweep.name")
    root.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, sort_keys=True, default=str))
    tmp.replace(marker)


def _tuner(trainable: Any, s: Setup, method: SweepMethod, path: str, tune_root: str, progress: Any) -> Any:
    """The method's Tuner: resumed from ``path`` when Tune left state there (refused unless its seal
    holds: :func:`~expunge.sweep.tune_state.check_seal`), new otherwise."""
    from expunge.runtime.tune import can_restore, new_tuner, restore_tuner
    from expunge.sweep.runner import slug
    from expunge.sweep.tune_state import check_seal

    if can_restore(path):
        check_seal(path)  # before anything of Tune's is unpickled; --rebuild removed the state before
        log(f"sweep {method.name}: resuming from {path}")
        return restore_tuner(path, trainable)
    space = s.spaces[method.name]
    return new_tuner(trainable, space, s.spec.tune_config(), slug(method.name), tune_root, s.cfg.unlearn.seed,
                     progress, max_epochs(space, unlearn_config(s.base, method.name, method.params, {})))


def run_method(s: Setup, method: SweepMethod, job: TrialJob, tune_root: str) -> list[dict[str, Any]]:
    """Run (or resume) one method's Tuner and return its rows; an unfinished run is SweepInterrupted."""
    from expunge.runtime.tune import trainable as tune_trainable
    from expunge.sweep.progress import ENDED, SweepProgress
    from expunge.sweep.runner import SweepInterrupted, expected_trials, slug
    from expunge.sweep.tune_state import seal

    spec = s.spec
    total = expected_trials(s.spaces[method.name], spec.tune_config())
    trainable = tune_trainable(run_llm_trial, spec.cpus_per_trial, spec.gpus_per_trial, job=job,
                               method=method.name, fixed=dict(method.params))
    path = join_uri(tune_root, slug(method.name))
    ENDED.pop(method.name, None)
    try:
        grid = _tuner(trainable, s, method, path, tune_root, SweepProgress(method.name, total)).fit()
    finally:
        if "://" not in path:
            seal(path)  # the state a later run may restore from, as this run left it
    if len(grid) < total or any(not r.metrics and r.error is None for r in grid):
        # Tune stops gracefully on SIGINT and saves its state; the same command resumes it
        finished = ENDED.get(method.name, sum(1 for r in grid if (r.metrics or {}).get("final") or r.error))
        raise SweepInterrupted(f"sweep {spec.name} interrupted during {method.name} ({finished} of {total} trials "
                               "finished); rerun the same command to resume it")
    return trial_rows(method.name, grid, s.spaces[method.name], fixed=dict(method.params))


def local_configs(space: dict[str, Domain], search: str, num_samples: int, seed: str) -> list[dict[str, Any]]:
    """The trials of ``--local``: every point of the grid dimensions (all dimensions under grid
    search), each ``num_samples`` times (once under grid search) with the other dimensions drawn by
    :meth:`Domain.sample` from ``random.Random(seed)``: the same domains as Tune's variant generator,
    not the same draws."""
    grids = [k for k, d in space.items() if d.kind == "grid" or search == "grid"]
    rng = random.Random(seed)
    out = []
    for point in itertools.product(*(space[k].args for k in grids)):
        for _ in range(1 if search == "grid" else num_samples):
            drawn = {k: d.sample(rng) for k, d in space.items() if k not in grids}
            out.append({k: drawn[k] if k in drawn else point[grids.index(k)] for k in space})
    return out


def run_method_local(s: Setup, method: SweepMethod, job: TrialJob) -> list[dict[str, Any]]:
    """``--local``: each of :func:`local_configs`'s trials in this process, one after another and every
    one to its last epoch (no Tune, so no early stopping and no resumption); rows as :func:`trial_rows`."""
    space = s.spaces[method.name]
    configs = local_configs(space, s.spec.search, s.spec.num_samples, f"{s.cfg.unlearn.seed}:{method.name}")
    rows = []
    for i, params in enumerate(configs):
        head = {"method": method.name, "trial_id": f"local_{i:05d}", **{f"param.{k}": params.get(k) for k in space},
                "fixed_params": json.dumps(dict(method.params), sort_keys=True),
                "trial_params": json.dumps(params, sort_keys=True), "error": "", "status": "completed"}
        reported = run_llm_trial(params, lambda row: None, job=job, method=method.name, fixed=dict(method.params))
        rows += [{**head, **{k: _plain(v) for k, v in r.items()}} for r in reported]
        log(f"sweep {method.name}: {i + 1}/{len(configs)} trials done (local)")
    return rows


def trial_rows(method: str, grid: Any, space: dict[str, Domain], fixed: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per trial and epoch (the last report of each epoch: a retried trial reports again);
    a trial that reported nothing is one row with its status."""
    rows = []
    for res in grid:
        config = {k: _plain(v) for k, v in (res.config or {}).items()}
        df = res.metrics_dataframe
        trial_id = str((res.metrics or {}).get("trial_id", ""))
        head = {"method": method, "trial_id": trial_id, **{f"param.{k}": config.get(k) for k in space},
                "fixed_params": json.dumps(fixed, sort_keys=True),
                "trial_params": json.dumps(config, sort_keys=True),
                "error": str(res.error).splitlines()[0][:200] if res.error else ""}
        if df is None or df.empty or "epoch" not in df.columns:
            rows.append({**head, "status": "error" if res.error else "stopped"})
            continue
        df = df.dropna(subset=["epoch"]).drop_duplicates("epoch", keep="last").sort_values("epoch")
        status = "error" if res.error else ("completed" if float(df["final"].iloc[-1]) == 1.0 else "stopped")
        keep = [c for c in df.columns if not _tune_column(c)]
        for rec in df[keep].to_dict("records"):
            rows.append({**head, "status": status, **{k: _plain(v) for k, v in rec.items()}})
    return rows


def _tune_column(name: str) -> bool:
    """Tune's own bookkeeping in a result (time stamps, ids, the config copy), not the trial's report."""
    return name.startswith("config/") or name in (
        "timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date", "time_this_iter_s",
        "time_total_s", "pid", "hostname", "node_ip", "time_since_restore", "iterations_since_restore",
        "should_checkpoint")


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


# --- results -----------------------------------------------------------------------------------
def results_table(rows: list[dict[str, Any]], pareto: dict[str, str]) -> pd.DataFrame:
    """Every trial and epoch row with ``pareto`` (on the front of every row's ``pareto`` columns,
    feasible or not: the trade-off is the front's point) and ``best`` (per method, the feasible row
    with the smallest objective; ties go to the fewer epochs, then the first trial)."""
    from expunge.sweep.objective import pareto_front

    table = pd.DataFrame(rows)
    for col in ("epoch", "objective", "feasible"):
        if col not in table.columns:
            table[col] = np.nan
    table["feasible"] = table["feasible"].fillna(False).astype(bool)
    scored = table["epoch"].notna()
    table["pareto"] = False
    if scored.any() and all(c in table.columns for c in pareto):
        table.loc[scored, "pareto"] = pareto_front(table[scored], pareto)
    table["best"] = False
    for idx in best_rows(table).index:
        table.loc[idx, "best"] = True
    return table


def best_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Per method (in table order), its best feasible row: the smallest objective, then the earliest
    epoch, then the first trial; methods without a feasible row are left out."""
    ok = table[table["feasible"].astype(bool) & table["objective"].notna() & table["epoch"].notna()]
    if ok.empty:
        return ok
    ordered = ok.assign(_order=np.arange(len(ok))).sort_values(["objective", "epoch", "_order"], kind="stable")
    best = ordered.groupby("method", sort=False).head(1)
    methods = list(dict.fromkeys(table["method"]))
    return best.sort_values("method", key=lambda m: m.map(methods.index)).drop(columns="_order")


def best_config(s: Setup, row: pd.Series) -> tuple[str, dict[str, Any]]:
    """An ``llm-unlearn`` config that retrains ``row``'s model: the user's config (its own paths)
    without ``sweep``, the method at the row's settings with ``unlearn.epochs`` = its epoch, the trials'
    torch threads, and its own run name."""
    import yaml

    cfg, method = s.user_cfg, str(row["method"])
    params = {**json.loads(row["trial_params"]), "epochs": int(row["epoch"])}
    ucfg = unlearn_config(s.base, method, json.loads(row["fixed_params"]), params)
    data = cfg.model_dump(mode="json", exclude={"sweep"})
    data.update(name=f"{cfg.name}-{cfg.sweep.name}-{method}"[:100], threads=s.threads,
                unlearn={**ucfg.model_dump(mode="json"), "epochs": int(row["epoch"])})
    head = (f"# best row of llm-sweep {cfg.sweep.name} for {method}: {cfg.objective()} objective "
            f"{float(row['objective']):.6g} at epoch {int(row['epoch'])} of trial {row['trial_id']} "
            f"(utility drop {float(row['utility_drop_pct']):.3g}%)\n"
            "# reproduce with `expunge llm-unlearn <this file>` (add --local to run in one process)\n")
    return head + yaml.safe_dump(data, sort_keys=False), data


def result_files(s: Setup, table: pd.DataFrame, fixed: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict]:
    """The sweep's files: results and Pareto tables, a best config per method, the summary."""
    from expunge.sweep.runner import slug

    files: dict[str, Any] = {"results.parquet": table, "results.csv": table}
    front = table[table["pareto"]]
    files["pareto.parquet"], files["pareto.csv"] = front, front
    bests = {}
    for _, row in best_rows(table).iterrows():
        name = f"best_{slug(str(row['method']))}.yaml"
        files[name], _ = best_config(s, row)
        bests[str(row["method"])] = {"file": name, "trial_id": row["trial_id"], "epoch": int(row["epoch"]),
                                     "objective": float(row["objective"]),
                                     "utility_drop_pct": float(row["utility_drop_pct"])}
    trials = {str(m): {str(k): int(v) for k, v in g.drop_duplicates("trial_id")["status"].value_counts().items()}
              for m, g in table.groupby("method", sort=False)}
    files["summary.json"] = {"objective": s.cfg.objective(), "constraints": [str(r) for r in s.rules],
                             "pareto": s.pareto, "fixed_rows": fixed, "best": bests, "rows": len(table),
                             "trials": trials}
    return files, bests


def publish(s: Setup, store: Any, table: pd.DataFrame, fixed: dict[str, dict[str, Any]],
            rebuild: bool) -> tuple[Any, dict]:
    """Store the sweep's files as one artifact, print the best row per method and where everything is."""
    from expunge.llm.evaluate import fmt_table

    files, bests = result_files(s, table, fixed)
    art = store.put(SWEEP_KIND, s.spec.name, files, config=sweep_state(s), replace=True, repair=rebuild)
    best = best_rows(table)
    shown = [c for c in ("method", "trial_id", "epoch", "objective", "utility_drop_pct", "forget_loss", "feasible")
             if c in best.columns] + [c for c in best.columns if c.startswith("param.")]
    if not best.empty:
        printed = best[shown].reset_index(drop=True)
        for c in printed.columns:
            if c.startswith("param."):
                printed[c] = ["-" if v is None or (isinstance(v, float) and math.isnan(v)) else
                              (f"{v:.3g}" if isinstance(v, float) else str(v)) for v in printed[c]]
        print("\n" + fmt_table(printed) + "\n", flush=True)
    counts = table.drop_duplicates(["method", "trial_id"])["status"].value_counts().to_dict()
    print(f"sweep {s.spec.name}: {table['trial_id'].nunique()} trials "
          f"({', '.join(f'{v} {k}' for k, v in counts.items())}), {int(table['epoch'].notna().sum())} epoch rows; "
          f"objective {s.cfg.objective()}" + (f", constraints {', '.join(map(str, s.rules))}" if s.rules else ""))
    missing = [m.name for m in s.spec.methods if m.name not in bests]
    for method, b in bests.items():
        print(f"best {method}: objective {b['objective']:.4g} at epoch {b['epoch']} -> {art.path}/{b['file']}")
    if missing:
        print(f"no feasible row (no best config): {', '.join(missing)}")
    print(f"results table: {art.path}/results.csv (and results.parquet)")
    print(f"Pareto front ({' vs '.join(s.pareto)}): {art.path}/pareto.csv (and pareto.parquet)")
    print(f"summary: {art.path}/summary.json")
    return art, bests


# --- the whole sweep ---------------------------------------------------------------------------
def run_llm_sweep(cfg: LLMSweepJobConfig, rebuild: bool = False, use_ray: bool = True) -> dict[str, Any]:
    """Check, score the fixed models once, run (or resume) each method's Tuner, write and print the
    results (module docstring). Returns the table, the best rows, the paths and the driver's cache
    counts (``passes``). Without Ray (``--local``) the trials run here one after another
    (:func:`run_method_local`)."""
    from expunge.llm.train import torch_threads

    s = check_sweep(cfg, use_ray)  # every user error before a model is loaded or a file written
    with torch_threads(cfg.threads):
        return _run(s, rebuild, use_ray)


def _run(s: Setup, rebuild: bool, use_ray: bool = True) -> dict[str, Any]:
    from expunge.llm.scoring import LogProbCache
    from expunge.runtime import init_ray
    from expunge.store import Store
    from expunge.store.lock import artifact_lock

    cfg, spec = s.cfg, s.spec
    store = Store(cfg.run_dir)
    if not rebuild:  # damaged results of an earlier run of this sweep: refused now, not after the trials
        store.check_intact(SWEEP_KIND, spec.name)
    with artifact_lock(store.uri, SWEEP_KIND, spec.name, on_wait=lambda h: log(
            f"waiting for another llm-sweep {spec.name} in this run directory (pid {h.get('pid')})")):
        log(f"llm-sweep {spec.name}: {', '.join(s.spaces)}; forget {len(s.inp.forget)}, retain "
            f"{len(s.inp.retain) if s.inp.retain else 0}; objective {cfg.objective()}; scheduler {spec.scheduler}, "
            f"search {spec.search}, {spec.num_samples} sample(s); run directory {store.uri}")
        cache = LogProbCache(store, batch_tokens=cfg.audit.batch_tokens, rebuild=rebuild)
        scores = fixed_scores(s.inp, cache, s.device if _here(s.device) else "cpu", log_to=log)
        fixed = fixed_rows(s.inp, scores)
        passes = dict(cache.hits)
        del scores, cache
        tune_root = join_uri(cfg.run_dir, TUNE_DIR, spec.name)
        job = TrialJob(s.inp, s.base, store.uri, cfg.objective(), s.rules, s.device, s.threads)
        rows: list[dict[str, Any]] = []
        if use_ray:
            init_ray()  # joins RAY_ADDRESS, or starts a private local Ray; a no-op when already up
            check_state(tune_root, json.loads(json.dumps(sweep_state(s), default=str)), rebuild)
        for method in spec.methods:
            rows += run_method(s, method, job, tune_root) if use_ray else run_method_local(s, method, job)
        table = results_table(rows, s.pareto)
        art, bests = publish(s, store, table, fixed, rebuild)
    return {"table": table, "best": bests, "path": art.path, "tune_path": tune_root, "passes": passes,
            "fixed_rows": fixed}


def _here(device: str) -> bool:
    """Whether this process can use ``device`` (the fixed models are scored here, the trials elsewhere)."""
    import torch

    return not device.startswith("cuda") or torch.cuda.is_available()


# --- the benchmark -----------------------------------------------------------------------------
def bench_trial_cost(cfg: LLMSweepJobConfig, rounds: int = 3, method: str | None = None) -> dict[str, Any]:
    """The cost of one sweep trial with the fixed models' log-probs read from the shared cache against
    the same trial recomputing them, measured in this process on the same configuration (the first
    point of ``method``'s space, default the first method) in one run; ``cfg`` is a sweep config, whose
    run directory's cache receives the fixed models' scores first, as a sweep's driver does.

    The shared trial starts from a fresh cache each time (a new Tune worker: the scores come from the
    store, not from memory). After one untimed trial of each kind (imports, first-call set-up), rounds
    alternate shared, recomputing, shared, ...; returns the seconds of every trial, the medians, their
    ratio, the fixed models' part of each and the cache counts."""
    from expunge.llm.scoring import LogProbCache
    from expunge.llm.train import torch_threads
    from expunge.store import Store

    s = check_sweep(cfg, use_ray=True)
    m = next((x for x in s.spec.methods if x.name == method), s.spec.methods[0]) if method else s.spec.methods[0]
    params = {k: _first(d) for k, d in s.spaces[m.name].items()}
    store = Store(s.cfg.run_dir)
    with torch_threads(s.threads):
        fixed_scores(s.inp, LogProbCache(store, batch_tokens=s.cfg.audit.batch_tokens), s.device)
    job = TrialJob(s.inp, s.base, store.uri, s.cfg.objective(), s.rules, s.device, s.threads)
    runs: dict[str, list[dict[str, float]]] = {"shared": [], "recompute": []}
    objectives: dict[str, list[float]] = {"shared": [], "recompute": []}
    for k in range(max(1, rounds) + 1):
        for mode in ("shared", "recompute"):
            _CACHES.clear()
            t0 = time.perf_counter()
            rows = run_llm_trial(params, lambda r: None, job=job, method=m.name, fixed=dict(m.params),
                                 share=mode == "shared")
            if k == 0:
                continue  # the warm-up
            runs[mode].append({"trial_s": time.perf_counter() - t0, "fixed_s": rows[-1]["fixed_s"],
                               "train_s": rows[-1]["train_s"], "audit_s": rows[-1]["audit_s"],
                               "fixed_computed": rows[-1]["fixed_computed"], "fixed_read": rows[-1]["fixed_read"]})
            objectives[mode].append(rows[-1]["objective"])
    med = {mode: float(np.median([r["trial_s"] for r in rs])) for mode, rs in runs.items()}
    return {"method": m.name, "params": params, "epochs": int(rows[-1]["epochs"]), "threads": s.threads,
            "device": s.device, "rounds": runs, "median_trial_s": med,
            "median_fixed_s": {mode: float(np.median([r["fixed_s"] for r in rs])) for mode, rs in runs.items()},
            "ratio_recompute_over_shared": med["recompute"] / med["shared"],
            "same_objective": len(set(objectives["shared"] + objectives["recompute"])) == 1}
