"""The audit stage: every requested metric for every audited model, from cached outputs.

Reads each model's outputs once from the store (original, unlearned, retrained, shadows), computes
the registered metrics (``audit.metrics``) plus the relearning attack when asked, and writes one
tidy table (model x metric, parquet and CSV), a wide leaderboard with the gap to retrain,
Avg. Gap = mean |m - m_retrain| over UA, RA, TA and MIA-efficacy (SalUn's convention) and the IAM
paper's Table 8 over- / under-unlearning verdict (:func:`add_verdict`), per-sample
scores (.npy), relearning curves and a JSON summary. ``audit.params`` passes keyword arguments to a
metric (``{rmia: {gamma: 1.5, signal: taylor}}``).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd
from torch import nn

from expunge.audit.leaderboard import add_gaps, to_percent
from expunge.audit.relearn import pru_relearn_test, relearn_convergence_delay
from expunge.experiment import IMPORTED_ROLES, Experiment, log
from expunge.fleet.members import audit_shadow_keys
from expunge.metrics import METRICS, AuditInputs, Outputs

def relearn_summary(ex: Experiment, model: nn.Module) -> tuple[dict[str, float], dict[str, Any]]:
    """Class forgetting: PRU's relearn test (forgotten-class test accuracy after epochs 1/5/10 of
    fine-tuning on remaining-class population samples). Random forgetting: RCD (our formalisation).
    Returns the summary numbers and the whole curve (accuracies and weight distances per point)."""
    plan = ex.plan
    if plan.spec.classwise:
        curve = pru_relearn_test(model, ex.data, plan.population, plan.forget_class, plan.test,
                                 epochs=ex.cfg.audit.relearn_epochs, seed=ex.cfg.seed)
        summary = {f"relearn_acc@{round(e)}": a for e, a in zip(curve.epoch, curve.acc["forget_class_test"]) if e > 0}
        return summary, {"protocol": "pru_relearn", **curve.to_dict()}
    rcd = relearn_convergence_delay(model, ex.load_model("original"), ex.data, plan.forget, seed=ex.cfg.seed)
    return ({"rcd_steps": float(rcd["rcd_steps"]), "rcd_reached": float(rcd["reached"])},
            {"protocol": "rcd", "target_acc": rcd["target_acc"], "definition": rcd["definition"], **rcd["curve"]})


def metric_values(inputs: AuditInputs, metrics: list[str], params: dict[str, dict[str, Any]]
                  ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Every named metric on one model's outputs: summary values, and per-sample scores keyed
    ``<metric>__<score>``. The audit stage and sweep trials both call this, so their numbers agree."""
    values: dict[str, float] = {}
    per_sample: dict[str, np.ndarray] = {}
    for name in metrics:
        res = METRICS.get(name)(inputs, **params.get(name, {}))
        values.update({k: float(v) for k, v in res.summary.items()})
        per_sample.update({f"{name}__{k}": np.asarray(v) for k, v in res.per_sample.items()})
    return values, per_sample


def reference_inputs(ex: Experiment, shadow_keys: list[str] | None = None) -> Callable[[dict[str, Outputs]], AuditInputs]:
    """Reads the original's and the audit shadows' cached outputs (and the shadows' members) once;
    returns ``target outputs -> AuditInputs``. The audit stage, the sweep's reference rows and every
    sweep trial audit against these same references. ``shadow_keys``: other stored shadow models than
    the audit's trained fleet (imported ones, ``expunge audit-model --shadows``)."""
    original = ex.outputs("original")
    keys = audit_shadow_keys(ex) if shadow_keys is None else shadow_keys
    shadows = [ex.outputs(k) for k in keys]
    members = []
    for k, outputs in zip(keys, shadows):
        art = ex.store.get("models", k)
        if "own_ids.npy" in art.files():
            # a shadow of audit.shadow_data: IAM-Off's anchor reads its outputs on its own training samples
            # of that dataset (the reference's CINIC-10 shadows' train logits), in place of target
            # shadow-pool outputs, which it never trained on
            own = Outputs(art.read("own_logits.npy"), art.read("own_labels.npy"), art.read("own_ids.npy"))
            outputs["shadow_pool"] = own
            members.append(own.ids)
        else:
            members.append(art.read("members.npy"))
    return lambda target: AuditInputs(target, original, shadows, ex.plan.forget_class, members)


def audit_values(ex: Experiment, inputs: AuditInputs, metrics: list[str], model: Callable[[], nn.Module]
                 ) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, Any] | None]:
    """:func:`metric_values` plus, when ``relearn`` is listed, the relearning attack on ``model()``
    (loaded only then); returns values, per-sample scores and the relearning curve."""
    values, per_sample = metric_values(inputs, [m for m in metrics if m != "relearn"], ex.cfg.audit.params)
    curve = None
    if "relearn" in metrics:
        relearn, curve = relearn_summary(ex, model())
        values.update(relearn)
    return values, per_sample, curve


def earlier_audited(ex: Experiment) -> dict[str, str]:
    """The models of this run's previous leaderboard that still belong to it: stored, intact, and
    unlearned from the current original on the current split by the current unlearning code
    (``model key -> its row label``). A later, narrower command (one ``expunge unlearn --method``)
    then adds its rows to the leaderboard instead of replacing it."""
    from expunge.config import MethodSpec
    from expunge.errors import ArtifactError

    try:
        previous = ex.store.get("audit", "results", verify=True)
        original = ex.store.get("models", "original")
    except ArtifactError as exc:
        if not ex.rebuild:  # a damaged leaderboard is refused, never silently dropped
            raise
        log(f"audit: the previous leaderboard is not carried over ({exc})")
        return {}
    if previous is None or original is None:
        return {}
    board = previous.read("leaderboard.csv")
    kept = {}
    for key, label in zip(board["model"], board["method"]):
        try:
            made = ex.store.get("models", key)
            if key == "original" or made is None:
                continue
            config = made.manifest["config"]
            if config.get("role") in IMPORTED_ROLES:  # imported from a file for this original (audit-model)
                expect = ex.imported_expect({**config, "original": original.manifest["content_hash"]})
            else:
                spec = MethodSpec(name=config["method"], params=config["params"])
                expect = ex.unlearn_expect(spec, original)
            ex.store.get("models", key, expect=expect)  # refused if not this run's
        except (ArtifactError, KeyError, TypeError):
            continue
        kept[key] = str(label)
    return kept


def audit_request(ex: Experiment, model_keys: list[str], labels: dict[str, str],
                  shadow_keys: list[str] | None = None) -> dict[str, Any]:
    """What an audit's tables are a function of: the audited models and their row labels, the audit
    settings, and the manifest hash of every model it reads (audited models, the original, the audit
    shadows), so a rebuilt model (even one with identical weights but another run time) makes a new
    audit. Split, seed and the audit stage's code version complete it."""
    from expunge.errors import ArtifactError
    from expunge.versions import code_version

    inputs = {}
    shadows = audit_shadow_keys(ex) if shadow_keys is None else shadow_keys
    for key in dict.fromkeys([*model_keys, "original", *shadows]):
        made = ex.store.get("models", key)
        if made is None:
            raise ArtifactError(f"model {key} is not in {ex.store.uri}; run its stage first")
        inputs[key] = made.manifest["manifest_hash"]
    return {"config": {"audit": ex.cfg.audit.model_dump(), "models": model_keys,
                       "labels": {k: labels.get(k) for k in model_keys}, "inputs": inputs},
            "split_hash": ex.plan.hash, "seed": ex.cfg.seed, "code_version": code_version("audit")}


def audit_models(ex: Experiment, model_keys: list[str], labels: dict[str, str] | None = None,
                 keep_earlier: bool = True, shadow_keys: list[str] | None = None) -> dict[str, Any]:
    """Audit ``model_keys`` (which must be in the store); returns and stores the tables.

    ``labels`` names rows in the ``method`` column (default: the method that made the model). With
    ``keep_earlier``, the models of the run's previous leaderboard that still belong to it
    (:func:`earlier_audited`) are audited again with this audit's settings and kept, after the
    requested ones, so the leaderboard and report always show every model of the run.

    Every distinct audit is kept as ``audit/kept-<hash>`` (the hash of :func:`audit_request`), and
    ``audit/results`` is the current one, a copy of the latest. An audit asked again with the same
    models and settings is read back (verified), not recomputed; a damaged one is refused by name
    unless ``--rebuild``, which recomputes it. A later audit with other settings (``audit.params``)
    or models makes a new kept audit, so no command overwrites another's results. ``shadow_keys``:
    stored shadow models to audit against instead of the trained fleet (:func:`reference_inputs`)."""
    from expunge.errors import CorruptArtifactError
    from expunge.experiment import short_hash

    labels = dict(labels or {})
    if keep_earlier:
        earlier = {k: v for k, v in earlier_audited(ex).items() if k not in model_keys}
        if earlier and ex.verbose:
            log(f"audit: keeping {len(earlier)} model(s) of the previous leaderboard: {', '.join(earlier.values())}")
        labels = {**earlier, **labels}
        model_keys = [*model_keys, *earlier]
    model_keys = list(dict.fromkeys(model_keys))  # one row per model, even if two specs made the same one
    request = audit_request(ex, model_keys, labels, shadow_keys)
    kept_key = f"kept-{short_hash(request, 12)}"
    try:
        kept = ex.store.get("audit", kept_key, expect=request, verify=True)
    except CorruptArtifactError:
        if not ex.rebuild:
            raise
        log(f"rebuilding audit/{kept_key}")
        kept = None
    if kept is None:
        kept = ex.store.put("audit", kept_key, audit_files(ex, model_keys, labels, shadow_keys), replace=True,
                            repair=ex.rebuild, **request)
    elif ex.verbose:
        log(f"audit: reused audit/{kept_key} (the same models and settings, audited {kept.manifest['created']})")
    current = _current(ex, request, kept_key)
    if current is None:
        current = ex.store.put("audit", "results", {n: kept.read_bytes(n) for n in kept.files()}, replace=True,
                               repair=ex.rebuild, kept=kept_key, **request)
    return {"long": current.read("metrics_long.parquet"), "leaderboard": current.read("leaderboard.parquet"),
            "path": current.path, "kept": kept.path}


def _current(ex: Experiment, request: dict[str, Any], kept_key: str):
    """``audit/results`` when it already is the kept audit ``kept_key`` (nothing to rewrite)."""
    from expunge.errors import CorruptArtifactError, StaleArtifactError

    try:
        return ex.store.get("audit", "results", expect={**request, "kept": kept_key}, verify=True)
    except StaleArtifactError:
        return None  # another audit is current: this one replaces it (it stays kept under its own key)
    except CorruptArtifactError:
        if not ex.rebuild:
            raise
        return None


def audit_files(ex: Experiment, model_keys: list[str], labels: dict[str, str],
                shadow_keys: list[str] | None = None) -> dict[str, Any]:
    """The audit's files: the tidy table (model x metric), the wide leaderboard with gaps to retrain,
    per-sample scores, relearning curves and a JSON summary."""
    cfg = ex.cfg.audit
    inputs_for = reference_inputs(ex, shadow_keys)
    rows: list[dict[str, Any]] = []
    per_sample: dict[str, np.ndarray] = {}
    curves: dict[str, Any] = {}
    for key in model_keys:
        method = labels.get(key) or ex.store.get("models", key).manifest.get("method", key)
        values, samples, curve = audit_values(ex, inputs_for(ex.outputs(key)), cfg.metrics,
                                              lambda: ex.load_model(key))
        per_sample.update({f"{key}__{name}.npy": v for name, v in samples.items()})
        if curve is not None:
            curves[key] = curve
        rows += [{"model": key, "method": method, "metric": m, "value": float(v)} for m, v in values.items()]
        if ex.verbose:
            log(f"audit: {method} done")
    long = pd.DataFrame(rows)
    wide = long.pivot_table(index=["model", "method"], columns="metric", values="value", sort=False).reset_index()
    wide.columns.name = None
    wide = to_percent(wide)
    rte = {k: ex.store.get("models", k).manifest.get("run_time_s", np.nan) for k in model_keys}
    wide["RTE_s"] = wide["model"].map(rte).astype(float)
    if "retrain" in set(wide["method"]):
        ref = wide[wide["method"] == "retrain"].iloc[0]
        wide = add_gaps(wide, {c: ref[c] for c in wide.columns if c not in ("model", "method", "RTE_s")})
    wide = wide.round(3)
    files = {"metrics_long.parquet": long, "metrics_long.csv": long, "leaderboard.parquet": wide,
             "leaderboard.csv": wide, "summary.json": {"metrics": cfg.metrics, "shadows": cfg.shadows,
                                                       "rows": wide.to_dict(orient="records")}, **per_sample}
    if curves:
        files["relearn_curves.json"] = curves
    return files
