"""The embedded LLM unlearning audit, as steps. ``expunge llm-demo`` (:mod:`expunge.jobs.llm_demo`)
calls :func:`run_llm_demo`.

With nothing downloaded:

1. generate a corpus of template sentences and random word "canaries" (:mod:`expunge.llm.corpus`);
2. build a tiny byte-level GPT-2 from config and pre-train it on the corpus alone: the **reference**
   (OUT) model, which never sees a canary (:func:`train_reference`);
3. fine-tune a copy on the corpus plus the member canaries (each repeated ``repeats`` times): the
   **original** (fit / IN) model, keeping ``scoreui_checkpoints`` intermediate checkpoints
   (:func:`train_original`);
4. unlearn half of the member canaries with ``method`` (npo, ga or grad_diff): the **unlearned**
   model, on Ray unless ``use_ray=False`` (:func:`unlearn`);
5. audit: every attack on the original (members vs held-out canaries) and on the unlearned model
   (retained vs non-member, retained vs unlearned, unlearned vs non-member), ScoreUI over the
   checkpoints; scoring runs on Ray actors unless ``use_ray=False`` (:func:`run_audits`);
6. the AUC table and the report (markdown, CSV, parquet, ROC plots) in ``<out>/llm_demo/report``
   (:func:`write_report`).

Every model goes through ``save_pretrained`` into the artifact store (``<out>/llm_models/<key>``) and is
read back with ``from_pretrained`` (a probe's logits are compared, the round trip is printed:
:func:`check_roundtrip`). A rerun with the same settings reuses the stored models and cached
log-probs; different settings in the same ``out`` are refused unless ``rebuild``.
"""
from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from expunge.resolve import load_config


def log(msg: str) -> None:
    """Print a progress line to stderr."""
    print(msg, file=sys.stderr, flush=True)


class LLMDemoConfig(BaseModel):
    """Every knob of the demo (``key=value`` overrides)."""

    model_config = ConfigDict(extra="forbid")

    out: str = "runs/llm_demo"
    seed: int = 0
    # corpus
    n_docs: int = Field(2000, ge=10)
    n_canaries: int = Field(32, ge=4, description="member canaries (half are unlearned); as many held out")
    n_population: int = Field(64, ge=2)
    canary_words: int = Field(8, ge=2)
    doc_sentences: int = Field(2, ge=1, description="at most this many sentences per corpus document")
    repeats: int = Field(20, ge=1, description="copies of each member canary in the fine-tuning data")
    # model and training
    n_layer: int = Field(2, ge=1)
    n_embd: int = Field(64, ge=8)
    n_head: int = Field(2, ge=1)
    pretrain_steps: int = Field(200, ge=1)
    finetune_steps: int = Field(200, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-3, gt=0)
    scoreui_checkpoints: int = Field(3, ge=0, description="intermediate fine-tuning checkpoints (0: no ScoreUI)")
    # unlearning
    method: Literal["npo", "ga", "grad_diff"] = "npo"
    unlearn_lr: float = Field(1e-3, gt=0)
    unlearn_epochs: float = Field(20.0, gt=0)
    unlearn_batch_size: int = Field(8, ge=1)
    beta: float = Field(0.1, gt=0)
    retain_docs: int = Field(256, ge=0, description="corpus documents in the retain set (plus the retained canaries, repeated as in training)")
    lora: bool = False
    # audit
    n_boot: int = Field(200, ge=0)
    n_actors: int | None = Field(None, ge=1)
    threads: int | None = Field(1, ge=1, description="torch CPU threads in this process (None: torch's default); "
                                "1 is robust when other processes share the CPU")


COLUMNS = {"original:member_vs_nonmember": "original: member vs non-member",
           "unlearned:member_vs_nonmember": "unlearned: retained vs non-member",
           "unlearned:retained_vs_unlearned": "unlearned: retained vs unlearned (BinUI)",
           "unlearned:unlearned_vs_nonmember": "unlearned: unlearned vs non-member"}


@dataclass
class DemoRun:
    """What every step of one demo run shares: settings, store, corpus, tokenizer and timings."""

    cfg: LLMDemoConfig
    rebuild: bool
    store: Any
    corpus: Any
    tok: Any
    max_len: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def n_forget(self) -> int:
        """How many member canaries are unlearned (the first half)."""
        return self.cfg.n_canaries // 2

    def probe_logits(self, model: torch.nn.Module) -> np.ndarray:
        """The model's logits on the first member canary (compared after the Hugging Face round trip)."""
        with torch.no_grad():
            return model(torch.tensor([self.tok.encode(self.corpus.members[0])])).logits[0].float().numpy()

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
class DemoAudits:
    """The two audits' results and the labelled canaries they scored."""

    res_o: dict[str, Any]
    res_u: dict[str, Any]
    data_orig: Any
    data_unl: Any


def run_llm_demo(overrides: list[str] | tuple[str, ...] = (), rebuild: bool = False, use_ray: bool = True,
                 cfg: LLMDemoConfig | None = None) -> dict[str, Any]:
    """Run the demo (module docstring); returns the summary table, timings and paths."""
    from expunge.llm.train import torch_threads

    cfg = cfg or load_config(None, list(overrides), model=LLMDemoConfig)
    with torch_threads(cfg.threads):
        return _run(cfg, rebuild, use_ray)


def _run(cfg: LLMDemoConfig, rebuild: bool, use_ray: bool) -> dict[str, Any]:
    """Every step in order: check, corpus, reference, original, round trip, unlearning, audits, report."""
    ucfg = check_settings(cfg)
    t_start = time.perf_counter()
    run = make_run(cfg, rebuild)
    ref_cfg, orig_cfg = model_configs(run)
    ref_art, ref_model = train_reference(run, ref_cfg)
    orig_art, ck_keys, fresh_orig = train_original(run, orig_cfg, ref_art, ref_model)
    roundtrip = check_roundtrip(run, ref_art, orig_art)
    un_key, un_art = unlearn(run, ucfg, orig_art, fresh_orig, use_ray)
    audits = run_audits(run, ref_art, orig_art, un_key, un_art, ck_keys, use_ray)
    return write_report(run, audits, roundtrip, t_start, un_key, ck_keys)


def check_settings(cfg: LLMDemoConfig) -> Any:
    """Build the unlearning config and refuse bad settings before any training."""
    from expunge.errors import ConfigError
    from expunge.llm.unlearn import check_inputs, make_config

    ucfg = make_config(method=cfg.method, lr=cfg.unlearn_lr, epochs=cfg.unlearn_epochs,
                       batch_size=cfg.unlearn_batch_size, beta=cfg.beta, lora=cfg.lora, seed=cfg.seed)
    if cfg.n_embd % cfg.n_head:
        raise ConfigError(f"n_embd={cfg.n_embd} must be divisible by n_head={cfg.n_head}")
    check_inputs(ucfg, ["x"], ["x"])  # e.g. lora=true without peft: refused before any training
    return ucfg


def make_run(cfg: LLMDemoConfig, rebuild: bool) -> DemoRun:
    """Open the store, generate the corpus (logged) and the byte tokenizer."""
    from expunge.llm.corpus import make_corpus
    from expunge.llm.models import byte_tokenizer
    from expunge.store import Store

    store = Store(cfg.out)
    corpus = make_corpus(cfg.n_docs, cfg.n_canaries, cfg.n_canaries, cfg.n_population, cfg.canary_words, cfg.seed,
                         cfg.doc_sentences)
    n_forget = cfg.n_canaries // 2
    log(f"corpus: {len(corpus.docs)} documents; {cfg.n_canaries} member canaries x{cfg.repeats} "
        f"({n_forget} to unlearn), {cfg.n_canaries} held-out canaries, {cfg.n_population} population canaries")
    log(f"  e.g. document: {corpus.docs[0][:70]}...\n  e.g. canary:   {corpus.members[0]}")
    tok = byte_tokenizer()
    max_len = max(len(t) for t in [*corpus.docs, *corpus.members, *corpus.nonmembers, *corpus.population]) + 2
    return DemoRun(cfg, rebuild, store, corpus, tok, max_len)


def model_configs(run: DemoRun) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings recorded with the reference and the original model (what a rerun must match)."""
    cfg = run.cfg
    arch = {"n_layer": cfg.n_layer, "n_embd": cfg.n_embd, "n_head": cfg.n_head, "n_positions": run.max_len}
    corpus_cfg = {k: getattr(cfg, k) for k in ("seed", "n_docs", "n_canaries", "n_population", "canary_words",
                                               "doc_sentences")}
    ref_cfg = {"corpus": corpus_cfg, "arch": arch, "steps": cfg.pretrain_steps, "batch_size": cfg.batch_size,
               "lr": cfg.lr}
    orig_cfg: dict[str, Any] = {**ref_cfg, "finetune_steps": cfg.finetune_steps, "repeats": cfg.repeats,
                "scoreui_checkpoints": cfg.scoreui_checkpoints}
    return ref_cfg, orig_cfg


def train_reference(run: DemoRun, ref_cfg: dict[str, Any]) -> tuple[Any, torch.nn.Module | None]:
    """Pre-train the reference (OUT) model on the corpus alone, or reuse the stored one."""
    from expunge.llm.models import tiny_gpt2
    from expunge.llm.train import train_lm

    cfg, corpus = run.cfg, run.corpus
    t0 = time.perf_counter()
    ref_art = run.stored("reference", ref_cfg)
    ref_model = None
    if ref_art is None:
        log(f"pre-training the reference model on the corpus only ({cfg.pretrain_steps} steps, "
            f"GPT-2 {cfg.n_layer}x{cfg.n_embd}, batch {cfg.batch_size})")
        ref_model, _ = tiny_gpt2(cfg.n_layer, cfg.n_embd, cfg.n_head, n_positions=run.max_len, seed=cfg.seed)
        losses = train_lm(ref_model, run.tok, corpus.docs, steps=cfg.pretrain_steps, batch_size=cfg.batch_size,
                          lr=cfg.lr, seed=cfg.seed)
        log(f"  loss {losses[0]:.3f} -> {losses[-1]:.3f}")
        ref_art = run.put("reference", ref_model, ref_cfg)
    else:
        log("reference model: reusing the stored one")
    run.timings["pretrain_s"] = time.perf_counter() - t0
    return ref_art, ref_model


def checkpoint_keys(cfg: LLMDemoConfig) -> dict[int, str]:
    """The fine-tuning steps kept as ScoreUI checkpoints, and their keys in the store."""
    n_ck = cfg.scoreui_checkpoints
    ck_steps = sorted({max(1, round(cfg.finetune_steps * k / (n_ck + 1))) for k in range(1, n_ck + 1)})
    ck_steps = [s for s in ck_steps if s < cfg.finetune_steps]
    return {s: f"checkpoint-{s:06d}" for s in ck_steps}


def train_original(run: DemoRun, orig_cfg: dict[str, Any], ref_art: Any,
                   ref_model: torch.nn.Module | None) -> tuple[Any, dict[int, str], bool]:
    """Fine-tune the original (fit / IN) model and its checkpoints, or reuse the stored ones."""
    from expunge.llm.artifacts import hf_dir
    from expunge.llm.models import load_causal_lm
    from expunge.llm.train import train_lm

    cfg, corpus = run.cfg, run.corpus
    t0 = time.perf_counter()
    ck_keys = checkpoint_keys(cfg)
    orig_cfg = {**orig_cfg, "reference": ref_art.manifest["content_hash"]}
    orig_art = None if ref_model is not None else run.stored("original", orig_cfg)
    if orig_art is not None and any(run.stored(k, {**orig_cfg, "checkpoint_step": s}) is None
                                    for s, k in ck_keys.items()):
        orig_art = None
    if orig_art is None:
        model = copy.deepcopy(ref_model) if ref_model is not None else load_causal_lm(hf_dir(ref_art))[0]
        train_texts = corpus.docs + corpus.members * cfg.repeats
        log(f"fine-tuning the original model on the corpus + member canaries ({cfg.finetune_steps} steps, "
            f"{len(train_texts)} sequences; checkpoints at steps {list(ck_keys)})")

        def on_step(step: int, loss: float) -> None:
            if step in ck_keys:
                run.put(ck_keys[step], model, {**orig_cfg, "checkpoint_step": step})

        losses = train_lm(model, run.tok, train_texts, steps=cfg.finetune_steps, batch_size=cfg.batch_size,
                          lr=cfg.lr, seed=cfg.seed + 1, on_step=on_step)
        log(f"  loss {losses[0]:.3f} -> {losses[-1]:.3f}")
        orig_art = run.put("original", model, orig_cfg)
        fresh_orig = True
    else:
        fresh_orig = False
        log("original model and checkpoints: reusing the stored ones")
    run.timings["finetune_s"] = time.perf_counter() - t0
    return orig_art, ck_keys, fresh_orig


def check_roundtrip(run: DemoRun, ref_art: Any, orig_art: Any) -> float:
    """Reload both stored models with ``from_pretrained``; their probe logits must match the saved ones."""
    from expunge.llm.artifacts import hf_dir
    from expunge.llm.models import load_causal_lm

    diffs = []
    for art in (ref_art, orig_art):
        m, _ = load_causal_lm(hf_dir(art))  # hash-checked, then from_pretrained
        diffs.append(float(np.abs(run.probe_logits(m) - art.read("probe_logits.npy")).max()))
    roundtrip = max(diffs)
    log(f"save_pretrained -> from_pretrained round trip: max |logit difference| = {roundtrip:.2e}")
    if roundtrip > 1e-4:
        raise RuntimeError(f"the Hugging Face round trip changed the logits by {roundtrip}")
    return roundtrip


def unlearn(run: DemoRun, ucfg: Any, orig_art: Any, fresh_orig: bool, use_ray: bool) -> tuple[str, Any]:
    """Unlearn the first half of the member canaries from the original (a Ray task unless local), or
    reuse the stored unlearned model; returns its key and artifact."""
    from expunge.llm.artifacts import KIND, hf_dir
    from expunge.llm.parallel import unlearn_on_ray

    cfg, corpus, store = run.cfg, run.corpus, run.store
    t0 = time.perf_counter()
    forget, retained = corpus.members[:run.n_forget], corpus.members[run.n_forget:]
    retain = retained * cfg.repeats + corpus.docs[: cfg.retain_docs]
    un_key = f"unlearned-{cfg.method}"
    un_config = {"unlearn": ucfg.model_dump(), "original": orig_art.manifest["content_hash"],
                 "retain_docs": cfg.retain_docs}
    un_art = None if run.rebuild or fresh_orig else store.get(KIND, un_key)
    if un_art is not None and un_art.manifest.get("config") != _norm(un_config):
        un_art = None
    if un_art is None:
        log(f"unlearning {len(forget)} canaries with {cfg.method} (lr {cfg.unlearn_lr}, {cfg.unlearn_epochs} epochs, "
            f"retain set {len(retain)} sequences){' on Ray' if use_ray else ''}")
        res = unlearn_on_ray([{"model_path": hf_dir(orig_art), "forget": forget, "retain": retain,
                               "cfg": ucfg.model_dump(), "store_uri": cfg.out, "key": un_key, "replace": True,
                               "config_extra": {k: v for k, v in un_config.items() if k != "unlearn"}}],
                             use_ray=use_ray)[0]
        log(f"  {res['steps']} steps, loss {res['first_loss']:.3f} -> {res['last_loss']:.3f}")
        un_art = store.get(KIND, un_key)
    else:
        log(f"unlearned model: reusing the stored {un_key}")
    run.timings["unlearn_s"] = time.perf_counter() - t0
    return un_key, un_art


def audit_sets(corpus: Any, n_forget: int) -> tuple[Any, Any, Any]:
    """The population and the canaries labelled for the original and for the unlearned model."""
    from expunge.llm.data import text_set

    canaries = corpus.members + corpus.nonmembers
    ids = [f"member-{i}" for i in range(len(corpus.members))] + [f"nonmember-{i}" for i in range(len(corpus.nonmembers))]
    population = text_set(corpus.population, ids=[f"pop-{i}" for i in range(len(corpus.population))],
                          source="demo population")
    data_orig = text_set(canaries, ["member"] * len(corpus.members) + ["nonmember"] * len(corpus.nonmembers), ids,
                         source="demo canaries")
    data_unl = text_set(canaries, ["unlearned"] * n_forget + ["member"] * (len(corpus.members) - n_forget)
                        + ["nonmember"] * len(corpus.nonmembers), ids, source="demo canaries")
    return population, data_orig, data_unl


def run_audits(run: DemoRun, ref_art: Any, orig_art: Any, un_key: str, un_art: Any, ck_keys: dict[int, str],
               use_ray: bool) -> DemoAudits:
    """Audit the original (members vs held-out) and the unlearned model (fit = original, reference =
    pre-trained, ScoreUI over the checkpoints); scoring on Ray actors unless local."""
    from expunge.llm.artifacts import KIND, hf_dir
    from expunge.llm.audit import ModelRef, Scorer, audit_lm
    from expunge.llm.scoring import LogProbCache

    cfg, store = run.cfg, run.store
    t0 = time.perf_counter()
    scorer = Scorer(LogProbCache(store), use_ray=use_ray, n_actors=cfg.n_actors, log=log)
    ref = ModelRef("reference", hf_dir(ref_art))
    orig = ModelRef("original", hf_dir(orig_art))
    unl = ModelRef(un_key, hf_dir(un_art))
    population, data_orig, data_unl = audit_sets(run.corpus, run.n_forget)
    try:
        log("audit 1/2: the original model (members vs held-out canaries)")
        res_o = audit_lm(orig, data_orig, refs=[ref], population=population, scorer=scorer, n_boot=cfg.n_boot,
                         tasks=["member_vs_nonmember"], seed=cfg.seed)
        checkpoints = []
        if cfg.scoreui_checkpoints:
            checkpoints = [(ref, 0.0)] + [(ModelRef(k, hf_dir(store.get(KIND, k))), s / cfg.finetune_steps)
                                          for s, k in ck_keys.items()] + [(orig, 1.0)]
        log(f"audit 2/2: the unlearned model (fit = original, reference = pre-trained model"
            f"{f', ScoreUI over {len(checkpoints)} checkpoints' if checkpoints else ''})")
        res_u = audit_lm(unl, data_unl, fit=[orig], refs=[ref], population=population, scorer=scorer,
                         checkpoints=checkpoints, n_boot=cfg.n_boot, seed=cfg.seed)
    finally:
        scorer.close()
    run.timings["audit_s"] = time.perf_counter() - t0
    return DemoAudits(res_o, res_u, data_orig, data_unl)


def roc_plots(audits: DemoAudits) -> dict[str, bytes]:
    """The three ROC plots of the report (a plot is left out when its task has one group only)."""
    from expunge.llm.evaluate import roc_png

    res_o, res_u = audits.res_o, audits.res_u
    plots = {}
    for name, (scores, labels, task) in {
        "roc_original_member_vs_nonmember.png": (res_o["scores"], audits.data_orig.labels, "member_vs_nonmember"),
        "roc_unlearned_retained_vs_unlearned.png": (res_u["scores"], audits.data_unl.labels, "retained_vs_unlearned"),
        "roc_unlearned_unlearned_vs_nonmember.png": (res_u["scores"], audits.data_unl.labels, "unlearned_vs_nonmember"),
    }.items():
        png = roc_png(scores, labels, task, title=name[4:-4].replace("_", " "))
        if png:
            plots[name] = png
    return plots


def report_notes(run: DemoRun, audits: DemoAudits, roundtrip: float) -> list[str]:
    """The report's notes: the setup, the round trip, the wall times and how to read the AUCs."""
    cfg, timings = run.cfg, run.timings
    return [(f"Tiny byte-level GPT-2 ({cfg.n_layer} layers x {cfg.n_embd}), {cfg.n_canaries} member canaries "
             f"(x{cfg.repeats}), {run.n_forget} unlearned with {cfg.method}; {cfg.n_canaries} held-out canaries; "
             f"population {cfg.n_population}."),
            (f"Fit (IN) = the original model, reference (OUT) = the pre-trained model that never saw a canary. "
             f"Skipped on the original: {', '.join(f'{k} ({v})' for k, v in audits.res_o['skipped'].items()) or 'none'}."),
            (f"Hugging Face round trip max |logit difference|: {roundtrip:.1e}. Wall time {timings['total_s']:.0f} s "
             f"({', '.join(f'{k} {v:.0f}' for k, v in timings.items() if k != 'total_s')})."), "",
            ("AUC = 0.5 means the attack cannot tell the two groups apart; for 'unlearned vs non-member', "
             "0.5 is complete unlearning and values above it are residual memorisation."),
            ("The online attacks (LiRA-On, RMIA-On, IAM-On) assume every query is IN for the fit model, as in "
             "an unlearning audit (BinUI: retained vs unlearned). On non-members, which are OUT for every model, "
             "their scores are not calibrated (IAM gives them the neutral ~0.57 whatever happened), so their "
             "columns against non-members are shown for completeness only; n/a = the attack needs a fit "
             "model, and the original model is its own fit.")]


def write_report(run: DemoRun, audits: DemoAudits, roundtrip: float, t_start: float, un_key: str,
                 ck_keys: dict[int, str]) -> dict[str, Any]:
    """Build the AUC table, store the report under ``llm_demo/report``, print the table and where
    everything is; returns the tables, timings and the report's path."""
    from expunge.llm.artifacts import KIND
    from expunge.llm.evaluate import (
        auc_summary,
        fmt_table,
        per_sample_table,
        report_files,
    )

    cfg, store, timings, res_o, res_u = run.cfg, run.store, run.timings, audits.res_o, audits.res_u
    results = pd.concat([res_o["results"].assign(target="original"), res_u["results"].assign(target="unlearned")],
                        ignore_index=True)
    results["task"] = results["target"] + ":" + results["task"]
    summary = auc_summary(results.drop(columns="target"), COLUMNS)
    table = _auc_only(results, res_u)
    plots = roc_plots(audits)
    samples = per_sample_table(audits.data_unl.ids, audits.data_unl.labels,
                               {f"unlearned:{k}": v for k, v in res_u["scores"].items()})
    for k, v in res_o["scores"].items():
        samples[f"original:{k}"] = v
    timings["total_s"] = time.perf_counter() - t_start
    extra = {"AUC table": table}
    if res_u["scoreui"] is not None:
        extra["scoreui"] = res_u["scoreui"]
    files = report_files(results, summary, samples, plots, "expunge LLM unlearning audit demo",
                         report_notes(run, audits, roundtrip), extra)
    files.pop("auc_table.csv", None)
    files["auc_table.csv"] = table
    art = store.put("llm_demo", "report", files, replace=True, repair=run.rebuild, config=cfg.model_dump(),
                    timings=timings, roundtrip_max_abs_diff=roundtrip)
    print("\n" + fmt_table(table) + "\n", flush=True)
    log(f"report: {art.path}/report.md (tables: auc_table.csv, results.csv, scores.parquet; ROC plots: "
        f"{', '.join(plots)})")
    log(f"models: {store.fs.join(KIND)} (reference, original, {un_key}"
        f"{', ' + str(len(ck_keys)) + ' checkpoints' if ck_keys else ''}); log-prob cache: {store.fs.join('llm_logprobs')}")
    log(f"done in {timings['total_s']:.1f} s")
    return {"table": table, "results": results, "scoreui": res_u["scoreui"], "timings": timings,
            "roundtrip": roundtrip, "path": art.path, "skipped": {"original": res_o["skipped"],
                                                                   "unlearned": res_u["skipped"]}}


def _norm(x: Any) -> Any:
    """``x`` as the store normalises a manifest's config (for comparing with a stored one)."""
    from expunge.store.serialize import normalize

    return normalize(x)


def _auc_only(results: pd.DataFrame, res_u: dict[str, Any]) -> pd.DataFrame:
    """attack x task AUC (floats), plus the ScoreUI Spearman column."""
    wide = results.pivot_table(index="attack", columns="task", values="auc", sort=False)
    wide = wide[[c for c in COLUMNS if c in wide.columns]].rename(columns=COLUMNS)
    wide = wide.reindex(list(dict.fromkeys(results["attack"])))
    if res_u["scoreui"] is not None:
        wide["ScoreUI Spearman"] = res_u["scoreui"].set_index("attack")["scoreui_spearman"].reindex(wide.index)
    return wide.reset_index()
