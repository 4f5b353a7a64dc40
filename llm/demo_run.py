"""The embedded LLM unlearning benchmark, as steps. ``expunge llm-demo`` (:mod:`expunge.jobs.llm_demo`)
calls :func:`run_llm_demo`.

With nothing downloaded, on the offline miniature of TOFU (:func:`expunge.llm.tofu.make_mini_tofu`):

1. generate the benchmark: fictitious authors' QA pairs, each with a paraphrased and perturbed
   answers; ``forget_fraction`` of the trained authors form the forget set (10% = TOFU's forget10),
   the others the retain set; ``n_heldout_authors`` further authors that no model trains on are the
   non-members, ``n_population_authors`` more are RMIA-On's population; world-fact sentences and
   CPython's documentation text are the general training text (:func:`make_run`);
2. pre-train a tiny byte-level GPT-2 (:func:`expunge.llm.models.tiny_gpt2`) on the general text and
   the world facts: the **base** model (:func:`train_base`);
3. fine-tune two copies of the base for ``finetune_epochs`` epochs on QA texts, as TOFU fine-tunes a
   pretrained model: the **original** on every trained author (keeping ``scoreui_checkpoints``
   intermediate checkpoints) and the **retain** model on the retain authors only, the gold standard
   (:func:`train_finetuned`); a few epochs, so memorisation is partial;
4. unlearn the forget authors from the original with each of ``methods`` (NPO and GradDiff) through
   ``llm-unlearn`` (:func:`expunge.llm.unlearn_run.run_llm_unlearn`): one stored and audited
   checkpoint per epoch, the epoch closest to the retain model chosen (:func:`unlearn`);
5. audit the original, the retain model and each method's chosen epoch (:func:`run_audits`): every
   attack's AUC with a class-balanced bootstrap interval and TPR at 1% FPR on three tasks, BinUI
   (retain authors vs forget authors), member vs non-member (retain authors vs held-out authors) and
   forget vs held-out; TOFU's QA metrics (answer probability, ROUGE-L, truth ratio, forget quality,
   model utility) and MUSE's privleak (:func:`model_table`); ScoreUI over the original's fine-tuning
   checkpoints (:func:`scoreui`);
6. print the attack table, ranked, and the model table, and store the report (Markdown, HTML, CSV,
   parquet, ROC plots) in ``<out>/llm_demo/report`` (:func:`write_report`).

Roles (the IAM paper's LLM protocol, as in ``llm-unlearn``): fit (IN) = the original, reference
(OUT) = the retain model. An attack that needs the fit model is n/a on the original (its own fit
model), one that needs the reference is n/a on the retain model (its own reference).

Sizes (``size=``; ``--size`` in the job), each a preset of the settings below that ``key=value``
overrides still change: ``cpu`` (the default, a few minutes on two cores), ``tiny`` (seconds, for
tests) and ``gpu`` (one GPU: an 8-layer GPT-2 on 200 authors, :data:`SIZES`).

Every model goes through ``save_pretrained`` into the artifact store (``<out>/llm_models/<key>``) and
is read back with ``from_pretrained`` (a probe's logits are compared: :func:`check_roundtrip`). A rerun
with the same settings reuses the stored models, the unlearning checkpoints and the cached log-probs;
different settings in the same ``out`` are refused unless ``rebuild``.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from expunge.resolve import load_config


def log(msg: str) -> None:
    """Print a progress line to stderr."""
    print(msg, file=sys.stderr, flush=True)


#: the attacks of the demo (``lowercase`` needs a lowercased pass, which QA answers do not get)
DEMO_ATTACKS = ("loss", "zlib", "mink", "minkpp", "minkpp_unweighted", "ratio", "lira_online", "rmia_online",
                "iam_online")
MVN = "member_vs_nonmember"
TASK_SHORT = {"retained_vs_unlearned": "BinUI", MVN: "MvN", "unlearned_vs_nonmember": "forget vs held-out"}
MODEL_SHOWN = ["model", "epoch", "forget_quality", "model_utility", "privleak", "forget_prob", "forget_rouge",
               "forget_truth_ratio", "retain_prob", "retain_rouge", "world_prob", "world_rouge", "general_ppl"]
#: presets per size; ``cpu`` is the fields' defaults
SIZES: dict[str, dict[str, Any]] = {
    "cpu": {},
    "tiny": {"n_authors": 20, "n_heldout_authors": 2, "n_population_authors": 2, "n_perturbed": 2,
             "facts": ["birthplace", "birth_year", "genre", "award", "book1"], "passage_chars": 120,
             "max_passages": 40, "n_layer": 1, "n_embd": 32, "n_head": 2, "pretrain_steps": 20,
             "finetune_epochs": 2.0, "batch_size": 16, "scoreui_checkpoints": 1, "unlearn_epochs": 2,
             "n_boot": 20, "audit_max_samples": None, "qa_retain_samples": 10, "max_new_tokens": 8},
    "gpu": {"n_authors": 200, "n_heldout_authors": 20, "n_population_authors": 20, "passage_chars": 600,
            "max_passages": None, "n_layer": 8, "n_embd": 512, "n_head": 8, "pretrain_steps": 2000,
            "finetune_epochs": 5.0, "batch_size": 64, "lr": 1e-3, "unlearn_lr": 2e-5, "unlearn_epochs": 10,
            "unlearn_batch_size": 16, "n_boot": 1000, "audit_max_samples": None, "qa_retain_samples": 400,
            "max_new_tokens": 96, "device": "auto", "threads": None},
}


class LLMDemoConfig(BaseModel):
    """Every knob of the demo (``key=value`` overrides; ``size`` picks a preset of them)."""

    model_config = ConfigDict(extra="forbid")

    size: Literal["cpu", "tiny", "gpu"] = "cpu"
    out: str = "runs/llm_demo"
    seed: int = 0
    # benchmark (expunge.llm.tofu.make_mini_tofu)
    n_authors: int = Field(40, ge=4, description="trained authors (forget + retain)")
    forget_fraction: float = Field(0.1, gt=0, lt=1, description="0.1 = TOFU's forget10")
    n_heldout_authors: int = Field(10, ge=1, description="never-trained authors: the non-members")
    n_population_authors: int = Field(6, ge=1, description="never-trained authors: RMIA-On's population")
    facts: list[str] | None = Field(None, description="fact keys asked about (default: all 15)")
    n_perturbed: int = Field(5, ge=1, description="perturbed answers per question (TOFU: 5)")
    passage_chars: int = Field(150, ge=40, description="longest general-text passage, in characters")
    max_passages: int | None = Field(600, ge=2, description="general-text passages (None: every one)")
    world_repeats: int = Field(2, ge=1)
    # model and training
    n_layer: int = Field(2, ge=1)
    n_embd: int = Field(64, ge=8)
    n_head: int = Field(2, ge=1)
    pretrain_steps: int = Field(150, ge=1, description="base model steps on the general text")
    finetune_epochs: float = Field(7.0, gt=0, description="passes over the QA texts (original and retain model)")
    batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-3, gt=0)
    scoreui_checkpoints: int = Field(3, ge=0, description="intermediate checkpoints of the original (0: no ScoreUI)")
    device: str = Field("cpu", description="cpu, cuda, or auto (cuda when available)")
    # unlearning (llm-unlearn)
    methods: list[str] = Field(default_factory=lambda: ["npo", "grad_diff"], min_length=1)
    unlearn_lr: float = Field(1e-4, gt=0, description="AdamW learning rate of the unlearning")
    unlearn_epochs: int = Field(5, ge=1, description="one audited checkpoint each")
    unlearn_batch_size: int = Field(8, ge=1)
    beta: float = Field(0.1, gt=0, description="NPO's beta")
    alpha: float = Field(1.0, ge=0, description="weight of the retain NLL term")
    # audit
    attacks: list[str] = Field(default_factory=lambda: list(DEMO_ATTACKS), min_length=1)
    n_boot: int = Field(200, ge=0)
    audit_max_samples: int | None = Field(150, ge=2, description="first N items of each audited set")
    qa_retain_samples: int | None = Field(60, ge=1, description="retain questions of the QA metrics")
    max_new_tokens: int = Field(64, ge=1, description="greedy answer length (ROUGE)")
    threads: int | None = Field(1, ge=1, description="torch CPU threads in this process (None: torch's default); "
                                "1 is robust when other processes share the CPU")

    @model_validator(mode="before")
    @classmethod
    def _size_defaults(cls, data: Any) -> Any:
        # a key the caller sets always wins over the size's preset
        if isinstance(data, dict) and str(data.get("size", "cpu")) in SIZES:
            data = {**SIZES[str(data.get("size", "cpu"))], **data}
        return data


@dataclass
class DemoRun:
    """What every step of one run shares: settings, store, benchmark, tokenizer, device and timings."""

    cfg: LLMDemoConfig
    rebuild: bool
    store: Any
    bench: Any
    heldout: tuple[Any, ...]
    population: tuple[Any, ...]
    retain_order: tuple[Any, ...]
    tok: Any
    max_len: int
    device: str
    timings: dict[str, float] = field(default_factory=dict)

    def probe_logits(self, model: torch.nn.Module) -> np.ndarray:
        """The model's logits on the first forget QA text (compared after the Hugging Face round trip)."""
        ids = torch.tensor([self.tok.encode(self.bench.forget[0].text)], device=next(model.parameters()).device)
        with torch.no_grad():
            return model(ids).logits[0].float().cpu().numpy()

    def put(self, key: str, model: torch.nn.Module, config: dict[str, Any]):
        """Store a model with ``save_pretrained`` under ``llm_models/<key>``, with its probe logits."""
        from expunge.llm.artifacts import save_lm

        return save_lm(self.store, key, model, self.tok, config=config, replace=True, repair=self.rebuild,
                       extra_files={"probe_logits.npy": self.probe_logits(model)})

    def stored(self, key: str, config: dict[str, Any]):
        """The stored model ``key`` made with ``config``, or None (always None when rebuilding)."""
        from expunge.llm.artifacts import KIND

        return None if self.rebuild else self.store.get(KIND, key, expect={"config": config})


@dataclass
class Models:
    """The stored models: base, original (and its checkpoints by step), retain; ``fresh`` when trained now."""

    base: Any
    original: Any
    retain: Any
    checkpoints: dict[int, Any]
    steps: int
    fresh: bool


@dataclass
class DemoAudits:
    """Every audited model's attack results (long), per-sample scores and QA split scores."""

    results: pd.DataFrame
    scores: dict[str, dict[str, np.ndarray]]
    qa: dict[str, dict[str, Any]]
    general_ppl: dict[str, float]
    labels: np.ndarray
    ids: list[str]
    scoreui: pd.DataFrame | None


# --- the whole run -----------------------------------------------------------------------------
def run_llm_demo(overrides: list[str] | tuple[str, ...] = (), rebuild: bool = False, use_ray: bool = True,
                 cfg: LLMDemoConfig | None = None) -> dict[str, Any]:
    """Run the demo (module docstring); returns the tables, timings and paths."""
    from expunge.llm.train import torch_threads

    cfg = cfg or load_config(None, list(overrides), model=LLMDemoConfig)
    with torch_threads(cfg.threads):
        return _run(cfg, rebuild, use_ray)


def _run(cfg: LLMDemoConfig, rebuild: bool, use_ray: bool) -> dict[str, Any]:
    """Every step in order: check, benchmark, models, round trip, unlearning, audits, report."""
    check_settings(cfg)
    t_start, cpu_start = time.perf_counter(), time.process_time()
    run = make_run(cfg, rebuild)
    models = train_models(run)
    roundtrip = check_roundtrip(run, [models.base, models.original, models.retain])
    files = write_sets(run)
    unlearned = unlearn(run, files, models, use_ray)
    audits = run_audits(run, files, models, unlearned)
    run.timings["total_s"] = time.perf_counter() - t_start
    run.timings["cpu_s"] = time.process_time() - cpu_start
    return write_report(run, audits, models, unlearned, roundtrip)


def check_settings(cfg: LLMDemoConfig) -> None:
    """Refuse bad settings before any compute: the head split, the methods and the attacks."""
    from expunge.errors import ConfigError
    from expunge.llm.attacks import resolve_attacks
    from expunge.llm.unlearn import make_config

    if cfg.n_embd % cfg.n_head:
        raise ConfigError(f"n_embd={cfg.n_embd} must be divisible by n_head={cfg.n_head}")
    for m in cfg.methods:
        make_config(method=m, lr=cfg.unlearn_lr, epochs=cfg.unlearn_epochs, batch_size=cfg.unlearn_batch_size,
                    beta=cfg.beta, alpha=cfg.alpha, seed=cfg.seed)
    if len(set(cfg.methods)) != len(cfg.methods):
        raise ConfigError(f"methods: each method once, got {cfg.methods}")
    resolve_attacks(cfg.attacks, {"fit", "reference", "population"}, strict=True)


def resolve_device(device: str) -> str:
    """``auto``: cuda when available, else cpu."""
    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


def make_bench(cfg: LLMDemoConfig) -> tuple[Any, tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]:
    """The benchmark, its unseen authors' QA split into held-out and population, the retain QA shuffled."""
    from expunge.llm.tofu import make_mini_tofu

    bench = make_mini_tofu(cfg.n_authors, forget_fraction=cfg.forget_fraction,
                           n_holdout=cfg.n_heldout_authors + cfg.n_population_authors, n_perturbed=cfg.n_perturbed,
                           facts=cfg.facts, world_repeats=cfg.world_repeats, passage_chars=cfg.passage_chars,
                           max_passages=cfg.max_passages, seed=cfg.seed)
    first = set(sorted({p.author for p in bench.holdout})[:cfg.n_heldout_authors])
    heldout = tuple(p for p in bench.holdout if p.author in first)
    population = tuple(p for p in bench.holdout if p.author not in first)
    order = list(bench.retain)
    random.Random(f"llm-demo:{cfg.seed}:retain-order").shuffle(order)
    return bench, heldout, population, tuple(order)


def sequence_limit(cfg: LLMDemoConfig, bench: Any) -> int:
    """The model's context in tokens: the longest training text, scored QA pair or prompt + answer."""
    qa = [*bench.forget, *bench.retain, *bench.holdout, *bench.world]
    longest_answer = [max(len(a.encode()) for a in (p.answer, p.paraphrased_answer or "", *p.perturbed_answers))
                      for p in qa]
    pairs = max(len(p.prompt.encode()) + 1 + a for p, a in zip(qa, longest_answer))
    prompts = max(len(p.prompt.encode()) for p in qa) + cfg.max_new_tokens
    texts = max(len(t.encode()) for t in [*bench.general_train, *bench.general_heldout, *bench.world_text])
    return max(pairs, prompts, texts) + 2


def make_run(cfg: LLMDemoConfig, rebuild: bool) -> DemoRun:
    """Open the store, generate the benchmark (logged) and the byte tokenizer."""
    from expunge.llm.models import byte_tokenizer
    from expunge.store import Store

    bench, heldout, population, order = make_bench(cfg)
    run = DemoRun(cfg, rebuild, Store(cfg.out), bench, heldout, population, order, byte_tokenizer(),
                  sequence_limit(cfg, bench), resolve_device(cfg.device))
    n_forget = len({p.author for p in bench.forget})
    log(f"mini-TOFU: {cfg.n_authors} trained authors ({n_forget} forgotten: {len(bench.forget)} QA; retain "
        f"{len(bench.retain)} QA), {cfg.n_heldout_authors} held-out authors ({len(heldout)} QA), "
        f"{cfg.n_population_authors} population authors ({len(population)} QA); {len(bench.world)} world facts; "
        f"{len(bench.general_train)} + {len(bench.general_heldout)} general passages (train + held out)")
    log(f"  e.g. {bench.forget[0].text!r}\n  e.g. general text: {bench.general_train[0][:70]!r}...")
    return run


# --- training ----------------------------------------------------------------------------------
def model_configs(run: DemoRun) -> dict[str, dict[str, Any]]:
    """The settings recorded with the base, original and retain models (what a rerun must match)."""
    cfg = run.cfg
    bench = {k: getattr(cfg, k) for k in ("seed", "n_authors", "forget_fraction", "n_heldout_authors",
                                          "n_population_authors", "facts", "n_perturbed", "passage_chars",
                                          "max_passages", "world_repeats")}
    arch = {"n_layer": cfg.n_layer, "n_embd": cfg.n_embd, "n_head": cfg.n_head, "n_positions": run.max_len}
    base = {"benchmark": bench, "arch": arch, "steps": cfg.pretrain_steps, "batch_size": cfg.batch_size, "lr": cfg.lr}
    ft = {"finetune_epochs": cfg.finetune_epochs, "batch_size": cfg.batch_size, "lr": cfg.lr}
    return {"base": base, "original": {**ft, "scoreui_checkpoints": cfg.scoreui_checkpoints}, "retain": ft}


def new_model(run: DemoRun) -> torch.nn.Module:
    """A randomly initialised tiny GPT-2 of the configured size, on the run's device."""
    from expunge.llm.models import tiny_gpt2

    cfg = run.cfg
    model, _ = tiny_gpt2(cfg.n_layer, cfg.n_embd, cfg.n_head, n_positions=run.max_len, seed=cfg.seed)
    return model.to(run.device)


def train_base(run: DemoRun, base_cfg: dict[str, Any]) -> tuple[Any, torch.nn.Module | None]:
    """Pre-train the base model on the general text and world facts, or reuse the stored one."""
    from expunge.llm.train import train_lm

    cfg, bench = run.cfg, run.bench
    art = run.stored("base", base_cfg)
    if art is not None:
        log("base model: reusing the stored one")
        return art, None
    texts = list(bench.general_train) + list(bench.world_text)
    model = new_model(run)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"pre-training the base model (GPT-2 {cfg.n_layer} layers x {cfg.n_embd}, {n_params:,} parameters) on "
        f"{len(texts)} general-text passages and world facts ({cfg.pretrain_steps} steps, batch {cfg.batch_size})")
    losses = train_lm(model, run.tok, texts, steps=cfg.pretrain_steps, batch_size=cfg.batch_size, lr=cfg.lr,
                      seed=cfg.seed)
    log(f"  loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    return run.put("base", model, base_cfg), model


def finetune_steps(cfg: LLMDemoConfig, n_texts: int) -> int:
    """Steps of ``finetune_epochs`` passes over ``n_texts`` texts in batches of ``batch_size``."""
    return max(1, math.ceil(cfg.finetune_epochs * n_texts / cfg.batch_size))


def checkpoint_keys(cfg: LLMDemoConfig, steps: int) -> dict[int, str]:
    """The fine-tuning steps of the original kept as ScoreUI checkpoints, and their keys in the store."""
    n_ck = cfg.scoreui_checkpoints
    ck_steps = sorted({max(1, round(steps * k / (n_ck + 1))) for k in range(1, n_ck + 1)})
    return {s: f"original-step-{s:06d}" for s in ck_steps if s < steps}


def train_finetuned(run: DemoRun, key: str, texts: list[str], config: dict[str, Any], base: Any,
                    base_model: torch.nn.Module | None, ck_keys: dict[int, str]) -> tuple[Any, bool]:
    """Fine-tune a copy of the base on ``texts`` (storing checkpoints) or reuse it; (artifact, trained now)."""
    from expunge.llm.artifacts import hf_dir
    from expunge.llm.models import load_causal_lm
    from expunge.llm.train import train_lm

    cfg = run.cfg
    config = {**config, "base": base.manifest["content_hash"]}
    art = None if base_model is not None else run.stored(key, config)
    if art is not None and all(run.stored(k, {**config, "checkpoint_step": s}) is not None
                               for s, k in ck_keys.items()):
        log(f"{key} model: reusing the stored one")
        return art, False
    model = copy.deepcopy(base_model) if base_model is not None else \
        load_causal_lm(hf_dir(base), device=run.device)[0]
    steps = finetune_steps(cfg, len(texts))
    log(f"fine-tuning the {key} model on {len(texts)} QA texts ({cfg.finetune_epochs:g} epochs = {steps} steps"
        f"{f'; checkpoints at steps {list(ck_keys)}' if ck_keys else ''})")

    def on_step(step: int, loss: float) -> None:
        if step in ck_keys:
            run.put(ck_keys[step], model, {**config, "checkpoint_step": step})

    losses = train_lm(model, run.tok, texts, steps=steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed + 1,
                      on_step=on_step)
    log(f"  loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    return run.put(key, model, config), True


def train_models(run: DemoRun) -> Models:
    """The base, the original (with its checkpoints) and the retain model, trained or reused."""
    from expunge.llm.artifacts import KIND

    t0 = time.perf_counter()
    cfgs = model_configs(run)
    base, base_model = train_base(run, cfgs["base"])
    run.timings["pretrain_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bench = run.bench
    orig_texts = [p.text for p in (*bench.forget, *bench.retain)]
    steps = finetune_steps(run.cfg, len(orig_texts))
    ck_keys = checkpoint_keys(run.cfg, steps)
    original, fresh_o = train_finetuned(run, "original", orig_texts, cfgs["original"], base, base_model, ck_keys)
    retain, fresh_r = train_finetuned(run, "retain", [p.text for p in bench.retain], cfgs["retain"], base,
                                      base_model, {})
    run.timings["finetune_s"] = time.perf_counter() - t0
    cks = {s: run.store.get(KIND, k) for s, k in ck_keys.items()}
    return Models(base, original, retain, cks, steps, base_model is not None or fresh_o or fresh_r)


def check_roundtrip(run: DemoRun, arts: list[Any]) -> float:
    """Reload the stored models with ``from_pretrained``; their probe logits must match the saved ones."""
    from expunge.llm.artifacts import hf_dir
    from expunge.llm.models import load_causal_lm

    diffs = []
    for art in arts:
        m, _ = load_causal_lm(hf_dir(art), device=run.device)  # hash-checked, then from_pretrained
        diffs.append(float(np.abs(run.probe_logits(m) - art.read("probe_logits.npy")).max()))
    roundtrip = max(diffs)
    log(f"save_pretrained -> from_pretrained round trip: max |logit difference| = {roundtrip:.2e}")
    if roundtrip > 1e-4:
        raise RuntimeError(f"the Hugging Face round trip changed the logits by {roundtrip}")
    return roundtrip


# --- unlearning through llm-unlearn ------------------------------------------------------------
def write_sets(run: DemoRun) -> dict[str, str]:
    """The four QA sets as JSON lines (id, prompt, answer) in ``llm_demo/data``; their local paths."""
    def jsonl(pairs: Any) -> str:
        return "".join(json.dumps({"id": p.id, "prompt": p.prompt, "answer": " " + p.answer}) + "\n" for p in pairs)

    sets = {"forget": run.bench.forget, "retain": run.retain_order, "heldout": run.heldout,
            "population": run.population}
    files = {f"{role}.jsonl": jsonl(pairs) for role, pairs in sets.items()}
    art = run.store.put("llm_demo", "data", files, replace=True, repair=run.rebuild,
                        config=model_configs(run)["base"]["benchmark"])
    return {role: f"{art.path}/{role}.jsonl" for role in sets}


def unlearn_config(run: DemoRun, method: str, files: dict[str, str], models: Models) -> Any:
    """The ``llm-unlearn`` config of one method, choosing the epoch closest to the retain model."""
    from expunge.llm.artifacts import hf_dir
    from expunge.llm.unlearn_run import LLMUnlearnJobConfig

    cfg = run.cfg
    return LLMUnlearnJobConfig(
        name="unlearn", storage=cfg.out, model=hf_dir(models.original), retain_model=hf_dir(models.retain),
        forget=files["forget"], retain=files["retain"], heldout=files["heldout"], population=files["population"],
        device=run.device,
        data={"format": "qa", "question_column": "prompt", "answer_column": "answer", "id_column": "id"},
        unlearn={"method": method, "lr": cfg.unlearn_lr, "epochs": cfg.unlearn_epochs,
                 "batch_size": cfg.unlearn_batch_size, "beta": cfg.beta, "alpha": cfg.alpha, "seed": cfg.seed},
        audit={"attacks": list(cfg.attacks), "n_boot": cfg.n_boot, "max_samples": cfg.audit_max_samples},
        select={"objective": "retain"})


def unlearn(run: DemoRun, files: dict[str, str], models: Models, use_ray: bool) -> dict[str, dict[str, Any]]:
    """Run ``llm-unlearn`` for every method (its tables to stderr, rebuilt after new models); results."""
    from expunge.llm.unlearn_run import run_llm_unlearn

    t0 = time.perf_counter()
    out = {}
    for method in run.cfg.methods:
        log(f"unlearning the forget authors with {method} through llm-unlearn "
            f"({run.cfg.unlearn_epochs} epochs, lr {run.cfg.unlearn_lr:g}){' on Ray' if use_ray else ''}")
        ucfg = unlearn_config(run, method, files, models)
        with contextlib.redirect_stdout(sys.stderr):
            out[method] = run_llm_unlearn(ucfg, rebuild=run.rebuild or (models.fresh and _has_epochs(ucfg)),
                                          use_ray=use_ray)
    run.timings["unlearn_s"] = time.perf_counter() - t0
    return out


def _has_epochs(ucfg: Any) -> bool:
    """Whether ``llm-unlearn`` has stored epochs of this method (of models now replaced: to rebuild)."""
    from expunge.llm.unlearn_run import KIND, checkpoint_key
    from expunge.store import Store

    return Store(ucfg.run_dir).exists(KIND, checkpoint_key(ucfg.unlearn.method, 1))


# --- the audit ---------------------------------------------------------------------------------
def degenerate(attack: str, model: str) -> bool:
    """Whether ``attack`` is n/a on ``model``: the original is its own fit, the retain model its own reference."""
    from expunge.llm.attacks import ATTACKS

    needs = ATTACKS.get(attack).needs
    return (model == "original" and "fit" in needs) or (model == "retain" and "reference" in needs)


def audit_handles(run: DemoRun, inp: Any, models: Models, unlearned: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Cache handles of the audited models: original, retain and each method's chosen epoch."""
    from expunge.llm.unlearn_audit import ModelHandle
    from expunge.llm.unlearn_run import fixed_models

    fixed = fixed_models(inp)
    out = {"original": fixed["original"], "retain": fixed["retain model"]}
    for method, res in unlearned.items():
        best = res["best"]
        out[method] = ModelHandle(f"{method} epoch {best['epoch']}", best["content_hash"], inp.tokenizer,
                                  path=best["checkpoint_path"], device=inp.device)
    return out


def qa_splits(run: DemoRun) -> dict[str, tuple[Any, ...]]:
    """The QA metrics' splits: forget authors, the first retain questions, world facts (held out)."""
    n = run.cfg.qa_retain_samples
    return {"forget": run.bench.forget, "retain": run.retain_order[:n] if n else run.retain_order,
            "heldout": run.bench.world}


def qa_scores(run: DemoRun, handle: Any, cache: Any) -> dict[str, Any]:
    """One model's QA split scores: cached answer passes and greedy answers for ROUGE."""
    from expunge.llm.qa_scoring import score_qa_split

    model = handle.get()
    return {name: score_qa_split(model, handle.tokenizer, pairs, cache=cache, model_key=handle.key,
                                 max_new_tokens=run.cfg.max_new_tokens, label=f"{handle.name}:qa-{name}")
            for name, pairs in qa_splits(run).items()}


def general_ppl(run: DemoRun, handle: Any, cache: Any) -> float:
    """Perplexity of the held-out general-text passages (CPython's documentation) under one model."""
    from expunge.llm.data import text_set
    from expunge.llm.unlearn_audit import perplexity

    texts = list(run.bench.general_heldout)
    data = text_set(texts, ids=[f"general-{i}" for i in range(len(texts))], source="mini-TOFU held-out general text")
    return perplexity(cache.scores(handle.get(), handle.tokenizer, data, model_key=handle.key,
                                   label=f"{handle.name}:general"))


def attack_scores(run: DemoRun, inp: Any, target: dict[str, Any], fixed: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every attack's per-sample scores of one model (fit = original, reference = retain model)."""
    from expunge.llm.unlearn_audit import audit_model
    from expunge.llm.unlearn_run import attack_params

    return audit_model(target, fixed["original"], fixed["retain"], inp.sets, inp.attacks, attack_params(inp.cfg),
                       0, run.cfg.seed)["scores"]


def evaluate_model(run: DemoRun, inp: Any, name: str, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """AUC [bootstrap CI], TPR at low FPR of every attack that applies to ``name``, on the three tasks."""
    from expunge.llm.evaluate import evaluate_scores

    kept = {a: s for a, s in scores.items() if not degenerate(a, name)}
    res = evaluate_scores(kept, inp.sets.labels(), tasks=list(TASK_SHORT), n_boot=run.cfg.n_boot, seed=run.cfg.seed)
    return res.assign(model=name)


def run_audits(run: DemoRun, files: dict[str, str], models: Models, unlearned: dict[str, dict[str, Any]]) -> DemoAudits:
    """Score (cached), attack and evaluate every model, its QA splits, and ScoreUI over the checkpoints."""
    from expunge.llm.scoring import LogProbCache, ScoringSettings
    from expunge.llm.unlearn_audit import SplitScorer
    from expunge.llm.unlearn_run import check_inputs
    from expunge.store import Store

    t0 = time.perf_counter()
    inp = check_inputs(unlearn_config(run, run.cfg.methods[0], files, models))
    scorer = SplitScorer(LogProbCache(Store(inp.cfg.run_dir), rebuild=False), ScoringSettings(), log=log)
    handles = audit_handles(run, inp, models, unlearned)
    log(f"auditing {', '.join(h.name for h in handles.values())}: {len(inp.attacks)} attacks, QA metrics")
    fixed = {k: scorer.score_all(handles[k], inp.sets) for k in ("original", "retain")}
    scores, qa, ppl, results = {}, {}, {}, []
    for name, handle in handles.items():
        qa[name] = qa_scores(run, handle, scorer.cache)
        ppl[name] = general_ppl(run, handle, scorer.cache)
        scores[name] = attack_scores(run, inp, scorer.score_all(handle, inp.sets), fixed)
        results.append(evaluate_model(run, inp, name, scores[name]))
    sui = scoreui(run, inp, scorer, models, handles["original"], fixed)
    run.timings["audit_s"] = time.perf_counter() - t0
    return DemoAudits(pd.concat(results, ignore_index=True), scores, qa, ppl, inp.sets.labels(), inp.sets.ids(), sui)


def scoreui(run: DemoRun, inp: Any, scorer: Any, models: Models, original: Any,
            fixed: dict[str, Any]) -> pd.DataFrame | None:
    """ScoreUI over the original's fine-tuning (base 0, checkpoints step / steps, original 1), trained items."""
    from expunge.llm.artifacts import hf_dir
    from expunge.llm.evaluate import scoreui_table
    from expunge.llm.unlearn_audit import ModelHandle

    if not models.checkpoints:
        return None

    def handle(name: str, art: Any) -> Any:
        return ModelHandle(name, art.manifest["content_hash"], inp.tokenizer, path=hf_dir(art), device=inp.device)

    points = [(handle("base", models.base), 0.0)]
    points += [(handle(f"step {s}", a), s / models.steps) for s, a in sorted(models.checkpoints.items())]
    points.append((original, 1.0))
    trained = np.isin(inp.sets.labels(), ("member", "unlearned"))
    per: dict[str, list[np.ndarray]] = {a: [] for a in inp.attacks}
    for h, _ in points:
        sc = attack_scores(run, inp, scorer.score_all(h, inp.sets), fixed)
        for a in inp.attacks:
            per[a].append(sc[a][trained])
    return scoreui_table({a: np.stack(v) for a, v in per.items()}, [f for _, f in points])


# --- tables ------------------------------------------------------------------------------------
def auc_of(results: pd.DataFrame, model: str, attack: str, task: str, col: str = "auc") -> float:
    """One number of the long results (NaN when absent)."""
    sel = results[(results["model"] == model) & (results["attack"] == attack) & (results["task"] == task)]
    return float(sel[col].iloc[0]) if len(sel) and col in sel and pd.notna(sel[col].iloc[0]) else float("nan")


def privleak_table(results: pd.DataFrame, models: list[str], attacks: list[str]) -> pd.DataFrame:
    """MUSE's privleak (%) of every attack that applies to the retain model: AUC gap to the retain model's."""
    from expunge.llm.qa_metrics import privleak

    task = "unlearned_vs_nonmember"
    rows = []
    for a in attacks:
        gold = auc_of(results, "retain", a, task)
        row: dict[str, Any] = {"attack": a}
        for m in models:
            auc = auc_of(results, m, a, task)
            row[m] = privleak(auc, gold) if np.isfinite(auc) and np.isfinite(gold) and gold < 1 else float("nan")
        rows.append(row)
    table = pd.DataFrame(rows)
    return table[table[models].notna().any(axis=1)].reset_index(drop=True)


def model_table(run: DemoRun, audits: DemoAudits, unlearned: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per model: TOFU's QA metrics and MUSE's privleak with Min-K% (loss when it is not run)."""
    from expunge.llm.qa_metrics import QAInputs, run_qa_metrics

    attack = "mink" if "mink" in run.cfg.attacks else "loss"
    gold_auc = auc_of(audits.results, "retain", attack, "unlearned_vs_nonmember")
    rows = []
    for name, qa in audits.qa.items():
        auc = auc_of(audits.results, name, attack, "unlearned_vs_nonmember")
        inp = QAInputs(forget=qa["forget"], retain=qa["retain"], heldout=qa["heldout"],
                       retain_model_forget=audits.qa["retain"]["forget"],
                       auc=auc if np.isfinite(auc) else None, auc_retain_model=gold_auc if gold_auc < 1 else None)
        values, _ = run_qa_metrics(inp)
        epoch = unlearned[name]["best"]["epoch"] if name in unlearned else None
        rows.append({"model": name, "epoch": epoch, **values, "general_ppl": audits.general_ppl[name]})
    table = pd.DataFrame(rows)
    table["epoch"] = table["epoch"].astype("Int64")
    return table.rename(columns={"privleak": f"privleak ({attack})", "heldout_prob": "world_prob",
                                 "heldout_rouge": "world_rouge", "heldout_truth_ratio": "world_truth_ratio"})


def models_shown(models: pd.DataFrame) -> pd.DataFrame:
    """The model table's printed columns (the CSV has them all); no epoch: "-"."""
    keep = [c for c in models.columns if c in MODEL_SHOWN or c.startswith("privleak")]
    out = models[sorted(keep, key=lambda c: MODEL_SHOWN.index(c) if c in MODEL_SHOWN else 4)].copy()
    out["epoch"] = ["-" if pd.isna(e) else str(int(e)) for e in out["epoch"]]
    return out


def headline_columns(methods: list[str]) -> list[tuple[str, str]]:
    """The printed table's (model, task) columns; the first method's BinUI ranks the attacks."""
    cols = [(m, t) for m in methods for t in ("retained_vs_unlearned", MVN)]
    return cols + [("retain", "retained_vs_unlearned"), ("original", MVN)]


def attack_table(run: DemoRun, audits: DemoAudits) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The attack table ranked by the first method's BinUI AUC: float values and printed strings."""
    res, methods = audits.results, run.cfg.methods
    order = sorted(run.cfg.attacks,
                   key=lambda a: -np.nan_to_num(auc_of(res, methods[0], a, "retained_vs_unlearned"), nan=-1.0))
    values, shown = pd.DataFrame({"attack": order}), pd.DataFrame({"attack": order})
    for m, t in headline_columns(methods):
        col = f"{m} {TASK_SHORT[t]}"
        for stat, src in (("AUC", "auc"), ("low", "auc_low"), ("high", "auc_high"), ("TPR@1%", "tpr@fpr=0.01")):
            values[f"{col} {stat}"] = [auc_of(res, m, a, t, src) for a in order]
        shown[col] = [_fmt_ci(*(values.loc[i, f"{col} {s}"] for s in ("AUC", "low", "high")))
                      for i in range(len(order))]
        if m in methods and t == "retained_vs_unlearned":
            shown[f"{m} BinUI TPR@1%"] = [_fmt(v) for v in values[f"{col} TPR@1%"]]
    if audits.scoreui is not None:
        sui = audits.scoreui.set_index("attack")["scoreui_spearman"].reindex(order).to_numpy()
        values["ScoreUI"] = sui
        shown["ScoreUI"] = [_fmt(v) for v in sui]
    return values, shown


def iam_verdict(values: pd.DataFrame, methods: list[str]) -> list[str]:
    """Whether IAM-On beats LiRA-On and RMIA-On on each method's BinUI AUC, with the numbers."""
    v = values.set_index("attack")
    out = []
    for m in methods:
        col = f"{m} BinUI AUC"
        if not {"iam_online", "lira_online", "rmia_online"} <= set(v.index):
            continue
        iam, lira, rmia = (float(v.loc[a, col]) for a in ("iam_online", "lira_online", "rmia_online"))
        beats = iam > max(lira, rmia)
        out.append(f"{m}: IAM-On BinUI AUC {iam:.3f} vs LiRA-On {lira:.3f} and RMIA-On {rmia:.3f}: IAM-On "
                   f"{'beats both' if beats else 'does not beat both'} here")
    return out


def constant_scores(audits: DemoAudits) -> list[str]:
    """The attacks whose scores tie on every sample of a model (their AUC is 0.5 by ties alone)."""
    out = [f"{a} on {m}" for m, sc in audits.scores.items() for a, s in sc.items()
           if not degenerate(a, m) and np.ptp(s) == 0]
    return [f"constant scores (every sample tied, AUC 0.5): {', '.join(out)}"] if out else []


def _fmt(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.3f}"


def _fmt_ci(auc: float, low: float, high: float) -> str:
    if not np.isfinite(auc):
        return "n/a"
    return f"{auc:.3f} [{low:.2f}, {high:.2f}]" if np.isfinite(low) else f"{auc:.3f}"


# --- the report --------------------------------------------------------------------------------
def roc_plots(run: DemoRun, audits: DemoAudits) -> dict[str, bytes]:
    """ROC plots: BinUI of each unlearned model, member vs non-member of the original."""
    from expunge.llm.evaluate import roc_png

    want = [(m, "retained_vs_unlearned") for m in run.cfg.methods] + [("original", MVN)]
    plots = {}
    for model, task in want:
        scores = {a: s for a, s in audits.scores[model].items() if not degenerate(a, model)}
        png = roc_png(scores, audits.labels, task, title=f"{model}: {TASK_SHORT[task]}")
        if png:
            plots[f"roc_{model}_{TASK_SHORT[task]}.png"] = png
    return plots


def report_notes(run: DemoRun, models: Models, unlearned: dict[str, dict[str, Any]], roundtrip: float) -> list[str]:
    """The report's setup notes: sizes, roles, chosen epochs, round trip and times."""
    cfg, t = run.cfg, run.timings
    n_params = models.base.manifest.get("n_params")
    return [
        (f"Size {cfg.size}: byte-level GPT-2, {cfg.n_layer} layers x {cfg.n_embd} ({n_params:,} parameters), "
         f"pre-trained {cfg.pretrain_steps} steps on general text, fine-tuned {cfg.finetune_epochs:g} epochs on the QA "
         f"of {cfg.n_authors} authors (original) or of the retain authors only (retain model)."),
        ("Tasks: BinUI = retain authors (positive) vs forget authors; MvN = retain authors vs held-out authors; "
         "forget vs held-out = forget authors vs held-out authors. Fit (IN) = original, reference (OUT) = retain "
         "model: an attack needing the fit model is n/a on the original, one needing the reference n/a on the "
         "retain model."),
        "Chosen epochs (closest to the retain model, llm-unlearn): " + "; ".join(
            f"{m} epoch {r['best']['epoch']} of {cfg.unlearn_epochs}" for m, r in unlearned.items()),
        (f"Hugging Face round trip max |logit difference|: {roundtrip:.1e}. Wall time {t['total_s']:.0f} s, CPU time "
         f"of this process {t['cpu_s']:.0f} s (" + ", ".join(f"{k} {v:.0f}" for k, v in t.items()
                                                             if k not in ("total_s", "cpu_s")) + ")."),
    ]


def report_sections(run: DemoRun, tables: dict[str, pd.DataFrame], notes: list[str], verdict: list[str],
                    plots: dict[str, bytes], where: list[str]) -> list[Any]:
    """The report's sections: setup, attacks, models, privleak, ScoreUI, all results, ROC, paths."""
    from expunge.report.blocks import Bullets, Figure, Paragraph, Section, Table

    rank = f"{run.cfg.methods[0]} BinUI"
    secs = [Section("setup", "Setup", tuple(Paragraph(n) for n in notes)),
            Section("attacks", "Attacks, ranked", (
                Table(tables["shown"], caption=f"AUC [95% class-balanced bootstrap CI], ranked by {rank}; TPR at "
                                               "1% FPR on BinUI"), Bullets(tuple(verdict)))),
            Section("models", "Models: QA metrics", (Table(models_shown(tables["models"]), caption=(
                "forget quality = KS-test p-value of the forget truth ratios against the retain model's (TOFU); "
                "model utility = harmonic mean of retain and world-fact probability, ROUGE-L and truth ratio; "
                "general_ppl = perplexity (per byte) of held-out CPython documentation text")),)),
            Section("privleak", "Privleak per attack (%)", (Table(tables["privleak"], caption=(
                "MUSE's sign: negative = the forget authors still look more member-like than on the retain model; "
                "attacks needing the reference model are left out (the retain model is its own reference)")),))]
    if "scoreui" in tables:
        secs.append(Section("scoreui", "ScoreUI", (Table(tables["scoreui"]),)))
    secs += [Section("results", "Every model, attack and task", (Table(tables["results"]),)),
             Section("roc", "ROC curves", tuple(Figure(n, p, n[4:-4].replace("_", " ")) for n, p in plots.items())),
             Section("where", "Where everything is", (Bullets(tuple(where)),))]
    return secs


def where_lines(run: DemoRun, unlearned: dict[str, dict[str, Any]], path: str) -> list[str]:
    """Where the models, the unlearning runs, the cache and the report are."""
    from expunge.llm.artifacts import KIND

    out = [f"models: {run.store.fs.join(KIND)} (base, original, retain, original-step-*)"]
    out += [f"{m}: checkpoints {r['checkpoints'][r['best']['epoch']].rsplit('/', 1)[0]}, chosen epoch "
            f"{r['best']['epoch']}; report {r['report_path']}/report.html" for m, r in unlearned.items()]
    out += [f"log-prob cache: {run.store.fs.join('unlearn', 'llm_logprobs')}",
            f"report: {path}/report.md and report.html"]
    return out


def write_report(run: DemoRun, audits: DemoAudits, models: Models, unlearned: dict[str, dict[str, Any]],
                 roundtrip: float) -> dict[str, Any]:
    """Build the tables, store the report, print the tables and paths; returns tables, timings, path."""
    from expunge.llm.evaluate import fmt_table, per_sample_table
    from expunge.report.html import render_html
    from expunge.report.markdown import render_markdown

    cfg = run.cfg
    values, shown = attack_table(run, audits)
    verdict = iam_verdict(values, cfg.methods) + constant_scores(audits)
    tables = {"shown": shown, "models": model_table(run, audits, unlearned), "results": _results_shown(audits.results),
              "privleak": privleak_table(audits.results, ["original", *cfg.methods], cfg.attacks)}
    if audits.scoreui is not None:
        tables["scoreui"] = audits.scoreui
    plots = roc_plots(run, audits)
    path = run.store.path("llm_demo", "report")
    where = where_lines(run, unlearned, path)
    secs = report_sections(run, tables, report_notes(run, models, unlearned, roundtrip), verdict, plots, where)
    title, sub = "expunge llm-demo: unlearning on mini-TOFU", f"size {cfg.size}, seed {cfg.seed}"
    samples = per_sample_table(audits.ids, audits.labels, {f"{m}:{a}": s for m, sc in audits.scores.items()
                                                           for a, s in sc.items()})
    files = {"report.md": render_markdown(title, sub, secs), "report.html": render_html(title, sub, secs),
             "attack_table.csv": values, "models.csv": tables["models"], "results.csv": audits.results,
             "results.parquet": audits.results, "privleak.csv": tables["privleak"], "scores.parquet": samples,
             **({"scoreui.csv": audits.scoreui} if audits.scoreui is not None else {}), **plots}
    art = run.store.put("llm_demo", "report", files, replace=True, repair=run.rebuild, config=cfg.model_dump(),
                        timings=run.timings, roundtrip_max_abs_diff=roundtrip)
    print("\n" + fmt_table(shown) + "\n\n" + "\n".join(verdict) + "\n\n" + fmt_table(models_shown(tables["models"]))
          + "\n", flush=True)
    for line in where:
        log(line)
    log(f"done in {run.timings['total_s']:.1f} s (CPU {run.timings['cpu_s']:.1f} s)")
    return {"table": values, "shown": shown, "models": tables["models"], "results": audits.results,
            "privleak": tables["privleak"], "scoreui": audits.scoreui, "verdict": verdict, "timings": run.timings,
            "roundtrip": roundtrip, "path": art.path, "unlearned": {m: r["best"] for m, r in unlearned.items()}}


def _results_shown(results: pd.DataFrame) -> pd.DataFrame:
    """The long results for the report: model, attack, task, AUC [CI], TPR at 1% FPR."""
    out = results[["model", "attack", "task"]].copy()
    out["task"] = out["task"].map(TASK_SHORT)
    out["AUC [CI]"] = [_fmt_ci(r.auc, getattr(r, "auc_low", np.nan), getattr(r, "auc_high", np.nan))
                       for r in results.itertuples()]
    out["TPR@1%FPR"] = [_fmt(v) for v in results.get("tpr@fpr=0.01", pd.Series(np.nan, index=results.index))]
    return out


# --- the plan (--dry-run) ----------------------------------------------------------------------
def plan(cfg: LLMDemoConfig) -> dict[str, Any]:
    """What a run with ``cfg`` would do, training nothing (the model is built on the meta device)."""
    from expunge.llm.models import tiny_gpt2

    check_settings(cfg)
    bench, heldout, population, _ = make_bench(cfg)
    max_len = sequence_limit(cfg, bench)
    with torch.device("meta"):
        model, _ = tiny_gpt2(cfg.n_layer, cfg.n_embd, cfg.n_head, n_positions=max_len, seed=cfg.seed)
    n_qa = len(bench.forget) + len(bench.retain)
    return {
        "size": cfg.size, "device": resolve_device(cfg.device), "out": cfg.out,
        "model": {"n_layer": model.config.n_layer, "n_embd": model.config.n_embd, "n_head": model.config.n_head,
                  "n_positions": model.config.n_positions, "vocab_size": model.config.vocab_size,
                  "n_params": sum(p.numel() for p in model.parameters())},
        "benchmark": {"trained_authors": cfg.n_authors, "forget_authors": len({p.author for p in bench.forget}),
                      "forget_qa": len(bench.forget), "retain_qa": len(bench.retain), "heldout_qa": len(heldout),
                      "population_qa": len(population), "world_qa": len(bench.world),
                      "general_train_passages": len(bench.general_train),
                      "general_heldout_passages": len(bench.general_heldout)},
        "training": {"pretrain_steps": cfg.pretrain_steps, "original_steps": finetune_steps(cfg, n_qa),
                     "retain_steps": finetune_steps(cfg, len(bench.retain)), "batch_size": cfg.batch_size},
        "unlearning": {"methods": cfg.methods, "epochs": cfg.unlearn_epochs,
                       "steps_per_epoch": math.ceil(len(bench.forget) / cfg.unlearn_batch_size)},
        "audit": {"attacks": cfg.attacks, "n_boot": cfg.n_boot, "max_samples": cfg.audit_max_samples},
    }
