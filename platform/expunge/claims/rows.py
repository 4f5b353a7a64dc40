"""The claims of the four seed papers, each a pure function from per-seed leaderboards to rows.

``tables[protocol][seed]`` is the leaderboard of that protocol's run for that seed (the pipeline's
``audit/results/leaderboard``: one row per model, ``method`` naming it, accuracies in percent, AUCs
in [0, 1]). Every function returns :class:`~expunge.claims.verdicts.ClaimRow` objects; the rule each
verdict applies is stated in the row (see :mod:`expunge.claims.verdicts`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from expunge.claims.verdicts import (NOT_TESTABLE, ClaimRow, above_by, beats, mean_std, near, verdict)

Tables = dict[str, dict[int, pd.DataFrame]]
ATTACKS = {"lira": "LiRA", "rmia": "RMIA", "iam": "IAM"}


def per_seed(tables: dict[int, pd.DataFrame], method: str, column: str) -> np.ndarray:
    """``column`` of ``method``'s row on every seed (sorted), NaN where the seed lacks it."""
    out = []
    for s in sorted(tables):
        t = tables[s]
        row = t[t["method"] == method]
        out.append(float(row[column].iloc[0]) if len(row) and column in t.columns else np.nan)
    return np.asarray(out, dtype=float)


def chance_rows(tables: Tables, protocols: tuple[str, ...] = ("mislabeled", "random")) -> list[ClaimRow]:
    """(a) An exactly retrained model's forget set looks like held-out data drawn the same way
    (forget-vs-held-out AUC 0.5) while the original's does not, and BinUI (retained vs forgotten)
    separates the retrained model's forget set better than the original's."""
    rows = []
    for proto in protocols:
        if proto not in tables:
            continue
        t = tables[proto]
        for key, name in ATTACKS.items():
            r = per_seed(t, "retrain", f"{key}_forget_vs_heldout_auc")
            o = per_seed(t, "original", f"{key}_forget_vs_heldout_auc")
            rb = per_seed(t, "retrain", f"{key}_binui_auc")
            ob = per_seed(t, "original", f"{key}_binui_auc")
            ok = near(r, 0.5, 0.1) and above_by(o, r, 0.15) and above_by(rb, ob, 0.15)
            rows.append(ClaimRow(
                f"(a) retrain at chance, {name}", "a retrained model is at chance on its forget set; the "
                "original is clearly above", "",
                f"forget vs held-out AUC: retrain {mean_std(r)}, original {mean_std(o)}; BinUI AUC: retrain "
                f"{mean_std(rb)}, original {mean_std(ob)}",
                "|retrain - 0.5| <= 0.1, original - retrain >= 0.15 (forget vs held-out), and retrain - "
                "original >= 0.15 (BinUI)", verdict(ok), proto, len(t)))
    return rows


#: the IAM paper's CIFAR-100 BinUI AUCs with one shadow (percent), Table 1
IAM_PAPER = {"iam": 90.87, "rmia": 87.41, "lira": 87.92}


def one_shadow_rows(tables: Tables, protocols: tuple[str, ...] = ("one_shadow", "one_shadow_memorising")
                    ) -> list[ClaimRow]:
    """(b) With a single shadow, IAM-On separates retained from retrained-away samples (BinUI AUC of
    the retrained model) better than RMIA-On and LiRA-On."""
    rows = []
    for proto in protocols:
        if proto not in tables:
            continue
        t = tables[proto]
        iam = per_seed(t, "retrain", "iam_binui_auc")
        for other in ("rmia", "lira"):
            o = per_seed(t, "retrain", f"{other}_binui_auc")
            ok, wins, n = beats(iam, o)
            rows.append(ClaimRow(
                f"(b) IAM vs {ATTACKS[other]}, 1 shadow", f"IAM-On's BinUI AUC beats {ATTACKS[other]}-On's",
                f"CIFAR-100: IAM {IAM_PAPER['iam']:.2f} vs {ATTACKS[other]} {IAM_PAPER[other]:.2f}",
                f"IAM {mean_std(iam)} vs {ATTACKS[other]} {mean_std(o)} (IAM higher on {wins}/{n} seeds)",
                "IAM higher on every seed", verdict(ok), proto, len(t)))
    return rows


CPU_BASES = ("finetune", "rl", "salun")


def cpu_rows(tables: Tables, protocol: str = "random") -> list[ClaimRow]:
    """(c) Adding the CPU hinge raises a method's UA (the CP paper: +6.6% on average), at some cost
    in TA; and CR's conformal sets expose "fake unlearning" (misclassified forget samples whose true
    label stays inside the set)."""
    if protocol not in tables:
        return []
    t = tables[protocol]
    rows = []
    gains = []
    for base in CPU_BASES:
        ua, ua_cpu = per_seed(t, base, "UA"), per_seed(t, f"{base}+cpu", "UA")
        ta, ta_cpu = per_seed(t, base, "TA"), per_seed(t, f"{base}+cpu", "TA")
        ok, wins, n = beats(ua_cpu, ua)
        gains.append(ua_cpu - ua)
        rows.append(ClaimRow(
            f"(c) CPU raises UA of {base}", "the CPU hinge raises unlearning accuracy", "+6.6 UA points on average",
            f"UA {mean_std(ua, 2)} -> {mean_std(ua_cpu, 2)} (change {mean_std(ua_cpu - ua, 2)}; higher on "
            f"{wins}/{n} seeds); TA change {mean_std(ta_cpu - ta, 2)}", "UA with CPU higher on every seed", verdict(ok),
            protocol, len(t)))
    mean_gain = np.nanmean(np.stack(gains), axis=0)
    rows.append(ClaimRow(
        "(c) CPU's average UA gain", "the average UA gain over methods", "+6.6", f"{mean_std(mean_gain, 2)}",
        "mean over finetune, rl, salun within 3 points of +6.6", verdict(near(mean_gain, 6.6, 3.0)), protocol, len(t)))
    methods = [m for m in dict.fromkeys(pd.concat(list(t.values()))["method"]) if m != "original"]
    counts = {m: per_seed(t, m, "fake_unlearned") for m in methods}
    found = [m for m, c in counts.items() if np.nanmean(c) > 0] if counts else []
    listed = "; ".join(f"{m} {mean_std(c, 1)}" for m, c in counts.items())
    rows.append(ClaimRow(
        "(c) CR exposes fake unlearning", "some misclassified forget samples keep their true label in the "
        "conformal set", "", f"fake-unlearned forget samples per method: {listed}",
        "at least one method has fake-unlearned samples on average",
        verdict(bool(found)) if counts else NOT_TESTABLE + " (no CR values)", protocol, len(t)))
    return rows


PRU_BASELINES = ("ga", "boundary_shrink", "boundary_expanding")


def relearn_rows(tables: Tables, protocol: str = "class", k: int = 10) -> list[ClaimRow]:
    """(d) After the relearning attack (fine-tuning on remaining-class data only), PRU's
    forgotten-class accuracy stays lower than that of the other forget-data-only methods."""
    if protocol not in tables:
        return []
    t = tables[protocol]
    col = f"relearn_acc@{k}"
    pru = per_seed(t, "pru", col)
    rows = []
    for base in PRU_BASELINES:
        b = per_seed(t, base, col)
        ok, wins, n = beats(pru, b, higher_is_better=False)
        rows.append(ClaimRow(
            f"(d) PRU vs {base} under relearning", f"PRU's forgotten-class accuracy after {k} relearn epochs "
            f"is lower than {base}'s", "",
            f"{col}: PRU {mean_std(pru, 1)} vs {base} {mean_std(b, 1)} (PRU lower on {wins}/{n}); UA: PRU "
            f"{mean_std(per_seed(t, 'pru', 'UA'), 1)}, {base} {mean_std(per_seed(t, base, 'UA'), 1)}",
            "PRU lower on every seed", verdict(ok), protocol, len(t)))
    return rows


def rcd_rows(tables: Tables, protocol: str = "mislabeled", ta_tolerance: float = 3.0) -> list[ClaimRow]:
    """(e) IEU delays relearning: its relearning convergence delay (RCD, steps of fine-tuning on the
    forget set until the original's forget accuracy is reached) exceeds fine-tuning's and GA's at
    comparable test accuracy."""
    if protocol not in tables:
        return []
    t = tables[protocol]
    ieu, ieu_ta = per_seed(t, "ieu", "rcd_steps"), per_seed(t, "ieu", "TA")
    rows = []
    for base in ("finetune", "ga"):
        b, b_ta = per_seed(t, base, "rcd_steps"), per_seed(t, base, "TA")
        ok, wins, n = beats(ieu, b)
        ta_gap = float(np.nanmean(np.abs(ieu_ta - b_ta)))
        comparable = ta_gap <= ta_tolerance
        ours = (f"RCD steps: IEU {mean_std(ieu, 1)} vs {base} {mean_std(b, 1)} (IEU higher on {wins}/{n}); TA: "
                f"IEU {mean_std(ieu_ta, 2)}, {base} {mean_std(b_ta, 2)}")
        rows.append(ClaimRow(
            f"(e) IEU's RCD vs {base}", f"IEU's relearning convergence delay exceeds {base}'s at comparable TA",
            "", ours, f"IEU higher on every seed, mean |TA difference| <= {ta_tolerance:g}",
            verdict(ok) if comparable else f"{NOT_TESTABLE} (TA differs by {ta_gap:.1f} points)", protocol, len(t)))
    return rows


#: the IAM paper's CIFAR-100 ScoreUI Spearman with one shadow (Table 2)
SCOREUI_PAPER = {"iam": 0.713, "lira": 0.637, "rmia": 0.405}


def scoreui_rows(spearman: dict[str, np.ndarray], protocol: str = "mislabeled") -> list[ClaimRow]:
    """(f) IAM's scores track partial membership (ScoreUI Spearman) better than LiRA's and RMIA's.
    ``spearman[attack]`` holds one Spearman per seed."""
    if not spearman:
        return []
    iam = spearman["iam"]
    rows = []
    for other in ("lira", "rmia"):
        ok, wins, n = beats(iam, spearman[other])
        rows.append(ClaimRow(
            f"(f) ScoreUI: IAM vs {ATTACKS[other]}", f"IAM-On's ScoreUI Spearman beats {ATTACKS[other]}-On's",
            f"CIFAR-100: IAM {SCOREUI_PAPER['iam']:.3f} vs {ATTACKS[other]} {SCOREUI_PAPER[other]:.3f}",
            f"IAM {mean_std(iam)} vs {ATTACKS[other]} {mean_std(spearman[other])} (IAM higher on {wins}/{n})",
            "IAM higher on every seed", verdict(ok), protocol, len(iam)))
    return rows
