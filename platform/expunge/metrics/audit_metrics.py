"""The registered audit metrics: thin adapters from cached outputs to the pure metric functions.

Membership scores are oriented "higher = more member". Two protocols per attack:

* **BinUI** (IAM paper), over the original training set: is each sample *retained* (positive) or
  *unlearned*? Online attacks apply (the original model is a genuine IN reference for every training
  sample): LiRA-online, RMIA-online, IAM-On. AUC 0.5 means forgotten samples look exactly like
  retained ones (under-unlearning).
* **forget vs test**: do forget samples still look like members next to held-out non-members (the
  test split)? This needs references that treat both sets alike: the original is IN for forget samples
  but not for test samples, so the online scores would be biased. The offline variants are used
  (OUT-only shadows: LiRA-offline, RMIA-offline, IAM-Off): about 0.5 after retraining.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from expunge.metrics.base import AuditInputs, MetricResult, Outputs, register_metric
from expunge.metrics.iam import SCORINGS, Scoring, Weighting, iam_offline, iam_online
from expunge.metrics.lira import lira_offline, lira_online_with_reference, uses_global_variance
from expunge.metrics.rmia import rmia_offline, rmia_online
from expunge.metrics.roc import binary_report, bootstrap_ci
from expunge.metrics.conformal import cr_class, cr_random
from expunge.metrics.miacr import miacr
from expunge.metrics.signals import logit_scaled_confidence, softmax, taylor_soft_margin, true_class_prob
from expunge.metrics.svc_mia import FEATURES, svc_mia_efficacy

BINUI_SETS = ("retain", "forget", "test", "forget_heldout")


def _sig(o: Outputs, kind: str) -> np.ndarray:
    return logit_scaled_confidence(o.logits, o.labels) if kind == "logit" else true_class_prob(o.logits, o.labels)


def _stack(models: list[dict[str, Outputs]], sets: tuple[str, ...], kind: str) -> np.ndarray:
    return np.stack([np.concatenate([_sig(m[s], kind) for s in sets]) for m in models])


def _stack_views(models: list[dict[str, Outputs]], sets: tuple[str, ...]) -> np.ndarray | None:
    """[K, N, V] logit-scaled confidences of the augmented views, or None if any model lacks them."""
    if any(m[s].aug_logits is None for m in models for s in sets):
        return None
    return np.stack([np.concatenate([np.stack([logit_scaled_confidence(v, m[s].labels) for v in m[s].aug_logits],
                                              axis=1) for s in sets]) for m in models])


def _binui(prefix: str, online: np.ndarray, offline: np.ndarray, n: dict[str, int],
           n_boot: int = 200) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Split scores over retain|forget|test|forget_heldout and report both protocols, names prefixed
    by the attack: AUC, TPR at FPR and TNR at FNR in {0.1, 0.01, 0.001}, balanced accuracy, and a
    class-balanced bootstrap 95% interval of the BinUI AUC (``n_boot`` resamples; 0 turns it off).

    ``forget_vs_test_auc`` compares forget samples with the whole test split; ``forget_vs_heldout_auc``
    with the held-out samples drawn the way the forget set was (the plan's ``forget_heldout``: the
    corrupted held-out samples for ``mislabeled``, the forgotten class's test samples for class
    forgetting; the test split itself for random forgetting), the comparison at which a retrained
    model scores 0.5."""
    r, f, t = n["retain"], n["forget"], n["test"]
    s_r, s_f = online[:r], online[r:r + f]
    s_t = online[r + f:r + f + t]
    binui = binary_report(np.concatenate([s_r, s_f]), np.r_[np.ones(r, bool), np.zeros(f, bool)])
    o_f, o_t, o_h = offline[r:r + f], offline[r + f:r + f + t], offline[r + f + t:]
    fvt = binary_report(np.concatenate([o_f, o_t]), np.r_[np.ones(f, bool), np.zeros(len(o_t), bool)])
    held = o_h if len(o_h) else o_t
    fvh = binary_report(np.concatenate([o_f, held]), np.r_[np.ones(f, bool), np.zeros(len(held), bool)])
    labels = np.r_[np.ones(r, bool), np.zeros(f, bool)]
    ci = bootstrap_ci(np.concatenate([s_r, s_f]), labels, n_boot=n_boot, seed=0) if n_boot else {}
    summary = {**{f"binui_{k}": v for k, v in binui.items() if k not in ("n_pos", "n_neg")},
               "binui_auc_ci_low": ci.get("low", np.nan), "binui_auc_ci_high": ci.get("high", np.nan),
               "forget_vs_test_auc": fvt["auc"], "forget_vs_test_tpr@fpr=0.01": fvt["tpr@fpr=0.01"],
               "forget_vs_heldout_auc": fvh["auc"], "forget_score_mean": float(np.mean(s_f))}
    per = {"forget": s_f, "retain": s_r, "test": s_t, "offline_forget": o_f, "offline_test": o_t,
           "offline_forget_heldout": o_h}
    return ({f"{prefix}_{k}": v for k, v in summary.items()}, {f"{prefix}_{k}": v for k, v in per.items()})


def _sizes(inputs: AuditInputs) -> dict[str, int]:
    return {s: len(inputs.target[s].labels) for s in BINUI_SETS}


@register_metric("svc_mia", requires=("target",))
def svc_mia(inputs: AuditInputs, seed: int = 0) -> MetricResult:
    """SVC MIA-efficacy (SalUn protocol): fraction of D_f predicted non-member (confidence, entropy, m-entropy)."""
    t = inputs.target
    summary, per = svc_mia_efficacy((t["retain"].logits, t["retain"].labels), (t["test"].logits, t["test"].labels),
                                    (t["forget"].logits, t["forget"].labels), FEATURES, seed)
    return MetricResult({f"member_pred_{k}": v for k, v in per.items()},
                        {"MIA_efficacy" if k == "confidence" else f"MIA_efficacy_{k}": v for k, v in summary.items()})


@register_metric("lira", requires=("target", "original", "shadows"))
def lira(inputs: AuditInputs, global_variance: bool | None = None,
         test: str = "monotone") -> MetricResult:
    """LiRA (Carlini et al. 2022): online (original as IN) for BinUI, offline for forget vs test; AUCs.

    ``global_variance``: None (auto, default) uses LiRA's fixed global variance when the audit has
    fewer than ``PER_SAMPLE_VARIANCE_MIN_MODELS`` = 64 shadows (the LiRA paper's threshold) and
    per-sample variances from 64 on; true / false force either (``audit.params={lira:
    {global_variance: false}}``). The mode used is reported as ``lira_variance_global`` (1 / 0).
    ``test``: the online score, "monotone" (default: LiRA's log-likelihood ratio held constant where
    it would fall with rising confidence, so a forgotten class far below both Gaussians never looks
    like a member) or "likelihood_ratio" (the raw two-Gaussian ratio); see
    :mod:`expunge.metrics.lira`. The offline score is LiRA's one-sided test.

    With ``audit.augmented_views`` > 0 every model is queried on the same seeded augmented views and
    the per-view likelihoods are averaged (LiRA's augmented queries)."""
    use_global = uses_global_variance(global_variance, len(inputs.shadows))
    sets = BINUI_SETS
    views = _stack_views([inputs.target, inputs.original, *inputs.shadows], sets)
    if views is not None:  # augmented queries: per-view Gaussians, log-likelihoods averaged over views
        target, original, shadows = views[0], views[1:2], views[2:]
    else:
        target, original = _stack([inputs.target], sets, "logit")[0], _stack([inputs.original], sets, "logit")
        shadows = _stack(inputs.shadows, sets, "logit")
    online = lira_online_with_reference(target, original, shadows, global_variance=use_global, test=test)
    offline = lira_offline(target, shadows, global_variance=use_global)
    summary, per = _binui("lira", online, offline, _sizes(inputs))
    summary["lira_variance_global"] = float(use_global)
    return MetricResult(per, summary)


@register_metric("rmia", requires=("target", "original", "shadows"))
def rmia(inputs: AuditInputs, gamma: float = 2.0, gamma_online: float = 1.0, a: float = 0.3,
         signal: Literal["prob", "taylor"] = "prob", m: float = 0.6, n: int = 4, temperature: float = 1.0) -> MetricResult:
    """RMIA (Zarifzadeh et al. 2024) on the population split: online BinUI, offline forget vs test.

    ``gamma``: the offline (forget vs test) threshold, 2 as in the reference code; ``gamma_online``:
    the online (BinUI) threshold, 1 (with γ = 2 the online score collapses for targets near the
    original, see :func:`expunge.metrics.rmia.rmia_online`). The online references are the original
    (IN for the queries, OUT for the population) and the shadows, the same models for x and z.
    ``signal``: "prob" (p_y) or "taylor" (the Taylor soft-margin signal with m, n, temperature);
    ``a`` scales the offline approximation of the IN mean."""
    if signal not in ("prob", "taylor"):
        from expunge.errors import ExpungeError

        raise ExpungeError(f"rmia signal {signal!r}: allowed prob, taylor")

    def stack(models: list[dict[str, Outputs]], sets: tuple[str, ...]) -> np.ndarray:
        if signal == "prob":
            return _stack(models, sets, "prob")
        return np.stack([np.concatenate([taylor_soft_margin(mm[s].logits, mm[s].labels, m, n, temperature)
                                         for s in sets]) for mm in models])

    sets, pop = BINUI_SETS, ("population",)
    tx, tz = stack([inputs.target], sets)[0], stack([inputs.target], pop)[0]
    sx, sz = stack(inputs.shadows, sets), stack(inputs.shadows, pop)
    online = rmia_online(tx, stack([inputs.original], sets), sx, tz, stack([inputs.original], pop), sz,
                         gamma=gamma_online)
    offline = rmia_offline(tx, sx, tz, sz, a=a, gamma=gamma)
    return MetricResult(*reversed(_binui("rmia", online, offline, _sizes(inputs))))


@register_metric("iam", requires=("target", "original", "shadows"))
def iam(inputs: AuditInputs, n_levels: int = 100, weighting: Weighting = "reference",
        scoring: Scoring = "gumbel") -> MetricResult:
    """IAM (USENIX Security 2025): IAM-On for BinUI, IAM-Off for forget vs test; AUCs.

    ``scoring``: how confidences become the membership score, one of the paper's Table 5 ablation
    (:data:`expunge.metrics.iam.SCORINGS`): "gumbel" (default, IAM's bounded Gumbel fit),
    "probability", "loss", "ecdf", "kde", "beta", "gaussian" (``audit.params={iam: {scoring: kde}}``);
    see :mod:`expunge.metrics.iam`.

    Also reports the paper's Table 8 means of the IAM-On membership score S: ``iam_retained_mean``
    over retained samples and ``iam_forgotten_mean`` over forgotten ones (the audit leaderboard reads
    them against retrain's for its over- / under-unlearning verdict)."""
    if scoring not in SCORINGS:
        from expunge.errors import ConfigError

        raise ConfigError(f"iam scoring {scoring!r}: allowed {', '.join(SCORINGS)}")
    sets = BINUI_SETS
    target, shadows = _stack([inputs.target], sets, "prob")[0], _stack(inputs.shadows, sets, "prob")
    online = iam_online(target, shadows, _stack([inputs.original], sets, "prob")[0], n_levels=n_levels,
                        weighting=weighting, scoring=scoring)
    own = [_sig(s["shadow_pool"], "prob")[np.isin(s["shadow_pool"].ids, members)]
           for s, members in zip(inputs.shadows, inputs.shadow_members)]
    offline = iam_offline(target, shadows, own, n_levels=n_levels, weighting=weighting, scoring=scoring)
    summary, per = _binui("iam", online.membership, offline.membership, _sizes(inputs))
    # IAM reports the unlearning score 1 - S of the forget samples
    summary["iam_unlearning_score_mean"] = float(1.0 - summary.pop("iam_forget_score_mean"))
    summary["iam_retained_mean"] = float(np.mean(per["iam_retain"]))
    summary["iam_forgotten_mean"] = float(np.mean(per["iam_forget"]))
    return MetricResult(per, summary)


def _probs(o: Outputs) -> tuple[np.ndarray, np.ndarray]:
    return softmax(o.logits), o.labels


@register_metric("cr", requires=("target",))
def cr(inputs: AuditInputs, alphas: tuple[float, ...] = (0.05,)) -> MetricResult:
    """Conformal coverage ratio CR = coverage / set size (LAC, split conformal) on forget, retain, test."""
    t = inputs.target
    summary: dict[str, float] = {}
    for alpha in alphas:
        if inputs.forget_class is None:
            res = cr_random(_probs(t["calibration"]), {s: _probs(t[s]) for s in ("forget", "retain", "test")}, alpha)
        else:
            c = inputs.forget_class
            test_p, test_y = _probs(t["test"])
            is_f = test_y == c
            res = cr_class(_probs(t["calibration"]), c, _probs(t["forget"]), (test_p[is_f], test_y[is_f]),
                           (test_p[~is_f], test_y[~is_f]), alpha)
        suffix = "" if len(alphas) == 1 else f"@{alpha:g}"
        summary.update({f"{k}{suffix}": v for k, v in res.items()})
    return MetricResult({}, summary)


@register_metric("miacr", requires=("target",))
def miacr_metric(inputs: AuditInputs, alpha: float = 0.05, seed: int = 0) -> MetricResult:
    """MIACR: conformal sets over {member, non-member} on the SVC attack; coverage / size on D_f."""
    t = inputs.target
    conf = {s: true_class_prob(t[s].logits, t[s].labels) for s in ("retain", "test", "calibration", "forget")}
    summary, member_in = miacr(conf["retain"], conf["test"], conf["calibration"], conf["forget"], alpha, seed)
    return MetricResult({"member_in_set": member_in}, summary)
