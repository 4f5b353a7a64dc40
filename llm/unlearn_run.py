"""One LLM unlearning run: checks, per-epoch checkpoints in the store, the per-epoch audit, the best
epoch and the report. ``expunge llm-unlearn`` (:mod:`expunge.jobs.llm_unlearn`) calls
:func:`run_llm_unlearn`.

Layout of the run directory ``<storage>/<name>`` (an artifact store, every artifact with a manifest):

* ``llm_models/<method>/epoch-NNNN``: epoch N's model, a ``save_pretrained`` directory (safetensors,
  tokenizer), written when the epoch ends (:func:`expunge.llm.unlearn.epoch_ends`; epoch N's model
  is what a run with ``unlearn.epochs=N`` returns);
* ``llm_unlearn_state/<method>``: the training loop's state at the last stored epoch (AdamW moments,
  RNG states, data order), so an interrupted run continues exactly where it stopped;
* ``llm_logprobs/*``: the per-token log-probability cache (:class:`~expunge.llm.scoring.LogProbCache`);
* ``llm_unlearn/<method>``: the method's result: ``result.json`` (the best epoch, the objective, why),
  ``epochs.parquet`` / ``epochs.csv`` (the per-epoch table), ``results.*`` (every AUC with its
  bootstrap interval), ``best_scores.parquet`` (the best epoch's per-sample attack scores) and
  ``best_config.yaml`` (the config with ``unlearn.epochs`` set to the best epoch, which reproduces it);
* ``llm_unlearn_report/<method>``: ``report.md``, ``report.html`` and the figures.

A checkpoint's manifest records what made it: the unlearning settings except ``epochs``, the
original model's fingerprint (a stored model's content hash, else its files' names, sizes and
modification times, as the log-prob cache keys it), the forget and retain sets' hashes, the dtype and
the number of data-parallel workers. A rerun reuses every stored epoch
that matches (no training, and every log-prob pass comes from the cache), continues from the last
one when more epochs are asked for, refuses one made from other inputs (:class:`StaleArtifactError`)
or a damaged one (:class:`CorruptArtifactError`, named) unless ``--rebuild``, which retrains from the
original and replaces them.

Training runs in this process (``--local``) or under Ray Train (:func:`train_ray`): ``TorchTrainer``
with ``scaling.num_workers`` data-parallel workers (DDP, or FSDP with ``scaling.strategy=fsdp``; gloo on
CPUs, NCCL on GPUs). Every worker
runs the same loop on rows rank::world of each batch (:func:`expunge.llm.unlearn.unlearn_lm` with
``shard``), rank 0 stores each epoch; a lost worker makes ``FailureConfig`` restart the group, and
every worker continues from the last stored epoch's state.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from expunge.errors import ConfigError, ExpungeError
from expunge.llm.unlearn import LLMUnlearnConfig
from expunge.llm.unlearn_audit import AuditSets, ModelHandle
from expunge.llm.unlearn_data import UnlearnSplit

KIND = "llm_models"
STATE_KIND = "llm_unlearn_state"
RESULT_KIND = "llm_unlearn"
REPORT_KIND = "llm_unlearn_report"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- the config --------------------------------------------------------------------------------
class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Section):
    """How the forget / retain / held-out files are read (:mod:`expunge.llm.unlearn_data`)."""

    format: Literal["auto", "text", "qa"] = "auto"
    text_column: str = "text"
    question_column: str = "question"
    answer_column: str = "answer"
    id_column: str | None = None
    split: str | None = None
    max_samples: int | None = Field(None, ge=1, description="first N rows of each file")


class AuditSpec(_Section):
    """The per-epoch audit (:mod:`expunge.llm.unlearn_audit`)."""

    attacks: list[str] | None = Field(None, description="default: loss, zlib, minkpp (+ iam_online, lira_online, "
                                                        "rmia_online with a retain model)")
    n_boot: int = Field(200, ge=0, description="bootstrap draws for the AUC intervals")
    k: float = Field(0.2, gt=0, le=1, description="Min-K%++ fraction")
    gamma: float = Field(2.0, gt=0, description="RMIA's likelihood-ratio threshold")
    n_levels: int = Field(1000, ge=2, description="IAM interpolation levels")
    max_samples: int | None = Field(None, ge=2, description="first N items of each set in the audit")
    max_length: int | None = Field(None, ge=2, description="truncate scored texts to this many tokens")
    batch_tokens: int | None = Field(None, ge=1)


class SelectSpec(_Section):
    """Which epoch is the result (:func:`expunge.llm.unlearn_audit.choose_best`)."""

    objective: Literal["auto", "retain", "forgetting"] = "auto"
    utility_drop_max: float = Field(5.0, ge=0, description="percent increase of held-out perplexity allowed "
                                                           "(objective forgetting)")


class ScalingSpec(_Section):
    """Ray Train (without ``--local``): data-parallel workers and restarts."""

    num_workers: int = Field(1, ge=1, le=1024)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    max_failures: int = Field(2, ge=0, le=100, description="restarts of the worker group from the last epoch")
    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp", description="ddp: a whole model per worker; fsdp: weights, gradients and AdamW moments sharded over "
                           "the workers (PyTorch FSDP2), for models whose training state does not fit one GPU")


class LLMUnlearnJobConfig(_Section):
    """Every setting of ``expunge llm-unlearn`` (YAML plus ``key=value`` overrides)."""

    name: str = "llm_unlearn"
    storage: str = "runs"
    model: str = Field(description="the original model: an AutoModelForCausalLM directory (or a hub id online)")
    retain_model: str | None = Field(None, description="a model trained without the forget set (reference / OUT)")
    forget: str
    retain: str | None = None
    heldout: str | None = None
    population: str | None = Field(None, description="RMIA-On's population (default: the held-out set)")
    trust_remote_code: bool = False
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    threads: int | None = Field(None, ge=1, description="torch CPU threads in this process")
    data: DataSpec = Field(default_factory=DataSpec)
    unlearn: LLMUnlearnConfig = Field(default_factory=LLMUnlearnConfig)
    audit: AuditSpec = Field(default_factory=AuditSpec)
    select: SelectSpec = Field(default_factory=SelectSpec)
    scaling: ScalingSpec = Field(default_factory=ScalingSpec)

    @field_validator("name")
    @classmethod
    def _safe(cls, v: str) -> str:
        from expunge.config import safe_name

        return safe_name(v)

    @model_validator(mode="after")
    def _per_epoch(self) -> "LLMUnlearnJobConfig":
        if self.unlearn.steps is not None:
            raise ValueError("unlearn.steps: llm-unlearn checkpoints once per epoch; set unlearn.epochs instead")
        if self.unlearn.epochs != int(self.unlearn.epochs):
            raise ValueError("unlearn.epochs: a whole number of epochs, one checkpoint each "
                             f"(got {self.unlearn.epochs})")
        return self

    @property
    def epochs(self) -> int:
        return int(self.unlearn.epochs)

    @property
    def run_dir(self) -> str:
        from expunge.config import join_uri

        return join_uri(self.storage, self.name)

    def objective(self) -> str:
        if self.select.objective != "auto":
            return self.select.objective
        return "retain" if self.retain_model else "forgetting"


def load_job_config(path: str | None, overrides: list[str] | tuple[str, ...] = ()) -> LLMUnlearnJobConfig:
    """YAML + overrides, validated (unknown keys, bad values and method settings are one-line errors)."""
    from expunge.config import check_storage, read_config

    cfg = read_config(path, list(overrides), model=LLMUnlearnJobConfig)
    check_storage(cfg.storage)
    return cfg


# --- checks before anything is loaded or written -------------------------------------------------
def check_model_dir(path: str, role: str) -> None:
    """One line unless ``path`` is a model directory with a config and weights (or a hub id online)."""
    from expunge.llm.models import check_model_source

    local = check_model_source(path, role)
    if not local.is_dir():
        return  # a hub id, reachable: from_pretrained checks it
    if not (local / "config.json").is_file():
        raise ExpungeError(f"{role} {path!r}: no config.json in the directory (save the model with save_pretrained)")
    weights = [p for pat in ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json", "*.pt", "*.pth")
               for p in local.glob(pat)]
    if not weights:
        raise ExpungeError(f"{role} {path!r}: the directory has no weights (no *.safetensors or pytorch_model*.bin; "
                           "save the model with save_pretrained)")


def _tokenizer(path: str, role: str, trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ExpungeError(f"{role} {path!r}: its tokenizer could not be loaded: {str(exc).splitlines()[0]}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def num_layers(path: str, trust_remote_code: bool) -> int | None:
    from transformers import AutoConfig

    try:
        n = getattr(AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code), "num_hidden_layers", None)
    except (OSError, ValueError) as exc:
        raise ExpungeError(f"model {path!r}: its config could not be read: {str(exc).splitlines()[0]}") from None
    return n if isinstance(n, int) else None


@dataclass
class Inputs:
    """Everything checked and loaded before any compute."""

    cfg: LLMUnlearnJobConfig
    tokenizer: Any
    forget: UnlearnSplit
    retain: UnlearnSplit | None
    heldout: UnlearnSplit | None
    population: UnlearnSplit | None
    sets: AuditSets
    attacks: list[str]
    skipped: dict[str, str]
    identity: dict[str, Any]
    device: str
    dtype: torch.dtype | None


def check_inputs(cfg: LLMUnlearnJobConfig, use_ray: bool = False) -> Inputs:
    """Every user error as one line, before a model is loaded or a file written: the objective's inputs,
    the model directories and tokenizers, RMU's layer, the data sets, LoRA's package, and (``use_ray``)
    a batch too small to split over the Ray Train workers."""
    from expunge.llm.models import check_same_tokenizer
    from expunge.llm.scoring import directory_fingerprint
    from expunge.llm.unlearn import check_inputs as check_method_inputs
    from expunge.llm.unlearn import check_rmu_layer
    from expunge.llm.unlearn_audit import plan_attacks
    from expunge.llm.unlearn_data import check_splits, load_split

    objective = cfg.objective()
    if objective == "retain" and not cfg.retain_model:
        raise ConfigError("select.objective=retain needs a retain model (retain_model=DIR)")
    if objective == "forgetting" and not cfg.heldout:
        raise ConfigError("select.objective=forgetting (the default without a retain model) needs a held-out set "
                          "(heldout=FILE): forgetting is measured against it")
    ucfg = cfg.unlearn
    if use_ray and cfg.scaling.strategy == "fsdp" and ucfg.lora:
        raise ConfigError("scaling.strategy=fsdp trains the full model; LoRA's adapters (unlearn.lora=true) are small "
                          "enough for scaling.strategy=ddp")
    if ucfg.lora:
        from expunge.llm.unlearn import has_peft

        if not has_peft():
            raise ExpungeError("unlearn.lora=true needs the optional package 'peft' (pip install 'expunge[lora]')")
    check_model_dir(cfg.model, "model")
    if cfg.retain_model:
        check_model_dir(cfg.retain_model, "retain model")
    tok = _tokenizer(cfg.model, "model", cfg.trust_remote_code)
    if cfg.retain_model:
        check_same_tokenizer(tok, _tokenizer(cfg.retain_model, "retain model", cfg.trust_remote_code),
                             f"retain model {cfg.retain_model!r} against model {cfg.model!r}")
    if ucfg.method == "rmu":
        n = num_layers(cfg.model, cfg.trust_remote_code)
        if n is None:
            raise ConfigError(f"unlearn.rmu_layer: model {cfg.model!r} does not state its number of layers "
                              "(config.num_hidden_layers)")
        check_rmu_layer(ucfg, n)

    d = cfg.data
    read = dict(fmt=d.format, text_column=d.text_column, question_column=d.question_column,
                answer_column=d.answer_column, id_column=d.id_column, split=d.split, max_samples=d.max_samples)
    forget = load_split(cfg.forget, "forget", **read)
    retain = load_split(cfg.retain, "retain", **read) if cfg.retain else None
    heldout = load_split(cfg.heldout, "held-out", **read) if cfg.heldout else None
    population = load_split(cfg.population, "population", **read) if cfg.population else None
    check_splits(forget, retain, [s for s in (heldout, population) if s is not None])
    check_method_inputs(ucfg, forget.items(), retain.items() if retain else [])
    bs = min(ucfg.batch_size, len(forget))
    if use_ray and bs < cfg.scaling.num_workers:
        raise ConfigError(f"scaling.num_workers={cfg.scaling.num_workers}: each batch of {bs} forget items is split "
                          "over the workers, so unlearn.batch_size (and the forget set) must be at least that large")

    m = cfg.audit.max_samples
    sets = AuditSets(forget.head(m), retain.head(m) if retain else None, heldout.head(m) if heldout else None,
                     population.head(m) if population else None)
    if not sets.tasks():
        raise ConfigError("the audit needs a retain set (retain=) or a held-out set (heldout=) to compare the forget "
                          "set with")
    attacks, skipped = plan_attacks(cfg.audit.attacks, sets, bool(cfg.retain_model))
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = None if cfg.dtype == "auto" else getattr(torch, cfg.dtype)
    # what the weights of epoch e depend on; epochs is left out (epoch e is the same in a longer run), the
    # data-parallel width is in (each worker's loss is a mean over its rows, so the steps differ slightly)
    identity = {"unlearn": ucfg.model_dump(exclude={"epochs"}), "model": directory_fingerprint(cfg.model),
                "forget": forget.hash, "retain": retain.hash if retain else None, "dtype": cfg.dtype,
                "data_parallel": cfg.scaling.num_workers if use_ray else 1,
                # FSDP's reduce-scatter sums in another order than DDP's all-reduce: the last bits differ
                **({"sharding": "fsdp"} if use_ray and cfg.scaling.strategy == "fsdp" else {})}
    return Inputs(cfg, tok, forget, retain, heldout, population, sets, attacks, skipped, identity, device, dtype)


# --- checkpoints and the loop's state in the store --------------------------------------------
def checkpoint_key(method: str, epoch: int) -> str:
    return f"{method}/epoch-{epoch:04d}"


def state_files(state: dict[str, Any]) -> dict[str, Any]:
    """The loop state of :func:`expunge.llm.unlearn.unlearn_lm` as storable files: tensors (AdamW's
    moments, the RNG states) in safetensors, the rest (step, data order, hyperparameters) in JSON."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entries in state["optimizer"]["state"].items():
        for name, v in entries.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{name}"] = v.detach().cpu().clone().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = v
    tensors["rng.generator"] = state["generator"].clone()
    tensors["rng.torch"] = state["torch_rng"].clone()
    if state.get("cuda_rng") is not None:
        tensors["rng.cuda"] = state["cuda_rng"].cpu().clone()
    meta = {k: state[k] for k in ("step", "epoch", "order", "pos", "losses")}
    meta["param_groups"] = state["optimizer"]["param_groups"]
    meta["scalars"] = scalars
    return {"train_state.safetensors": tensors, "train_state.json": meta}


def state_from_files(read: Callable[[str], Any]) -> dict[str, Any]:
    """Inverse of :func:`state_files`."""
    tensors, meta = read("train_state.safetensors"), read("train_state.json")
    optim: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            optim.setdefault(int(idx), {})[name] = t
    for idx, entries in meta["scalars"].items():
        optim.setdefault(int(idx), {}).update(entries)
    return {"step": meta["step"], "epoch": meta["epoch"], "order": meta["order"], "pos": meta["pos"],
            "losses": meta["losses"], "optimizer": {"state": optim, "param_groups": meta["param_groups"]},
            "generator": tensors["rng.generator"], "torch_rng": tensors["rng.torch"],
            "cuda_rng": tensors.get("rng.cuda")}


@dataclass
class Progress:
    """What is stored: verified checkpoints by epoch, and where training must start."""

    checkpoints: dict[int, Any]
    start_epoch: int
    resume: dict[str, Any] | None


def stored_progress(store: Any, inp: Inputs, rebuild: bool, tolerant: bool = False) -> Progress:
    """Verify every stored checkpoint of this run (a stale or damaged one is an error naming it, unless
    ``rebuild``) and find where training starts: after the last epoch whose loop state is stored, or
    from the original. ``tolerant`` treats a stale or damaged checkpoint as absent (a Ray Train group
    restarted during a ``--rebuild`` finds the old ones it is replacing)."""
    from expunge.errors import ArtifactError

    cfg = inp.cfg
    method = cfg.unlearn.method
    if rebuild:
        return Progress({}, 0, None)
    found: dict[int, Any] = {}
    for e in range(1, cfg.epochs + 1):
        try:
            art = store.get(KIND, checkpoint_key(method, e), expect={"config": inp.identity}, verify=True)
        except ArtifactError:
            if not tolerant:
                raise
            art = None
        if art is not None:
            found[e] = art
    done = 0
    while done + 1 in found:
        done += 1
    if done == cfg.epochs:
        return Progress(found, done, None)
    state_art = store.get(STATE_KIND, method, expect={"config": inp.identity})
    if state_art is None or cfg.unlearn.lora or int(state_art.manifest.get("epoch", 0)) not in found \
            or int(state_art.manifest["epoch"]) > done:
        # no usable state: train from the original (stored epochs are recomputed and replaced)
        return Progress(found, 0, None)
    start = int(state_art.manifest["epoch"])
    return Progress(found, start, state_from_files(state_art.read))


def save_epoch(store: Any, inp: Inputs, epoch: int, model: torch.nn.Module, state: dict[str, Any],
               rebuild: bool) -> Any:
    """Store epoch ``epoch``'s model (a ``save_pretrained`` artifact) and then the loop state."""
    from expunge.llm.artifacts import save_lm

    method = inp.cfg.unlearn.method
    art = save_lm(store, checkpoint_key(method, epoch), model, inp.tokenizer, config=inp.identity, replace=True,
                  repair=rebuild, seed=inp.cfg.unlearn.seed, epoch=epoch, step=int(state["step"]), method=method,
                  loss=float(state["losses"][-1]) if state["losses"] else None, source_model=inp.cfg.model)
    if not inp.cfg.unlearn.lora:  # a merged LoRA checkpoint cannot be continued (unlearn_lm)
        store.put(STATE_KIND, method, state_files(state), config=inp.identity, replace=True, repair=rebuild,
                  epoch=epoch, step=int(state["step"]))
    return art


# --- training ----------------------------------------------------------------------------------
def _load(path: str, inp: Inputs, device: str) -> tuple[torch.nn.Module, Any]:
    from expunge.llm.models import load_causal_lm

    return load_causal_lm(path, trust_remote_code=inp.cfg.trust_remote_code, device=device, dtype=inp.dtype)


def _start_model(inp: Inputs, progress: Progress, device: str) -> tuple[torch.nn.Module, Any]:
    """The weights training starts from (the original, or the resumed epoch's) and the frozen
    reference a resumed run needs."""
    from expunge.llm.artifacts import hf_dir
    from expunge.llm.unlearn import LLM_METHODS

    if progress.resume is None:
        model, _ = _load(inp.cfg.model, inp, device)
        return model, None
    model, _ = _load(hf_dir(progress.checkpoints[progress.start_epoch]), inp, device)
    ref = None
    if LLM_METHODS.get(inp.cfg.unlearn.method).needs_reference:
        ref, _ = _load(inp.cfg.model, inp, device)
        for p in ref.parameters():
            p.requires_grad_(False)
    return model, ref


def _score_epoch(scorer: Any, inp: Inputs, art: Any, model: torch.nn.Module) -> None:
    """Score the epoch's in-process model into the cache under the stored checkpoint's content hash,
    so the audit reads it back instead of loading the checkpoint."""
    from expunge.llm.unlearn_audit import ModelHandle

    scorer.score_all(ModelHandle(art.key, art.manifest["content_hash"], inp.tokenizer, model=model), inp.sets)


def train_local(store: Any, inp: Inputs, progress: Progress, scorer: Any, rebuild: bool) -> dict[str, Any]:
    """Unlearn in this process from ``progress``'s start, storing (and scoring) every epoch."""
    from expunge.llm.unlearn import unlearn_lm

    cfg = inp.cfg
    model, ref = _start_model(inp, progress, inp.device)
    if progress.resume is None:
        # the original is in memory now: score it here instead of loading it again for the audit
        scorer.score_all(ModelHandle("original", original_key(cfg), inp.tokenizer, model=model), inp.sets)

    def on_epoch(epoch: int, m: torch.nn.Module, state: dict[str, Any]) -> None:
        art = save_epoch(store, inp, epoch, m, state, rebuild)
        progress.checkpoints[epoch] = art
        log(f"  epoch {epoch}/{cfg.epochs}: step {state['step']}, loss {state['losses'][-1]:.4f} -> {art.name}")
        _score_epoch(scorer, inp, art, m)

    _, stats = unlearn_lm(model, inp.tokenizer, inp.forget.items(), inp.retain.items() if inp.retain else [],
                          cfg.unlearn, ref_model=ref, on_epoch=on_epoch, resume=progress.resume, log=log)
    return stats


def original_key(cfg: LLMUnlearnJobConfig) -> str:
    from expunge.llm.scoring import directory_fingerprint

    return directory_fingerprint(cfg.model)


def _train_loop_per_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: the loop of :func:`train_local` on rows rank::world of every batch, in DDP."""
    from expunge import faults
    from expunge.llm.scoring import LogProbCache, ScoringSettings
    from expunge.llm.unlearn import unlearn_lm
    from expunge.llm.unlearn_audit import SplitScorer
    from expunge.runtime.train_workers import worker_context
    from expunge.store import Store

    inp: Inputs = config["inputs"]
    rebuild: bool = config["rebuild"]
    ctx = worker_context()
    rank, world = ctx.rank, ctx.world
    if not torch.cuda.is_available():
        torch.set_num_threads(max(1, int(config["threads"])))
    device = ctx.device
    store = Store(config["store"])
    # where to start is read from the store on every (re)start: rank 0 stores each epoch's model and
    # loop state before it reports the epoch, so after a lost worker the group continues from there
    restarted = ctx.restarted
    progress = stored_progress(store, inp, rebuild and not restarted, tolerant=rebuild and restarted)
    if restarted:
        faults.record("train_worker", f"{rank}:{progress.start_epoch}")
    model, ref = _start_model(inp, progress, device)
    scorer = SplitScorer(LogProbCache(store, batch_tokens=inp.cfg.audit.batch_tokens),
                         ScoringSettings(max_length=inp.cfg.audit.max_length), log=log if rank == 0 else None)

    def on_epoch(epoch: int, m: torch.nn.Module, state: dict[str, Any]) -> None:
        metrics = {"epoch": epoch, "step": int(state["step"]), "loss": float(state["losses"][-1])}
        if rank != 0:
            ctx.report(metrics)
            # a moment after the report: Ray Train registers checkpoints asynchronously, and a test
            # should not race that registration
            faults.maybe_die("train_worker", delay_s=3.0, rank=rank, epoch=epoch)
            return
        art = save_epoch(store, inp, epoch, m, state, rebuild)
        _score_epoch(scorer, inp, art, m)
        ctx.report(metrics, checkpoint_files={"epoch.json": json.dumps(
            {"epoch": epoch, "checkpoint": art.name, "content_hash": art.manifest["content_hash"]})})

    unlearn_lm(model, inp.tokenizer, inp.forget.items(), inp.retain.items() if inp.retain else [], inp.cfg.unlearn,
               ref_model=ref, on_epoch=on_epoch, resume=progress.resume, shard=(rank, world),
               prepare=lambda m: ctx.prepare_model(m, inp.cfg.scaling.strategy), log=log if rank == 0 else None)


def train_ray(store: Any, inp: Inputs, rebuild: bool) -> dict[str, Any]:
    """Unlearn with Ray Train's ``TorchTrainer`` (module docstring); the checkpoints end up in the store."""
    from expunge.runtime.train_workers import fit

    sc = inp.cfg.scaling
    storage = os.path.abspath(os.path.join(store.uri, "ray_train")) if "://" not in store.uri \
        else f"{store.uri.rstrip('/')}/ray_train"
    log(f"unlearning with Ray Train: {sc.num_workers} worker(s){' on GPUs' if sc.use_gpu else ''}")
    return fit(_train_loop_per_worker,
               {"inputs": inp, "rebuild": rebuild, "store": store.uri, "threads": sc.cpus_per_worker},
               num_workers=sc.num_workers, use_gpu=sc.use_gpu, cpus_per_worker=sc.cpus_per_worker,
               max_failures=sc.max_failures, storage=storage,
               name=f"{inp.cfg.name}-{inp.cfg.unlearn.method}-{time.strftime('%Y%m%d-%H%M%S')}")


# --- the whole run -----------------------------------------------------------------------------
def run_llm_unlearn(cfg: LLMUnlearnJobConfig, rebuild: bool = False, use_ray: bool = False) -> dict[str, Any]:
    """Check, unlearn (or reuse), audit every epoch, choose the best, write the result and the report
    (module docstring); returns the table, the best epoch and the paths."""
    from expunge.llm.train import torch_threads

    with torch_threads(cfg.threads):
        return _run(cfg, rebuild, use_ray)


def _run(cfg: LLMUnlearnJobConfig, rebuild: bool, use_ray: bool) -> dict[str, Any]:
    from expunge.llm.scoring import LogProbCache, ScoringSettings
    from expunge.llm.unlearn_audit import SplitScorer
    from expunge.store import Store
    from expunge.store.lock import artifact_lock

    t0 = time.perf_counter()
    inp = check_inputs(cfg, use_ray)  # every user error before a model is loaded or a file written
    method = cfg.unlearn.method
    store = Store(cfg.run_dir)
    scorer = SplitScorer(LogProbCache(store, batch_tokens=cfg.audit.batch_tokens, rebuild=rebuild),
                         ScoringSettings(max_length=cfg.audit.max_length), log=log)
    with artifact_lock(store.uri, RESULT_KIND, method.replace("/", "_"), on_wait=lambda h: log(
            f"waiting for another llm-unlearn of {method} in this run directory (pid {h.get('pid')})")):
        progress = stored_progress(store, inp, rebuild)  # a stale or damaged checkpoint stops here, by name
        qa = " (prompt/answer pairs, loss on answer tokens)" if inp.forget.qa else ""
        log(f"llm-unlearn {method}: forget {len(inp.forget)}, retain {len(inp.retain) if inp.retain else 0}, "
            f"held-out {len(inp.heldout) if inp.heldout else 0}{qa}; {cfg.epochs} epoch(s); run directory {store.uri}")
        trained = cfg.epochs - progress.start_epoch
        if not trained:
            log(f"every epoch is stored: reusing {', '.join(a.name for _, a in sorted(progress.checkpoints.items()))}")
        else:
            if progress.start_epoch:
                log(f"continuing from the stored epoch {progress.start_epoch}")
            elif progress.checkpoints:
                why = ("a LoRA run cannot continue from a merged checkpoint" if cfg.unlearn.lora
                       else "no stored loop state to continue from")
                log(f"training from the original ({why}); the stored epochs are recomputed")
            if use_ray:
                from expunge.runtime import init_ray

                init_ray()  # joins RAY_ADDRESS, or starts a private local Ray; a no-op when already up
                train_ray(store, inp, rebuild)
            else:
                train_local(store, inp, progress, scorer, rebuild)
        t_train = time.perf_counter() - t0
        checkpoints = {e: store.get(KIND, checkpoint_key(method, e), expect={"config": inp.identity})
                       for e in range(1, cfg.epochs + 1)}
        missing = [e for e, a in checkpoints.items() if a is None]
        if missing:
            raise ExpungeError(f"training ended without storing epoch(s) {missing}")
        out = audit_and_report(store, inp, checkpoints, scorer, rebuild)
    out["timings"] = {"train_s": round(t_train, 3), "total_s": round(time.perf_counter() - t0, 3)}
    out["trained_epochs"] = trained
    out["passes"] = dict(scorer.cache.hits)
    return out


def fixed_models(inp: Inputs, device: str | None = None) -> dict[str, ModelHandle]:
    """The models every checkpoint is audited against, as cache handles (their cache keys are the
    directories' fingerprints): ``original`` and, when given, ``retain model``."""
    from expunge.llm.scoring import directory_fingerprint

    cfg = inp.cfg
    kw = dict(device=device or inp.device, dtype=inp.dtype, trust_remote_code=cfg.trust_remote_code)
    out = {"original": ModelHandle("original", original_key(cfg), inp.tokenizer, path=cfg.model, **kw)}
    if cfg.retain_model:
        out["retain model"] = ModelHandle("retain model", directory_fingerprint(cfg.retain_model), inp.tokenizer,
                                          path=cfg.retain_model, **kw)
    return out


def attack_params(cfg: LLMUnlearnJobConfig) -> dict[str, dict[str, Any]]:
    """The attacks' settings from ``audit.*`` (RMIA's gamma, IAM's levels, Min-K%++'s k)."""
    return {"rmia_online": {"gamma": cfg.audit.gamma}, "iam_online": {"n_levels": cfg.audit.n_levels},
            "minkpp": {"k": cfg.audit.k}}


def audit_and_report(store: Any, inp: Inputs, checkpoints: dict[int, Any], scorer: Any,
                     rebuild: bool) -> dict[str, Any]:
    """Score every model (cached), build the per-epoch table, choose the best epoch, write the result
    and report artifacts and print where everything is."""
    import yaml

    from expunge.llm.evaluate import fmt_table, per_sample_table
    from expunge.llm.unlearn_audit import add_utility_drop, audit_model, choose_best, objective_values, report_files

    cfg, sets = inp.cfg, inp.sets
    method = cfg.unlearn.method
    params = attack_params(cfg)
    kw = dict(device=inp.device, dtype=inp.dtype, trust_remote_code=cfg.trust_remote_code)
    fixed = fixed_models(inp)
    orig = scorer.score_all(fixed["original"], sets)
    ref = scorer.score_all(fixed["retain model"], sets) if "retain model" in fixed else None

    def audit(target: dict[str, Any]) -> dict[str, Any]:
        return audit_model(target, orig, ref, sets, inp.attacks, params, cfg.audit.n_boot, cfg.unlearn.seed)

    rows, results, per_epoch = [], [], {}
    res = audit(orig)
    rows.append({"model": "original", "epoch": 0, "step": 0, "checkpoint": cfg.model, **res["row"]})
    results.append(res["results"].assign(model="original"))
    for e, art in sorted(checkpoints.items()):
        handle = ModelHandle(f"epoch {e}", art.manifest["content_hash"], inp.tokenizer, path=art.path, **kw)
        res = audit(scorer.score_all(handle, sets))
        per_epoch[e] = res["scores"]
        rows.append({"model": f"epoch {e}", "epoch": e, "step": art.manifest.get("step"), "checkpoint": art.name,
                     **res["row"]})
        results.append(res["results"].assign(model=f"epoch {e}"))
    if ref is not None:
        res = audit(ref)
        rows.append({"model": "retain model", "epoch": None, "step": None, "checkpoint": cfg.retain_model,
                     **res["row"]})
        results.append(res["results"].assign(model="retain model"))
    table = pd.DataFrame(rows)
    table["epoch"] = table["epoch"].astype("Int64")
    table["step"] = table["step"].astype("Int64")
    table = add_utility_drop(table)
    objective = cfg.objective()
    table["objective"] = objective_values(table, objective)
    best = choose_best(table, objective, cfg.select.utility_drop_max)
    table["within_utility_limit"] = table["utility_drop_pct"] <= cfg.select.utility_drop_max
    table["best"] = (table["epoch"] == best["epoch"]).fillna(False).astype(bool)
    long = pd.concat(results, ignore_index=True)
    best_art = checkpoints[best["epoch"]]
    best.update(checkpoint=best_art.name, checkpoint_path=best_art.path,
                content_hash=best_art.manifest["content_hash"], method=method, epochs=cfg.epochs,
                attacks=inp.attacks, skipped=inp.skipped, reproduce=f"unlearn.epochs={best['epoch']}")
    best_cfg = cfg.model_dump(mode="json")
    best_cfg["unlearn"]["epochs"] = best["epoch"]
    samples = per_sample_table(sets.ids(), sets.labels(), per_epoch[best["epoch"]])
    result_art = store.put(RESULT_KIND, method, {
        "result.json": best, "epochs.parquet": table, "epochs.csv": table, "results.parquet": long,
        "results.csv": long, "best_scores.parquet": samples,
        "best_config.yaml": yaml.safe_dump(best_cfg, sort_keys=False)},
        config=cfg.model_dump(mode="json"), replace=True, repair=rebuild, identity=inp.identity,
        best_epoch=best["epoch"])
    where = [f"checkpoints: {store.fs.join(KIND, method)} (epoch-0001 .. epoch-{cfg.epochs:04d})",
             f"best checkpoint: {best_art.path}",
             f"per-epoch table: {result_art.path}/epochs.csv (and epochs.parquet)",
             f"result: {result_art.path}/result.json (best_config.yaml reproduces it)"]
    notes = [f"method {method} ({cfg.unlearn.lr:g} lr, batch {cfg.unlearn.batch_size}, {cfg.epochs} epochs"
             f"{', LoRA' if cfg.unlearn.lora else ''}); model {cfg.model}; retain model {cfg.retain_model or '-'}",
             f"sets: forget {len(sets.forget)}, retain {len(sets.retain) if sets.retain else 0}, held-out "
             f"{len(sets.heldout) if sets.heldout else 0}" + (" (prompt/answer: answer tokens scored)"
                                                              if sets.forget.qa else ""),
             "attacks: " + ", ".join(inp.attacks) + ("; skipped: " + ", ".join(f"{a} ({w})" for a, w in
                                                                               inp.skipped.items())
                                                      if inp.skipped else "")
             + ("" if cfg.retain_model else " (IAM-On, LiRA-On and RMIA-On need a retain model: retain_model=)"),
             "utility drop = percent increase of " + ("held-out" if "heldout_ppl" in table.columns else "retain")
             + " perplexity over the original model"]
    files = report_files(table, best, per_epoch[best["epoch"]], sets, inp.attacks,
                         title=f"expunge llm-unlearn: {method}", notes=notes, where=where)
    report_art = store.put(REPORT_KIND, method, files, config=cfg.model_dump(mode="json"), replace=True, repair=rebuild)
    shown = [c for c in ("model", "step", "forget_loss", "retain_ppl", "heldout_ppl", "utility_drop_pct",
                         "forget_answer_prob", "loss_binui_auc", "loss_forget_vs_heldout_auc", "objective", "best")
             if c in table.columns]
    printed = table[shown].copy()
    printed["step"] = ["-" if pd.isna(v) else str(int(v)) for v in printed["step"]]  # the retain model has none
    print("\n" + fmt_table(printed) + "\n", flush=True)
    print(f"best: {best['why']}")
    for line in where + [f"report: {report_art.path}/report.html (report.md, figures)"]:
        print(line)
    return {"table": table, "results": long, "best": best, "result_path": result_art.path,
            "report_path": report_art.path, "checkpoints": {e: a.path for e, a in checkpoints.items()}}
