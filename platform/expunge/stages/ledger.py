"""The sequential-unlearning ledger (``expunge ledger``): a lifecycle of requests, one model version each.

The setting of Wang et al., "Towards Lifecycle Unlearning Commitment Management: Measuring
Sample-level Unlearning Completeness" (USENIX Security 2025), whose IAM scores every sample here.

* **Requests.** ``--requests r_1 r_2 ...`` are forget specs (``random:0.05``, ``class:3``, ...); request
  r_k is drawn from the training samples still retained after r_1..r_{k-1}, never re-forgetting one
  (:func:`expunge.audit.ledger.draw_requests`; a fraction is of the whole train split, the draw is
  seeded by the run seed and k).
* **Versions.** v_0 is the run's original. v_k is the one method (``--method``, its parameters as
  ``method.<p>=value``) applied to v_{k-1} with forget set r_k alone and retain set every sample still
  retained (train − r_1 − ... − r_k): the common "sequential" setting, in which each request is
  served from the latest model and the method never sees earlier requests' samples again. v_k is
  stored as ``models/ledger/vKK-<hash>``, the hash of its identity: the method and parameters,
  v_{k-1}'s key and content hash, the request's spec and the hash of its forget / retain sets
  (:meth:`expunge.experiment.Experiment.unlearned_from`). A rerun finds every finished version
  under the same key and reuses it; editing request r_j changes r_j's sets, so v_j gets a new key and
  is made again, and so is every later version (its predecessor's content hash changed), while
  v_1..v_{j-1} are reused. No version is overwritten: a ledger over other requests keeps its own.
* **Audit.** The audit's OUT-only shadow fleet (``audit.shadows``, on the shadow pool) is trained once
  and shared by every version. Each version's cached outputs are scored by the registered ``iam``
  metric (:func:`expunge.audit.stage.metric_values`, the audit's numbers): the IAM-On membership score
  S_v(x) in [0, 1] of every training sample, the original as IN anchor. S_v(x) does not depend on how
  the training samples are grouped into forget and retain (IAM's pooled level variance runs over every
  scored sample, the same set at every version), so one call per version scores every ledger sample.
* **Ledger.** ``ledger/<method>-<hash>``: ``ledger.parquet`` / ``.csv`` (one row per forgotten sample
  and version >= its request: S, 1 − S, the score before its request, unlearned = S < τ, regressed =
  unlearned at an earlier version and S >= τ now, correct), ``summary.csv`` (per version and request:
  mean completeness, share unlearned, number regressed, forget accuracy), ``versions.csv`` (per
  version: its model, test / retain accuracy, mean S of the retained samples), ``ledger.md`` and
  ``completeness.png``; the run's report gains a ledger section. τ = ``--threshold`` (0.5, IAM's
  decision). The ledger's identity is every version's manifest hash, the shadows', the IAM settings
  and τ: asked again, it is read back, not recomputed.

Bad input (an unknown method or parameter, a malformed request, one that asks for more samples than
remain, a method that does not apply to a request's kind, ``audit.shadows=0``) is refused as one line
before anything is stored or trained.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from expunge.audit.ledger import (MEMBER_THRESHOLD, Request, draw_requests, ledger_table, parse_requests,
                                  regressions, retained_after, version_summary)
from expunge.audit.stage import metric_values, reference_inputs
from expunge.config import ExperimentConfig, MethodSpec
from expunge.config.forget import ForgetSpec
from expunge.data.splits import SplitPlan
from expunge.errors import ConfigError, CorruptArtifactError, DataError, ExpungeError
from expunge.experiment import Experiment, log, short_hash
from expunge.fleet.members import audit_shadow_config, audit_shadow_keys, check_fleets
from expunge.versions import code_version

KIND = "ledger"
#: the store prefix of version models (``models/ledger/v01-<hash>``)
VERSION_PREFIX = "ledger"


@dataclass
class LedgerRequest:
    """A checked ledger request: the experiment, the method and every request's forget set."""

    ex: Experiment
    spec: MethodSpec
    requests: list[Request]
    split: SplitPlan
    threshold: float


def version_plan(split: SplitPlan, requests: list[Request], k: int, labels: np.ndarray) -> SplitPlan:
    """The split the method sees at version v_k: ``train`` = the samples v_{k-1} still held, ``forget`` =
    r_k, ``retain`` = train − r_k; the held-out sets are the run's (``forget_heldout``: the forgotten
    class's test samples for a class request, else empty)."""
    r = requests[k - 1]
    test = split.test
    held = test[labels[test] == r.spec.cls] if r.spec.classwise else np.zeros(0, np.int64)
    indices = {**split.indices, "train": retained_after(split.train, requests, k - 1), "forget": r.forget,
               "retain": retained_after(split.train, requests, k), "forget_heldout": held}
    return SplitPlan(split.dataset, split.dataset_fingerprint, split.seed, str(r.spec), split.sizes,
                     split.num_classes, indices, forget_class=r.spec.cls, incremental=split.incremental)


def prepare_ledger(cfg: ExperimentConfig, spec: MethodSpec, texts: list[str],
                   threshold: float = MEMBER_THRESHOLD, rebuild: bool = False) -> LedgerRequest:
    """Every check of a ledger request, before anything is stored or trained: the audit can score IAM,
    the method exists and takes its parameters, each request parses, applies to the method and can be
    drawn from what the earlier ones leave (on the split computed in memory)."""
    from expunge.unlearn import METHODS

    if not cfg.audit.shadows:
        raise ConfigError("audit.shadows=0: the ledger scores every version with IAM, which needs OUT shadow "
                          "models; set audit.shadows=4 (or more) and data.sizes.shadow_pool > 0")
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"--threshold {threshold}: the membership decision must lie in (0, 1) (IAM's is 0.5)")
    method = METHODS.get(spec.name)
    mcfg = method.parse_config(spec.params)
    specs = parse_requests(texts)
    for i, s in enumerate(specs, 1):
        try:
            method.check_forget_spec(str(s))
        except ExpungeError as exc:
            raise ConfigError(f"request {i}: {exc}") from None
    ex = Experiment(cfg, rebuild=rebuild, verbose=False)
    split = ex.create_plan()  # in memory: a request that cannot be drawn leaves nothing behind
    labels = ex.dataset.labels.numpy()
    requests = draw_requests(specs, split.train, labels, cfg.seed, ex.dataset.noisy)
    for k in range(1, len(requests) + 1):
        try:
            method.check(version_plan(split, requests, k, labels), mcfg)
        except ExpungeError as exc:
            raise ConfigError(f"request {k}: {exc}") from None
    return LedgerRequest(ex, spec, requests, split, threshold)


def _positions_sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(a, dtype="<i8").tobytes()).hexdigest()


def version_task(cfg: dict[str, Any], spec: dict[str, Any], texts: list[str], forgets: list[np.ndarray], k: int,
                 previous: str, rebuild: bool) -> dict[str, Any]:
    """Ray task body: make (or reuse) version v_k from the stored v_{k-1} (``previous``)."""
    ex = Experiment(ExperimentConfig.model_validate(cfg), rebuild=rebuild)
    method = MethodSpec.model_validate(spec)
    requests = [Request(i, ForgetSpec.parse(t), np.asarray(f, dtype=np.int64))
                for i, (t, f) in enumerate(zip(texts, forgets), 1)]
    plan = version_plan(ex.plan, requests, k, ex.dataset.labels.numpy())
    prev = ex.store.get("models", previous, verify=True)
    if prev is None:
        raise ExpungeError(f"model {previous} is not in {ex.store.uri}; the ledger makes versions in order")
    extra = {"role": "ledger-version", "version": k, "request": texts[k - 1],
             "forget_sha256": _positions_sha(requests[k - 1].forget)}
    key = f"{VERSION_PREFIX}/v{k:02d}-{short_hash(ex.unlearned_from_expect(method, prev, plan, extra), 10)}"
    try:
        art = ex.unlearned_from(key, method, prev, plan, extra, {"forget.npy": requests[k - 1].forget})
    except FloatingPointError as exc:  # a diverged method is a setting to change, not a crash
        raise ExpungeError(f"ledger version v{k}: {exc}") from None
    return {"key": art.key, "content_hash": art.manifest["content_hash"], "run_time_s": art.manifest.get("run_time_s")}


def score_versions(ex: Experiment, keys: list[str], positions: np.ndarray) -> dict[str, Any]:
    """IAM-On membership S_v and correctness of ``positions`` at every version in ``keys`` ([V + 1, P]),
    plus per-version test accuracy and the accuracy / mean S of every training sample (by position)."""
    inputs_for = reference_inputs(ex)  # the original's and the shadows' outputs, read once for all versions
    params = ex.cfg.audit.params
    scores, correct, per_version = [], [], []
    for key in keys:
        out = ex.outputs(key)
        _, per = metric_values(inputs_for(out), ["iam"], params)
        ids = np.concatenate([out["retain"].ids, out["forget"].ids])
        s = pd.Series(np.concatenate([per["iam__iam_retain"], per["iam__iam_forget"]]), index=ids)
        ok = pd.Series(np.concatenate([out["retain"].correct(), out["forget"].correct()]), index=ids)
        scores.append(s.loc[positions].to_numpy())
        correct.append(ok.loc[positions].to_numpy())
        per_version.append({"membership": s, "correct": ok, "test_acc": float(np.mean(out["test"].correct()))})
    return {"scores": np.stack(scores), "correct": np.stack(correct), "per_version": per_version}


def ledger_identity(ex: Experiment, lr: LedgerRequest, keys: list[str]) -> dict[str, Any]:
    """What the ledger's tables are a function of (its manifest identity)."""
    manifests = {k: ex.store.get("models", k).manifest["manifest_hash"]
                 for k in [*keys, *audit_shadow_keys(ex)]}
    return {"config": {"method": lr.spec.name, "params": lr.spec.params, "requests": [str(r.spec) for r in lr.requests],
                       "threshold": lr.threshold, "iam": ex.cfg.audit.params.get("iam", {}), "versions": keys,
                       "inputs": manifests},
            "split_hash": ex.plan.hash, "seed": ex.cfg.seed, "code_version": code_version("ledger")}


def ledger_files(ex: Experiment, lr: LedgerRequest, keys: list[str]) -> dict[str, Any]:
    """The ledger's tables, Markdown page and figure from the stored versions."""
    from expunge.report.ledger import FIGURE, completeness_figure, ledger_markdown

    positions = np.concatenate([r.forget for r in lr.requests])
    request_of = np.concatenate([np.full(len(r.forget), r.number) for r in lr.requests])
    scored = score_versions(ex, keys, positions)
    table = ledger_table(positions, request_of, scored["scores"], scored["correct"], lr.threshold)
    summary = version_summary(table)
    regressed = regressions(table)
    rows = []
    for v, key in enumerate(keys):
        kept = retained_after(ex.plan.train, lr.requests, v)
        pv = scored["per_version"][v]
        made = ex.store.get("models", key).manifest
        rows.append({"version": v, "model": key, "request": str(lr.requests[v - 1].spec) if v else "(original)",
                     "n_forgotten": int(len(ex.plan.train) - len(kept)), "n_retained": int(len(kept)),
                     "test_acc": pv["test_acc"], "retain_acc": float(pv["correct"].loc[kept].mean()),
                     "retained_mean_membership": float(pv["membership"].loc[kept].mean()),
                     "forgotten_mean_unlearning": float(table.loc[table["version"] == v, "unlearning"].mean())
                     if v else np.nan,
                     "n_regressed": int(table.loc[table["version"] == v, "regressed"].sum()),
                     "run_time_s": made.get("run_time_s") if v else np.nan})
    versions = pd.DataFrame(rows)
    cfg = ex.cfg
    info = {"run": cfg.name, "dataset": cfg.data.dataset, "model": cfg.model.name, "seed": cfg.seed,
            "method": lr.spec.name, "params": lr.spec.params, "requests": [str(r.spec) for r in lr.requests],
            "request_sizes": [int(len(r.forget)) for r in lr.requests], "threshold": lr.threshold,
            "shadows": cfg.audit.shadows, "versions": keys, "n_regressed": int(table["regressed"].sum()),
            "n_regressed_samples": int(regressed["position"].nunique()) if len(regressed) else 0}
    return {"ledger.parquet": table, "ledger.csv": table, "summary.parquet": summary, "summary.csv": summary,
            "versions.csv": versions, "regressions.csv": regressed, "summary.json": info,
            "ledger.md": ledger_markdown(info, summary, versions, regressed),
            FIGURE: completeness_figure(summary, lr.threshold)}


def store_ledger(ex: Experiment, lr: LedgerRequest, keys: list[str]):
    """The stored ledger of these versions and settings (read back when it exists), else made and stored."""
    identity = ledger_identity(ex, lr, keys)
    key = f"{lr.spec.name}-{short_hash(identity, 12)}"
    try:
        art = ex.store.get(KIND, key, expect=identity, verify=True)
    except CorruptArtifactError:
        if not ex.rebuild:
            raise
        log(f"rebuilding {KIND}/{key}")
        art = None
    if art is not None:
        log(f"ledger: reused {KIND}/{key} (the same versions and settings, made {art.manifest.get('created')})")
        return art
    return ex.store.put(KIND, key, ledger_files(ex, lr, keys), replace=True, repair=ex.rebuild, **identity)


def run_ledger(cfg: ExperimentConfig, spec: MethodSpec, requests: list[str], threshold: float = MEMBER_THRESHOLD,
               rebuild: bool = False, use_ray: bool = True, prepared: LedgerRequest | None = None) -> dict[str, Any]:
    """The whole ledger: checks, original, shadows, versions v_1..v_n in order, the ledger and the report.
    ``prepared``: :func:`prepare_ledger`'s result for these arguments, when the caller checked them first."""
    from expunge.report.build import write_report
    from expunge.runtime import run_tasks
    from expunge.stages.fleet import run_fleet
    from expunge.stages.original import run_original

    lr = prepared or prepare_ledger(cfg, spec, requests, threshold, rebuild)
    ex = lr.ex  # the dataset it loaded is reused
    ex.verbose = True
    ex.preflight([])  # stored split, original and derived artifacts checked (the split is stored here)
    check_fleets(ex)
    if ex.plan.hash != lr.split.hash:  # the stored split is this config's (preflight refused another)
        raise DataError("the stored split differs from the one the requests were drawn on; rerun with --rebuild")
    sizes = ", ".join(f"r{r.number} {r.spec} ({len(r.forget)})" for r in lr.requests)
    log(f"ledger {cfg.name}: {spec.name} on {cfg.data.dataset} ({len(ex.plan.train)} train samples), "
        f"requests {sizes}; storage {ex.store.uri}")
    run_original(cfg, rebuild, use_ray)
    run_fleet(audit_shadow_config(cfg), rebuild, use_ray)  # the IAM shadows, trained once for every version
    keys = ["original"]
    texts = [str(r.spec) for r in lr.requests]
    forgets = [r.forget for r in lr.requests]
    for r in lr.requests:
        log(f"ledger: version v{r.number} = {spec.name}(v{r.number - 1}, forget r{r.number} = {r.spec}, "
            f"{len(r.forget)} samples)")
        (res,) = run_tasks(version_task, [{"cfg": cfg.model_dump(), "spec": spec.model_dump(), "texts": texts,
                                           "forgets": forgets, "k": r.number, "previous": keys[-1],
                                           "rebuild": rebuild}], desc=f"v{r.number}", unit="version", use_ray=use_ray)
        keys.append(res["key"])
    art = store_ledger(ex, lr, keys)
    report = write_report(ex.store.uri, rebuild=rebuild)
    versions = art.read("versions.csv")
    print(versions.drop(columns=["model"]).round(4).to_string(index=False), flush=True)
    info = art.read("summary.json")
    log(f"ledger: {info['n_regressed']} regressed (sample, version) pairs over {info['n_regressed_samples']} "
        f"samples (threshold S >= {lr.threshold:g})")
    log(f"ledger tables: {art.path}")
    log(f"ledger page: {art.path}/ledger.md (figure {art.path}/completeness.png)")
    log(f"report: {report['html']}")
    return {"path": art.path, "key": art.key, "versions": keys, "table": art.read("ledger.parquet"),
            "summary": art.read("summary.csv"), "report": report["html"]}
