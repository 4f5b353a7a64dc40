"""The audit sections of the report, each a pure function of the run's stored results.

Every builder takes a :class:`~expunge.report.collect.RunData` and returns a
:class:`~expunge.report.blocks.Section`; when the run lacks what a section shows, the section says
so (and which command produces it) instead of disappearing, so every report has the same outline.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from expunge.metrics.roc import auc_score, roc_curve_fast
from expunge.report import figures
from expunge.report.blocks import Block, Bullets, Details, Figure, Paragraph, Section, Table
from expunge.report.collect import RunData
from expunge.report.cr_alpha import ALPHAS, calibration_sizes, cr_against_alpha, feasible_alphas
from expunge.report.leaderboard import (BEST_RULES, CHANGE_METRICS, HEADLINE, best_marks, headline_columns, ordered,
                                        unchanged, verdict_margin, verdict_table, with_intervals)

#: membership attacks drawn as ROC curves: metric name -> display name
ATTACKS = {"lira": "LiRA", "rmia": "RMIA", "iam": "IAM"}
#: methods a ROC panel draws besides the original and retrain (the rest are listed in a table)
ROC_METHODS = 5
#: per-sample scores for the histograms, first available wins (IAM's are probabilities in [0, 1])
HISTOGRAM_SCORES = ("iam", "rmia")
NO_AUDIT = "This run has no audit results (run `expunge audit CONFIG` or `expunge run CONFIG`)."


def model_labels(run: RunData) -> dict[str, str]:
    """Display label per audited model: its method, or its key when two models share a method."""
    methods = [run.method(k) for k in run.audited]
    return {k: (m if methods.count(m) == 1 else k) for k, m in zip(run.audited, methods)}


def model_styles(run: RunData) -> dict[str, figures.Style]:
    labels = model_labels(run)
    return figures.styles(list(labels.values()), [run.method(k) for k in labels])


def overview_section(run: RunData) -> Section:
    plan = run.plan or {}
    counts = plan.get("counts", {})
    items = [f"run directory: {run.uri}"]
    if plan:
        items += [f"dataset: {plan.get('dataset')} ({plan.get('num_classes')} classes)",
                  f"forgetting: {plan.get('forget_spec')}"
                  + (f" (class {plan['forget_class']})" if plan.get("forget_class") is not None else ""),
                  "split sizes: " + ", ".join(f"{k} {v}" for k, v in counts.items())]
    if run.audit is not None:
        items += [f"audited models: {', '.join(model_labels(run).values())}",
                  f"audit metrics: {', '.join(run.audit_config.get('metrics', []))}; "
                  f"{run.audit_config.get('shadows', 0)} shadow models"]
    blocks: list[Block] = [Bullets(tuple(items))]
    if run.audit is None:
        blocks.append(Paragraph(NO_AUDIT, note=True))
    return Section("run", "Run", tuple(blocks))


def leaderboard_section(run: RunData) -> Section:
    table = run.leaderboard
    if table is None:
        return Section("leaderboard", "Leaderboard", (Paragraph(NO_AUDIT, note=True),))
    table = ordered(table)
    has_gaps = "avg_gap" in table or any(c.startswith("gap_") for c in table)
    rules = [f"{col}: {text}" for col, text in BEST_RULES.items()]
    blocks: list[Block] = [
        Paragraph("Methods x metrics. UA = 1 - forget accuracy, RA = retain accuracy, TA = test accuracy, "
                  "MIA_efficacy and relearn_acc@k (forgotten-class test accuracy after k relearning epochs) "
                  "are percentages; CR_forget = conformal coverage / set size on the forget set; "
                  "*_binui_auc = AUC of the attack separating retained from unlearned samples, with its "
                  "class-balanced bootstrap 95% interval in brackets where the audit computed one; RTE_s = "
                  "unlearning wall time. gap_<m> = |m - m(retrain)|: retraining from scratch without the "
                  "forget set is the gold standard, so smaller gaps are better."),
        Paragraph("Best per column (marked \u2605): " + "; ".join(rules) + ". Metric values themselves are not "
                  "marked (their gap column is). The original and retrain rows never compete, nor does a method "
                  f"whose {', '.join(CHANGE_METRICS)} all equal the original's (it did not change the model)."),
    ]
    current = run.audit.manifest.get("kept")
    others = [k for k, _ in run.kept_audits if k != current]
    if current:
        blocks.append(Paragraph(f"This is the run's current audit, audit/{current} (audited "
                                f"{run.audit.manifest.get('created', '?')}). "
                                + (f"Earlier audits of this run with other models or settings are kept beside it: "
                                   f"{', '.join('audit/' + k for k in others)}." if others else
                                   "No other audit of this run is stored."), note=True))
    same = table["method"][unchanged(table)].tolist()
    if same:
        blocks.append(Paragraph(f"Not marked, unchanged from the original ({', '.join(CHANGE_METRICS)} equal "
                                f"to the original's): {', '.join(same)}.", note=True))
    for caption, metrics in HEADLINE.items():
        cols = headline_columns(table, metrics)
        if len(cols) > 1:
            blocks.append(Table(with_intervals(table[cols], table), best_marks(table, cols),
                                caption=f"{caption}; \u2605 = best."))
    blocks += _verdict_blocks(table)
    blocks.append(Details("Every column of the audit leaderboard", (Table(table, best_marks(table)),)))
    if not has_gaps:
        blocks.insert(2, Paragraph("No retrain model in this audit: no gaps to retrain, so only RTE_s is "
                                   "marked.", note=True))
    return Section("leaderboard", "Leaderboard", tuple(blocks))


def _verdict_blocks(table: pd.DataFrame) -> list[Block]:
    """The IAM paper's Table 8 reading of the audit: a paragraph on the verdict and its table (none
    when the audit has no verdict)."""
    frame = verdict_table(table)
    if frame is None:
        return []
    margin = verdict_margin(table)
    by = f"more than {margin:g}" if margin is not None else "more than the audit's margin"
    return [
        Paragraph("Over- and under-unlearning (the IAM paper's Table 8): iam_retained_mean and iam_forgotten_mean "
                  "are the mean IAM membership scores (online; 1 = fitted like a training sample, 0 = like a "
                  "never-seen one) of the retained and of the forgotten training samples. Read against retrain's "
                  f"means: a retained mean lower than retrain's by {by} is over-unlearning (retained samples "
                  "scored as unlearned: the method removed more than it was asked to); a forgotten mean higher "
                  f"than retrain's by {by} is under-unlearning (forgotten samples still scored as members). "
                  "Differences within the margin count as agreement with retrain (in Table 8 the methods that "
                  "match retrain differ from it by a few hundredths). The margin is well above the sampling error "
                  "of a mean over a few hundred samples; with far fewer forget samples, read a flag near the "
                  "margin with care."),
        Table(frame, caption="IAM score means of retained and forgotten samples and the verdict against retrain."),
    ]


def _binui(run: RunData, key: str, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(scores, is_retained) of one model's online BinUI scores, or None when not stored."""
    r, f = run.scores(key, metric, f"{metric}_retain"), run.scores(key, metric, f"{metric}_forget")
    if r is None or f is None:
        return None
    return np.r_[r, f], np.r_[np.ones(len(r), bool), np.zeros(len(f), bool)]


def drawn_models(keys: list[str], methods: dict[str, str], avg_gap: dict[str, float],
                 k: int = ROC_METHODS) -> list[str]:
    """The models a ROC panel draws, in ``keys``' order: the original, retrain and the ``k`` methods
    with the smallest avg_gap (unknown avg_gap last; ties in ``keys``' order)."""
    fixed = [key for key in keys if methods.get(key) in ("original", "retrain")]
    others = [key for key in keys if key not in fixed]
    gap = {key: float(avg_gap.get(key, np.nan)) for key in others}
    best = sorted(others, key=lambda key: (not np.isfinite(gap[key]), gap[key] if np.isfinite(gap[key]) else 0.0,
                                           others.index(key)))[:k]
    return [key for key in keys if key in fixed or key in best]


def roc_section(run: RunData) -> Section:
    if run.audit is None:
        return Section("roc", "ROC curves (LiRA, RMIA, IAM)", (Paragraph(NO_AUDIT, note=True),))
    labels, style = model_labels(run), model_styles(run)
    board = run.leaderboard
    gaps = dict(zip(board["model"], board["avg_gap"])) if "avg_gap" in board else {}
    drawn = drawn_models(list(labels), {k: run.method(k) for k in labels}, gaps)
    rest = [k for k in labels if k not in drawn]
    labels = {k: labels[k] for k in drawn}
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, float]]] = {}
    skipped: list[str] = []
    n_pos = n_neg = 1
    for metric, name in ATTACKS.items():
        for key, label in labels.items():
            data = _binui(run, key, metric)
            if data is None:
                continue
            scores, positive = data
            try:
                fpr, tpr, _ = roc_curve_fast(scores, positive)
            except ValueError as exc:  # non-finite scores or a single class
                skipped.append(f"{name} / {label}: {exc}")
                continue
            curves.setdefault(name, {})[label] = (fpr, tpr, auc_score(scores, positive))
            n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not curves:
        return Section("roc", "ROC curves (LiRA, RMIA, IAM)",
                       (Paragraph("No LiRA, RMIA or IAM scores in this audit (add them to audit.metrics).",
                                  note=True),))
    blocks: list[Block] = [
        Paragraph("BinUI (the IAM paper's protocol): positives are retained training samples, negatives the "
                  "unlearned (forget) samples; online scores (the original model is the IN reference), on "
                  f"{n_pos} retained and {n_neg} unlearned samples. Log-log axes show the low-FPR regime. "
                  "Compare each method with retrain (black dashed): a curve closer to the diagonal than "
                  "retrain's means forgotten samples still look like retained ones (under-unlearning); a "
                  "curve above retrain's means they stand out more than never-seen samples would "
                  "(over-unlearning)."),
        Figure("roc.png", figures.roc_figure(curves, style, n_pos, n_neg),
               "ROC of each attack per model, log-log (FPR or TPR = 0 points are off the log axes)"
               + (f": the original, retrain and the {ROC_METHODS} methods with the smallest avg_gap; the "
                  "others are in the table below." if rest else ".")),
    ]
    if rest:
        blocks.append(Table(_not_drawn_table(run, rest),
                            caption=f"Not drawn in the ROC figure (avg_gap beyond the best {ROC_METHODS}): "
                                    "BinUI AUC [bootstrap 95% interval] per attack."))
    table = _attack_table(run)
    if table is not None:
        blocks.append(Table(table, caption="BinUI AUC, TPR at 1% FPR and TNR at 1% FNR per attack "
                                           "(from the audit leaderboard)."))
    if skipped:
        blocks.append(Paragraph("Not drawn: " + "; ".join(skipped), note=True))
    return Section("roc", "ROC curves (LiRA, RMIA, IAM)", tuple(blocks))


def _not_drawn_table(run: RunData, keys: list[str]) -> pd.DataFrame:
    table = run.leaderboard
    table = table[table["model"].isin(keys)].reset_index(drop=True)
    cols = [c for c in ("avg_gap", *(f"{m}_binui_auc" for m in ATTACKS)) if c in table]
    out = with_intervals(table[cols], table)
    out.insert(0, "method", table["model"].map(model_labels(run)))
    return out


def _attack_table(run: RunData) -> pd.DataFrame | None:
    table = ordered(run.leaderboard)
    cols = [f"{m}_binui_{s}" for m in ATTACKS for s in ("auc", "tpr@fpr=0.01", "tnr@fnr=0.01")]
    cols = [c for c in cols if c in table]
    return with_intervals(table[["method", *cols]], table) if cols else None


def histogram_section(run: RunData) -> Section:
    title = "Per-sample scores: retained vs unlearned"
    if run.audit is None:
        return Section("histograms", title, (Paragraph(NO_AUDIT, note=True),))
    labels = model_labels(run)
    for metric in HISTOGRAM_SCORES:
        scores = {label: (run.scores(k, metric, f"{metric}_retain"), run.scores(k, metric, f"{metric}_forget"))
                  for k, label in labels.items()}
        scores = {label: v for label, v in scores.items() if v[0] is not None and v[1] is not None}
        if scores:
            break
    else:
        return Section("histograms", title, (Paragraph("No IAM or RMIA per-sample scores in this audit.",
                                                       note=True),))
    retrain = next((scores[labels[k]][1] for k in labels if run.method(k) == "retrain" and labels[k] in scores),
                   None)
    name = ATTACKS[metric]
    text = (f"{name} membership score (online, higher = more member) of retained (blue) and unlearned (orange) "
            "training samples, per model; the black outline is the retrained model's unlearned samples. "
            "Unlearned samples that sit with the retained ones show under-unlearning; unlearned samples pushed "
            "further down than retrain's outline show over-unlearning (a detectable trace of the unlearning "
            "itself).")
    return Section("histograms", title, (Paragraph(text), Figure(
        f"scores_{metric}.png", figures.histogram_figure(scores, retrain, f"{name} score"),
        f"{name} score histograms (density), retained vs unlearned, per model.")))


def cr_section(run: RunData) -> Section:
    title = "Conformal coverage ratio (CR) against alpha"
    if run.audit is None:
        return Section("cr", title, (Paragraph(NO_AUDIT, note=True),))
    configured = [float(a) for a in run.audit_config.get("params", {}).get("cr", {}).get("alphas", (0.05,))]
    labels = model_labels(run)
    frames: dict[str, pd.DataFrame] = {}
    missing: list[str] = []
    alphas: list[float] = []
    for key, label in labels.items():
        outs = {s: run.outputs(key, s) for s in ("calibration", "forget", "retain", "test")}
        if any(v is None for v in outs.values()):
            missing.append(label)
            continue
        alphas = feasible_alphas(tuple(ALPHAS) + tuple(configured),
                                 calibration_sizes(outs["calibration"][1], run.forget_class))
        if alphas:
            frames[label] = cr_against_alpha(outs, run.forget_class, alphas)
    if not frames:
        return Section("cr", title, (Paragraph("No cached model outputs to compute CR from" +
                                               (f" (missing for {', '.join(missing)})." if missing else "."),
                                               note=True),))
    protocol = ("class-wise: the forgotten class and the other classes are calibrated apart; 'forget' = train "
                "samples of the forgotten class, 'test_forget' = its test samples, 'test' = test samples of the "
                "other classes. A model that has forgotten the class gives large sets and a low CR on "
                "'forget' and 'test_forget'" if run.forget_class is not None else
                "random forgetting: one calibration on the calibration split; retrain's CR on 'forget' is the "
                "target (close to its CR on 'test': forgotten samples treated like unseen ones)")
    wide = pd.concat({label: f.set_index(["set", "alpha"])["CR"] for label, f in frames.items()}, axis=1)
    wide = wide.reset_index()
    blocks: list[Block] = [
        Paragraph(f"CR = coverage / mean prediction-set size of split conformal prediction (LAC score), "
                  f"recomputed from each model's cached outputs for alpha in {', '.join(f'{a:g}' for a in alphas)} "
                  f"(the audit stored alpha {', '.join(f'{a:g}' for a in configured)}: dotted line). Protocol: "
                  f"{protocol}."),
        Figure("cr_alpha.png", figures.cr_alpha_figure(frames, model_styles(run), configured),
               "CR against alpha per model and evaluation set."),
        Details("CR per alpha (table)", (Table(wide),)),
    ]
    if missing:
        blocks.append(Paragraph(f"No cached outputs for {', '.join(missing)}.", note=True))
    return Section("cr", title, tuple(blocks))


def _pru_panels(curves: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    sets = (("forget_class_test", "forgotten-class test accuracy"), ("remaining_test", "remaining-class test accuracy"))
    return [{"title": text, "xlabel": "relearn epoch", "ylabel": "accuracy (%)",
             "lines": {label: (c["epoch"], 100 * np.asarray(c["acc"][name], dtype=float))
                       for label, c in curves.items() if name in c["acc"]}}
            for name, text in sets]


def _rcd_panels(curves: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    target = next(iter(curves.values())).get("target_acc")
    panels = [{"title": "RCD: forget accuracy while relearning", "xlabel": "SGD step on the forget set",
               "ylabel": "forget accuracy (%)",
               "lines": {label: (c["step"], 100 * np.asarray(c["acc"]["forget"], dtype=float))
                         for label, c in curves.items()},
               "hlines": {"target (tau x original)": 100 * target} if target is not None else {}}]
    dist = {label: (c["step"], c["dist_original"]) for label, c in curves.items()
            if np.isfinite(np.asarray(c.get("dist_original", []), dtype=float)).any()}
    if dist:
        panels.append({"title": "distance to the original's weights", "xlabel": "SGD step on the forget set",
                       "ylabel": "||theta_t - theta_original||", "lines": dist})
    return panels


RELEARN_TEXT = {
    "pru_relearn": ("Relearning attack (PRU protocol): each model is fine-tuned on remaining-class samples it "
                    "never saw (no forgotten-class sample), and the forgotten class's test accuracy is measured "
                    "per relearn epoch. Accuracy that climbs back means the knowledge was hidden, not removed; "
                    "retrain is the reference.", _pru_panels, "relearn_pru.png",
                    "Relearning curves: forgotten-class (left) and remaining-class (right) test accuracy per "
                    "relearn epoch."),
    "rcd": ("Relearning convergence delay (RCD, expunge's formalisation: the paper's definition is not public): "
            "plain SGD on the forget set until forget accuracy reaches tau x the original's; RCD = steps needed "
            "(capped). Fewer steps than retrain means the forgotten knowledge comes back easily.", _rcd_panels,
            "relearn_rcd.png", "RCD curves: forget accuracy per relearning step (and the weights' distance to the "
            "original)."),
}


def relearn_section(run: RunData) -> Section:
    title = "Relearning and RCD curves"
    curves = run.relearn_curves
    if not curves:
        text = NO_AUDIT if run.audit is None else "The audit did not run the relearn metric (add relearn to audit.metrics)."
        return Section("relearn", title, (Paragraph(text, note=True),))
    labels = model_labels(run)
    blocks: list[Block] = []
    for protocol, (text, panels, name, caption) in RELEARN_TEXT.items():
        order = [*[k for k in run.audited if k in curves], *[k for k in curves if k not in labels]]
        chosen = {labels.get(k, k): curves[k] for k in order if curves[k].get("protocol") == protocol}
        if not chosen:
            continue
        # audited models keep their colours; a curve of a model the audit no longer lists gets its own
        style = {**figures.styles(list(chosen), [""] * len(chosen)), **model_styles(run)}
        blocks += [Paragraph(text), Figure(name, figures.curve_figure(panels(chosen), style), caption)]
    table = _relearn_table(run)
    if table is not None:
        blocks.append(Table(table, caption="Relearning summary from the audit leaderboard (relearn_acc@k in "
                                           "percent, as in the curves)."))
    return Section("relearn", title, tuple(blocks) or (Paragraph("No relearning curves of a known protocol.",
                                                                 note=True),))


def _relearn_table(run: RunData) -> pd.DataFrame | None:
    if run.leaderboard is None:
        return None
    table = ordered(run.leaderboard)
    cols = [c for c in table.columns if c.startswith("relearn_acc@") or c in ("rcd_steps", "rcd_reached")]
    return table[["method", *cols]] if cols else None
