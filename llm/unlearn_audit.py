"""The per-epoch audit of an unlearning run: cached scores, attacks, utility, the table, the best
epoch and the report.

Models and roles (the IAM paper's LLM protocol, as :mod:`expunge.llm.audit`): the **original** model
trained on every forget and retain item (fit / IN); the optional **retain model** never saw the
forget set (reference / OUT); each epoch's checkpoint is the target. Every (model, set) pass goes
through one :class:`~expunge.llm.scoring.LogProbCache` keyed by the model's content (a stored
checkpoint's content hash, a directory's fingerprint), so the original and the retain model are
scored once per run and every later epoch, rerun or report reads them back.

Per model, on the forget (label ``unlearned``), retain (``member``) and held-out (``nonmember``) sets:

* attack AUCs (:func:`expunge.llm.evaluate.evaluate_scores`, higher score = more retained):
  BinUI = retained vs unlearned (the retain items are the positives) and forget vs held-out =
  unlearned vs non-member (0.5 = the forget items look never seen). Attacks: loss, zlib and Min-K%++
  always; IAM-On, LiRA-On and RMIA-On with a retain model (they need an OUT model; RMIA-On's population
  is the held-out set unless one is given). The retain items are IN for both the original and the
  retain model, so the online attacks' signal is on the forget items and their BinUI AUC is read
  against the retain model's own (as the ``retain`` objective does), not against 0.5;
* utility: perplexity PPL(S) = exp(Σ_{x∈S} Σ_t −log p(x_t | x_<t) / Σ_{x∈S} |x|) over the scored tokens
  of the retain and held-out sets (answer tokens for prompt/answer data), the forget loss (mean over
  forget items of the per-item mean token NLL ℓ), and for prompt/answer data TOFU's answer probability
  mean_i exp(−ℓ̄(a_i | q_i)) (:func:`expunge.llm.qa_metrics.answer_probability`) per set;
* utility drop = 100 · (PPL_e(held-out) / PPL_original(held-out) − 1), in percent (retain perplexity
  when there is no held-out set).

The best epoch (:func:`choose_best`), one of two stated objectives:

* ``retain`` (default with a retain model): the smallest mean over attacks a and tasks t of
  |AUC_e(a, t) − AUC_retain(a, t)|, the distance to the model that never saw the forget set;
* ``forgetting`` (default without one): the smallest |AUC_e(loss, forget vs held-out) − 0.5| among the
  epochs whose utility drop is at most ``utility_drop_max`` percent (default 5); when no epoch meets
  the constraint, the one with the smallest utility drop, and the result says so.

Ties go to the earlier epoch (fewer steps, less drift).
"""
from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from expunge.errors import ExpungeError
from expunge.llm.attacks import AttackInputs, resolve_attacks, run_attacks
from expunge.llm.scoring import LogProbCache, ScoringSettings, TokenScores
from expunge.llm.unlearn_data import UnlearnSplit

BINUI, FORGET_HELDOUT = "retained_vs_unlearned", "unlearned_vs_nonmember"
TASK_NAMES = {BINUI: "binui", FORGET_HELDOUT: "forget_vs_heldout"}
LABELS = {"forget": "unlearned", "retain": "member", "heldout": "nonmember"}
BASE_ATTACKS = ("loss", "zlib", "minkpp")
ONLINE_ATTACKS = ("iam_online", "lira_online", "rmia_online")
OBJECTIVES = ("retain", "forgetting")


def auc_column(attack: str, task: str) -> str:
    return f"{attack}_{TASK_NAMES[task]}_auc"


# --- models and their cached scores ------------------------------------------------------------
@dataclass
class ModelHandle:
    """A model to score: a directory (loaded on the first cache miss, released after) or an
    in-process ``model``; ``key`` is its cache key."""

    name: str
    key: str
    tokenizer: Any
    path: str | None = None
    model: Any = None
    trust_remote_code: bool = False
    device: str = "cpu"
    dtype: Any = None
    _loaded: Any = field(default=None, repr=False)

    def get(self) -> Any:
        if self.model is not None:
            return self.model
        if self._loaded is None:
            from expunge.llm.models import load_causal_lm

            self._loaded, _ = load_causal_lm(self.path, trust_remote_code=self.trust_remote_code, device=self.device,
                                             dtype=self.dtype)
        return self._loaded

    def release(self) -> None:
        if self._loaded is not None:
            self._loaded = None
            gc.collect()


class SplitScorer:
    """Per-token scores of a set under a model, through the cache: the full sequence of a text, the
    answer's tokens given the prompt for a prompt/answer item."""

    def __init__(self, cache: LogProbCache, settings: ScoringSettings | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.cache = cache
        self.settings = settings or ScoringSettings()
        self.log = log or (lambda m: None)

    def score(self, handle: ModelHandle, split: UnlearnSplit) -> TokenScores:
        from expunge.llm.models import tokenizer_fingerprint

        data = split.scoring_set()

        def compute() -> TokenScores:
            self.log(f"scoring {len(split)} {split.role} items under {handle.name}")
            model = handle.get()
            if split.qa:
                from expunge.llm.qa_scoring import answer_token_scores

                return answer_token_scores(model, handle.tokenizer, split.prompts, split.texts, split.ids,
                                           batch_tokens=self.cache.batch_tokens)
            from expunge.llm.scoring import token_logprobs

            return token_logprobs(model, handle.tokenizer, split.texts, split.ids, settings=self.settings,
                                  batch_tokens=self.cache.batch_tokens)

        # prompt/answer passes score the answer's tokens whole (no truncation or prefix settings)
        settings = ScoringSettings() if split.qa else self.settings
        return self.cache.get(data, compute, model_key=handle.key,
                              tokenizer_key=tokenizer_fingerprint(handle.tokenizer), settings=settings,
                              label=f"{handle.name}:{split.role}")

    def score_all(self, handle: ModelHandle, sets: "AuditSets") -> dict[str, TokenScores]:
        try:
            return {role: self.score(handle, s) for role, s in sets.scored().items()}
        finally:
            handle.release()


@dataclass(frozen=True)
class AuditSets:
    """The sets every model is scored on (each capped at the audit's ``max_samples``)."""

    forget: UnlearnSplit
    retain: UnlearnSplit | None
    heldout: UnlearnSplit | None
    population: UnlearnSplit | None = None  # RMIA-On's; the held-out set when None

    def queries(self) -> dict[str, UnlearnSplit]:
        return {r: s for r, s in (("forget", self.forget), ("retain", self.retain), ("heldout", self.heldout))
                if s is not None}

    def scored(self) -> dict[str, UnlearnSplit]:
        out = self.queries()
        if self.population is not None:
            out["population"] = self.population
        return out

    def pop_role(self) -> str | None:
        return "population" if self.population is not None else ("heldout" if self.heldout is not None else None)

    def labels(self) -> np.ndarray:
        return np.concatenate([np.full(len(s), LABELS[r]) for r, s in self.queries().items()])

    def texts(self) -> list[str]:
        # zlib's entropy is of the scored text: the whole text, or the answer of a prompt/answer item
        return [t for s in self.queries().values() for t in s.texts]

    def ids(self) -> list[str]:
        return [f"{r}:{i}" for r, s in self.queries().items() for i in s.ids]

    def tasks(self) -> list[str]:
        out = [BINUI] if self.retain is not None else []
        return out + ([FORGET_HELDOUT] if self.heldout is not None else [])


def default_attacks(has_reference: bool) -> list[str]:
    """loss, zlib and Min-K%++; plus IAM-On, LiRA-On and RMIA-On when a retain (OUT) model is given."""
    return list(BASE_ATTACKS) + (list(ONLINE_ATTACKS) if has_reference else [])


def plan_attacks(names: Sequence[str] | None, sets: AuditSets, has_reference: bool) -> tuple[list[str], dict[str, str]]:
    """The attacks that run and, for the default ones that cannot, why (a named attack whose input is
    missing is an error)."""
    avail = {"fit"} | ({"reference"} if has_reference else set()) | ({"population"} if sets.pop_role() else set())
    wanted = list(names) if names else default_attacks(has_reference)
    run, skipped = resolve_attacks(wanted, avail, strict=bool(names))
    if not run:
        raise ExpungeError("no attack can run with the models and sets given")
    return run, skipped


# --- one model's audit -------------------------------------------------------------------------
def _concat(scores: dict[str, TokenScores], sets: AuditSets) -> TokenScores:
    # ids are unique within a set, not across sets (row numbers when no id column): prefix the role
    parts = []
    for r in sets.queries():
        s = scores[r]
        parts.append(TokenScores([f"{r}:{i}" for i in s.ids], s.offsets, s.logp, s.mu, s.var, s.mu_u, s.var_u))
    return TokenScores.concat(parts)


def perplexity(s: TokenScores) -> float:
    """exp(Σ token NLL / number of scored tokens) over the whole set."""
    return float(np.exp(-np.sum(s.logp, dtype=np.float64) / max(s.n_tokens, 1)))


def audit_model(target: dict[str, TokenScores], fit: dict[str, TokenScores], ref: dict[str, TokenScores] | None,
                sets: AuditSets, attacks: Sequence[str], params: dict[str, dict[str, Any]] | None = None,
                n_boot: int = 0, seed: int = 0) -> dict[str, Any]:
    """Attack scores, AUCs and utility of one model (module docstring). Returns ``{"scores": {attack:
    [N]}, "results": per (attack, task) rows, "row": the table's columns for this model}``."""
    from expunge.llm.evaluate import evaluate_scores
    from expunge.llm.qa_metrics import answer_probability

    pop = sets.pop_role()
    inp = AttackInputs(texts=sets.texts(), target=_concat(target, sets), fit=[_concat(fit, sets)],
                       refs=[_concat(ref, sets)] if ref is not None else [],
                       pop_target=target[pop] if pop else None, pop_fit=[fit[pop]] if pop else [],
                       pop_refs=[ref[pop]] if pop and ref is not None else [])
    scores = run_attacks(inp, attacks, params)
    results = evaluate_scores(scores, sets.labels(), tasks=sets.tasks(), n_boot=n_boot, seed=seed)
    row: dict[str, Any] = {"forget_loss": float(np.mean(target["forget"].nll()))}
    for role in ("retain", "heldout"):
        if role in target and role in sets.queries():
            row[f"{role}_ppl"] = perplexity(target[role])
    if sets.forget.qa:
        for role in sets.queries():
            row[f"{role}_answer_prob"] = float(np.mean(answer_probability(target[role].nll())))
    for r in results.itertuples(index=False):
        row[auc_column(r.attack, r.task)] = float(getattr(r, "auc", np.nan))
    return {"scores": scores, "results": results, "row": row}


# --- the table and the best epoch --------------------------------------------------------------
def utility_column(table: pd.DataFrame) -> str:
    """The perplexity the utility drop is measured on: held-out, else retain."""
    return "heldout_ppl" if "heldout_ppl" in table.columns else "retain_ppl"


def add_utility_drop(table: pd.DataFrame) -> pd.DataFrame:
    """``utility_drop_pct`` = 100 · (PPL / PPL_original − 1) on :func:`utility_column`."""
    col = utility_column(table)
    base = float(table.loc[table["model"] == "original", col].iloc[0])
    out = table.copy()
    out["utility_drop_pct"] = 100.0 * (out[col] / base - 1.0)
    return out


def auc_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.endswith("_auc")]


def objective_values(table: pd.DataFrame, objective: str) -> np.ndarray:
    """Per row: ``retain``: mean_{a,t} |AUC(a, t) − AUC_retain(a, t)| over the AUC columns finite in both
    rows; ``forgetting``: |AUC(loss, forget vs held-out) − 0.5|. Lower is better for both."""
    if objective == "retain":
        ref = table.loc[table["model"] == "retain model"]
        if ref.empty:
            raise ExpungeError("objective 'retain' needs a retain model (retain_model=)")
        cols = auc_columns(table)
        a = table[cols].to_numpy(dtype=np.float64)
        r = ref[cols].to_numpy(dtype=np.float64)[0]
        d = np.abs(a - r)
        ok = np.isfinite(d)
        return np.where(ok.any(1), np.nansum(np.where(ok, d, 0.0), 1) / np.maximum(ok.sum(1), 1), np.nan)
    if objective == "forgetting":
        col = auc_column("loss", FORGET_HELDOUT)
        if col not in table.columns:
            raise ExpungeError("objective 'forgetting' needs a held-out set (heldout=) and the loss attack")
        return np.abs(table[col].to_numpy(dtype=np.float64) - 0.5)
    raise ExpungeError(f"unknown objective {objective!r} (known: {', '.join(OBJECTIVES)})")


def choose_best(table: pd.DataFrame, objective: str, utility_drop_max: float) -> dict[str, Any]:
    """The best epoch by ``objective`` (module docstring); returns ``{"epoch", "objective", "value",
    "constraint_met", "why"}``. ``table`` has the ``utility_drop_pct`` column; only epoch rows compete."""
    values = objective_values(table, objective)
    epochs = _epochs(table)
    cand = (epochs >= 1) & np.isfinite(values)
    if not cand.any():
        raise ExpungeError(f"no checkpoint has a finite '{objective}' objective")
    drop = table["utility_drop_pct"].to_numpy(dtype=np.float64)
    met = True
    if objective == "forgetting":
        ok = cand & (drop <= utility_drop_max)
        if ok.any():
            cand = ok
        else:
            met = False
    idx = np.flatnonzero(cand)
    if objective == "forgetting" and not met:
        pick = idx[np.argmin(drop[idx])]  # first minimum: the earliest epoch among ties
    else:
        pick = idx[np.argmin(values[idx])]
    e, v = int(epochs[pick]), float(values[pick])
    if objective == "retain":
        why = (f"epoch {e} is closest to the retain model: mean |AUC - AUC_retain| over the attacks and tasks = "
               f"{v:.4f} (smallest of epochs {', '.join(str(int(x)) for x in epochs[idx])})")
    elif met:
        why = (f"epoch {e} forgets most within the utility constraint: |AUC(loss, forget vs held-out) - 0.5| = "
               f"{v:.4f} with a utility drop of {drop[pick]:.2f}% <= {utility_drop_max:g}%")
    else:
        why = (f"no epoch keeps the utility drop within {utility_drop_max:g}%; epoch {e} has the smallest drop "
               f"({drop[pick]:.2f}%), |AUC(loss, forget vs held-out) - 0.5| = {v:.4f}")
    return {"epoch": e, "objective": objective, "value": v, "constraint_met": met,
            "utility_drop_pct": float(drop[pick]), "utility_drop_max": utility_drop_max, "why": why}


def _epochs(table: pd.DataFrame) -> np.ndarray:
    """The epoch column as ints: 0 for the original, -1 for the retain model (no epoch)."""
    return table["epoch"].astype("Float64").fillna(-1).to_numpy(dtype=np.float64).astype(int)


# --- the report --------------------------------------------------------------------------------
def _tradeoff_png(table: pd.DataFrame, best: dict[str, Any]) -> bytes:
    """Objective (forgetting or distance to the retain model) against utility drop, one point per epoch."""
    from matplotlib.figure import Figure as MplFigure

    from expunge.report.figures import to_png

    ep = table[_epochs(table) >= 1]
    fig = MplFigure(figsize=(4.6, 3.6))
    ax = fig.subplots()
    ax.plot(ep["utility_drop_pct"], ep["objective"], marker="o", ms=4, color="tab:blue", lw=1.2)
    for e, x, y in zip(ep["epoch"], ep["utility_drop_pct"], ep["objective"]):
        ax.annotate(str(int(e)), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    b = ep[ep["epoch"] == best["epoch"]]
    ax.plot(b["utility_drop_pct"], b["objective"], marker="*", ms=14, color="tab:red", ls="none",
            label=f"best: epoch {best['epoch']}")
    if best["objective"] == "forgetting":
        ax.axvline(best["utility_drop_max"], color="tab:red", ls=":", lw=1, label="utility limit")
    ax.set_xlabel("utility drop (% perplexity increase)")
    ax.set_ylabel({"retain": "mean |AUC - AUC_retain|", "forgetting": "|AUC_loss(forget vs held-out) - 0.5|"}
                  [best["objective"]])
    ax.set_title("forgetting vs utility (epoch numbers)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)


def _curves_png(table: pd.DataFrame, attacks: Sequence[str], tasks: Sequence[str], best: dict[str, Any]) -> bytes:
    from expunge.report import figures

    ep = table[_epochs(table) >= 0]
    x = _epochs(ep)
    retain_row = table[table["model"] == "retain model"]
    panels = []
    for task in tasks:
        lines = {a: (x, ep[auc_column(a, task)].to_numpy(dtype=float)) for a in attacks
                 if auc_column(a, task) in ep.columns}
        hlines = {"never seen (0.5)": 0.5} if task == FORGET_HELDOUT else {}
        if not retain_row.empty and auc_column("loss", task) in retain_row.columns:
            hlines["retain model (loss)"] = float(retain_row[auc_column("loss", task)].iloc[0])
        panels.append({"title": {BINUI: "BinUI: retained vs unlearned", FORGET_HELDOUT: "forget vs held-out"}[task],
                       "xlabel": "epoch (0 = original)", "ylabel": "AUC", "lines": lines, "hlines": hlines})
    ppl = {c.replace("_ppl", "") + " perplexity": (x, ep[c].to_numpy(dtype=float))
           for c in ("retain_ppl", "heldout_ppl") if c in ep.columns}
    limit = {}
    if best["objective"] == "forgetting":
        base = float(table.loc[table["model"] == "original", utility_column(table)].iloc[0])
        limit = {f"utility limit (+{best['utility_drop_max']:g}%)": base * (1 + best["utility_drop_max"] / 100)}
    panels.append({"title": "utility", "xlabel": "epoch (0 = original)", "ylabel": "perplexity", "lines": ppl,
                   "hlines": limit})
    labels = list(dict.fromkeys(k for p in panels for k in p["lines"]))
    return figures.curve_figure(panels, figures.styles(labels, ["method"] * len(labels)))


def report_files(table: pd.DataFrame, best: dict[str, Any], best_scores: dict[str, np.ndarray], sets: AuditSets,
                 attacks: Sequence[str], *, title: str, notes: Sequence[str], where: Sequence[str]) -> dict[str, Any]:
    """report.md, report.html and the figures: the result, per-epoch curves, the table, the best
    checkpoint's ROC curves."""
    from expunge.llm.evaluate import roc_png
    from expunge.report.blocks import Bullets, Figure, Paragraph, Section, Table
    from expunge.report.html import render_html
    from expunge.report.markdown import render_markdown

    figs = {"curves.png": _curves_png(table, attacks, sets.tasks(), best),
            "tradeoff.png": _tradeoff_png(table, best)}
    rocs = {}
    for task in sets.tasks():
        png = roc_png(best_scores, sets.labels(), task, title=f"epoch {best['epoch']}: {task.replace('_', ' ')}")
        if png:
            rocs[f"roc_best_{TASK_NAMES[task]}.png"] = png
    shown = table.drop(columns=[c for c in ("checkpoint",) if c in table.columns])
    has_ref = bool((table["model"] == "retain model").any())
    best_row = int(np.flatnonzero(_epochs(table) == best["epoch"])[0])
    sections = [
        Section("result", "Best checkpoint", (Paragraph(best["why"]), Bullets(tuple(where)),
                                              *(Paragraph(n, note=True) for n in notes))),
        Section("curves", "Per-epoch curves", (
            Figure("curves.png", figs["curves.png"],
                   "attack AUCs and perplexity per epoch (epoch 0 = the original model; dotted lines: 0.5"
                   + (" and the retain model's loss-attack AUC)" if has_ref else ")")),
            Figure("tradeoff.png", figs["tradeoff.png"], "the selection objective against the utility drop, per "
                                                         "epoch; lower is better on both axes"))),
        Section("table", "Per-epoch table", (Table(shown, {"objective": frozenset({best_row})},
                                                   "original = before unlearning"
                                                   + ("; retain model = reference (OUT)" if has_ref else "")),)),
        Section("roc", f"ROC of the best checkpoint (epoch {best['epoch']})",
                tuple(Figure(n, p, n[len("roc_best_"):-4].replace("_", " ")) for n, p in rocs.items())
                or (Paragraph("no task had both of its classes", note=True),)),
    ]
    subtitle = f"objective: {best['objective']}"
    return {"report.md": render_markdown(title, subtitle, sections),
            "report.html": render_html(title, subtitle, sections), **figs, **rocs}
