"""Question-answering metrics of LLM unlearning: TOFU's probability, ROUGE, truth ratio, forget quality
and model utility, and MUSE's privleak. Pure functions on arrays, and a registry of them.

Sources:

* **TOFU**: Maini, Feng, Schwarzschild, Lipton & Kolter, "TOFU: A Task of Fictitious Unlearning for
  LLMs", 2024, arXiv 2401.06121 (section 2.5 and its evaluation code; OpenUnlearning,
  ``locuslab/open-unlearning``, keeps the same definitions);
* **MUSE**: Shi, Liang, Xia, et al., "MUSE: Machine Unlearning Six-Way Evaluation for Language
  Models", 2024, arXiv 2407.06460.

Inputs are per-question arrays computed once per (model, split) by
:func:`expunge.llm.qa_scoring.score_qa_split`: ℓ̄(a | q), the **mean** negative log-likelihood of an
answer's tokens given the question (so exp(−ℓ̄) = P(a | q)^{1/|a|}, TOFU's length normalisation),
for the answer, the paraphrased answer and the M perturbed answers, and the ROUGE-L recall of the
model's greedy answer.

Registry: :data:`QA_METRICS` holds one adapter per metric, registered with :func:`register_qa_metric`
(the signature of :func:`expunge.llm.attacks.register_attack`: a name, the inputs it ``needs``, its
default parameters). An adapter reads :class:`QAInputs` and returns ``{column: value}``;
:func:`run_qa_metrics` runs every metric whose inputs exist and lists the others with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np

from expunge.errors import ExpungeError
from expunge.registry import Registry

QA_METRICS: Registry = Registry("LLM QA metric")
#: the inputs a QA metric may need: the splits, perturbed / paraphrased answers, greedy-answer ROUGE,
#: the retain model's scores on the forget split, and attack AUCs of the audited and the retain model
QA_NEEDS = ("forget", "retain", "heldout", "perturbed", "rouge", "retain_model", "auc")
Split = Literal["forget", "retain"]


# --- pure functions --------------------------------------------------------------------------
def answer_probability(answer_nll: np.ndarray) -> np.ndarray:
    """Per question p = exp(−ℓ̄(a | q)) = P(a | q)^{1/|a|}, the length-normalised probability of the
    answer (TOFU's "Probability" on the forget and retain sets; the split's score is the mean)."""
    return np.exp(-np.asarray(answer_nll, dtype=np.float64))


def normalised_answer_probability(answer_nll: np.ndarray, perturbed_nll: np.ndarray) -> np.ndarray:
    """Per question p(a) / (p(a) + Σ_m p(â_m)) with p = exp(−ℓ̄): the answer's share among the answer
    and its M perturbed alternatives (TOFU's "Probability" on its Real Authors and World Facts sets,
    which are scored like a multiple-choice question). ``perturbed_nll`` is [N, M]."""
    p = answer_probability(answer_nll)
    pert = answer_probability(_as_2d(perturbed_nll, len(p), "perturbed_nll"))
    return p / (p + pert.sum(axis=1))


def truth_ratios(paraphrased_nll: np.ndarray, perturbed_nll: np.ndarray) -> np.ndarray:
    """TOFU's truth ratio per question,

        R = (Π_m P(â_m | q)^{1/|â_m|})^{1/M} / P(ã | q)^{1/|ã|} = exp(ℓ̄(ã) − (1/M) Σ_m ℓ̄(â_m)),

    the geometric mean of the M perturbed answers' length-normalised probabilities over the
    paraphrased answer's (ã paraphrased, â_m perturbed). The paper writes the numerator as an
    arithmetic mean; its code, and OpenUnlearning's, average the mean losses, i.e. take the geometric
    mean, as here. R < 1: the model prefers the true paraphrase; R ≈ 1: it cannot tell true from
    false. ``paraphrased_nll`` is [N], ``perturbed_nll`` [N, M]."""
    para = np.asarray(paraphrased_nll, dtype=np.float64)
    pert = _as_2d(perturbed_nll, len(para), "perturbed_nll")
    return np.exp(para - pert.mean(axis=1))


def truth_ratio_score(ratios: np.ndarray, split: Split) -> float:
    """A split's truth-ratio score (TOFU, its per-split convention; higher is better on both):

    * ``"forget"``: mean_i min(R_i, 1/R_i), 1 when the model finds true and false answers equally
      likely (as a model that never saw the author), lower when it prefers either;
    * ``"retain"`` (and every non-forget set: retain, real authors, world facts, held-out QA):
      mean_i max(0, 1 − R_i), the margin by which the true paraphrase beats the perturbations.

    (TOFU's code computes R' = 1/R and writes these as min(R', 1/R') and max(0, 1 − 1/R'), the same
    numbers.)"""
    r = np.asarray(ratios, dtype=np.float64)
    if r.size == 0:
        raise ExpungeError("truth ratio of an empty split")
    if np.any(~np.isfinite(r)) or np.any(r <= 0):
        raise ExpungeError("truth ratios must be finite and positive")
    if split == "forget":
        return float(np.mean(np.minimum(r, 1.0 / r)))
    if split == "retain":
        return float(np.mean(np.maximum(0.0, 1.0 - r)))
    raise ExpungeError(f"truth-ratio split must be 'forget' or 'retain', got {split!r}")


def rouge_l_recall(predictions: Sequence[str], references: Sequence[str], use_stemmer: bool = True) -> np.ndarray:
    """Per question the ROUGE-L recall of a generated answer against the reference answer: LCS(ref,
    pred) / |ref| in tokens, from the ``rouge-score`` package (Lin 2004), with Porter stemming as TOFU
    uses it (lowercased, non-alphanumerics dropped by the package's tokenizer)."""
    if len(predictions) != len(references):
        raise ExpungeError(f"{len(predictions)} generated answers for {len(references)} references")
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
    return np.array([scorer.score(ref, pred)["rougeL"].recall for pred, ref in zip(predictions, references)],
                    dtype=np.float64)


def forget_quality_test(unlearned_ratios: np.ndarray, retain_ratios: np.ndarray) -> tuple[float, float]:
    """(KS statistic, p-value) of the two-sample Kolmogorov–Smirnov test (``scipy.stats.ks_2samp``,
    two-sided, its default exact/asymptotic choice) between the truth ratios of the unlearned model
    and of the retain model on the forget set (TOFU's "Forget Quality"). The test depends only on
    the ranks of the pooled values, so R and 1/R give the same p-value."""
    from scipy.stats import ks_2samp

    u = np.asarray(unlearned_ratios, dtype=np.float64)
    r = np.asarray(retain_ratios, dtype=np.float64)
    if u.size == 0 or r.size == 0:
        raise ExpungeError("forget quality needs truth ratios of both models")
    res = ks_2samp(u, r)
    return float(res.statistic), float(res.pvalue)


def forget_quality(unlearned_ratios: np.ndarray, retain_ratios: np.ndarray) -> float:
    """TOFU's forget quality: the p-value of :func:`forget_quality_test`. Near 1: the unlearned model's
    truth ratios on the forget set are distributed like the retain model's; small (TOFU plots log10):
    they are distinguishable."""
    return forget_quality_test(unlearned_ratios, retain_ratios)[1]


def model_utility(values: Sequence[float] | Mapping[str, float]) -> float:
    """TOFU's model utility: the harmonic mean H = n / Σ_i 1/x_i of the non-forget scores (TOFU:
    probability, ROUGE and truth-ratio score on retain, real authors and world facts, nine numbers;
    here retain and held-out QA). H = 0 when any x_i = 0 (the limit, as ``scipy.stats.hmean``), so
    one destroyed ability zeroes the utility. Every x_i must lie in [0, ∞)."""
    x = np.asarray(list(values.values()) if isinstance(values, Mapping) else list(values), dtype=np.float64)
    if x.size == 0:
        raise ExpungeError("model utility needs at least one score")
    if np.any(~np.isfinite(x)) or np.any(x < 0):
        raise ExpungeError(f"model utility scores must be finite and >= 0, got {x.tolist()}")
    if np.any(x == 0):
        return 0.0
    return float(x.size / np.sum(1.0 / x))


def privleak(auc_unlearned: float, auc_retrain: float, orientation: Literal["member", "muse"] = "member") -> float:
    """MUSE's PrivLeak in percent,

        PrivLeak = (AUC(f_unlearn; D_forget, D_holdout) − AUC(f_retrain; D_forget, D_holdout))
                   / AUC(f_retrain; D_forget, D_holdout) × 100,

    the relative gap of a membership attack's AUC (forget vs holdout) between the unlearned model and
    the model retrained without the forget set; near 0 is ideal.

    Sign convention: MUSE's AUC is that of the holdout set against the forget set with score −loss
    (``roc_curve([0]*forget + [1]*holdout, −ppl)`` in its code), i.e. 1 − AUC of "forget looks
    member", so a model that still remembers the forget set has AUC near 0 and a **negative**
    PrivLeak (MUSE reports about −100 for the original model): negative = under-unlearning, positive
    = over-unlearning. With ``orientation="member"`` (default) the AUCs are expunge's, forget
    (unlearned) samples as the positive class of member-oriented scores (the
    ``unlearned_vs_nonmember`` task of :func:`expunge.llm.evaluate.evaluate_scores`), and are turned
    into MUSE's as 1 − AUC first; ``"muse"`` takes them as MUSE's. Either way the result has MUSE's
    sign. (OpenUnlearning's ``privleak`` makes the same 1 − AUC conversion.)"""
    u, r = float(auc_unlearned), float(auc_retrain)
    for name, v in (("auc_unlearned", u), ("auc_retrain", r)):
        if not 0.0 <= v <= 1.0:
            raise ExpungeError(f"{name} must be an AUC in [0, 1], got {v}")
    if orientation == "member":
        u, r = 1.0 - u, 1.0 - r
    elif orientation != "muse":
        raise ExpungeError(f"privleak orientation must be 'member' or 'muse', got {orientation!r}")
    if r == 0.0:
        raise ExpungeError("privleak is undefined when the retrained model's (MUSE-oriented) AUC is 0")
    return (u - r) / r * 100.0


def _as_2d(a: np.ndarray, n: int, name: str) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] != n or x.shape[1] < 1:
        raise ExpungeError(f"{name} must be [N, M] with N = {n} and M >= 1, got shape {np.shape(a)}")
    return x


# --- inputs and registry ---------------------------------------------------------------------
@dataclass
class QASplitScores:
    """One model's per-question arrays on one QA split (any may be None when not computed):
    ``answer_nll`` [N], ``paraphrased_nll`` [N], ``perturbed_nll`` [N, M] mean answer-token NLLs;
    ``rouge`` [N] ROUGE-L recall of the greedy answers; ``generated`` the greedy answers."""

    answer_nll: np.ndarray
    paraphrased_nll: np.ndarray | None = None
    perturbed_nll: np.ndarray | None = None
    rouge: np.ndarray | None = None
    generated: list[str] | None = None

    @property
    def has_perturbed(self) -> bool:
        return self.paraphrased_nll is not None and self.perturbed_nll is not None

    def truth_ratios(self) -> np.ndarray:
        if not self.has_perturbed:
            raise ExpungeError("truth ratio needs paraphrased and perturbed answers")
        return truth_ratios(self.paraphrased_nll, self.perturbed_nll)


@dataclass
class QAInputs:
    """What the QA metrics read. ``forget`` / ``retain`` / ``heldout``: the audited model's scores on
    each split (``heldout``: QA whose knowledge comes from general training data, TOFU's World
    Facts role); ``retain_model_forget``: the retain (gold-standard) model's scores on the forget
    split; ``auc`` / ``auc_retain_model``: one attack's AUC (forget vs holdout, member-oriented) on the
    audited and on the retain model, for privleak."""

    forget: QASplitScores | None = None
    retain: QASplitScores | None = None
    heldout: QASplitScores | None = None
    retain_model_forget: QASplitScores | None = None
    auc: float | None = None
    auc_retain_model: float | None = None

    def splits(self) -> dict[str, QASplitScores]:
        return {n: s for n, s in (("forget", self.forget), ("retain", self.retain), ("heldout", self.heldout))
                if s is not None}

    def available(self) -> set[str]:
        have = set(self.splits())
        sp = list(self.splits().values())
        if sp and all(s.has_perturbed for s in sp):
            have.add("perturbed")
        if sp and all(s.rouge is not None for s in sp):
            have.add("rouge")
        if self.retain_model_forget is not None and self.retain_model_forget.has_perturbed:
            have.add("retain_model")
        if self.auc is not None and self.auc_retain_model is not None:
            have.add("auc")
        return have


def register_qa_metric(name: str, needs: Sequence[str] = (), **defaults: Any) -> Callable:
    """Register an adapter ``fn(inputs: QAInputs, **params) -> {column: value}`` under ``name``;
    ``needs`` lists the inputs (:data:`QA_NEEDS`) it reads, ``defaults`` its parameters (the same
    contract as :func:`expunge.llm.attacks.register_attack`)."""
    return QA_METRICS.register_adapter(name, needs, QA_NEEDS, defaults)


def _tr_split(name: str) -> Split:
    return "forget" if name == "forget" else "retain"


@register_qa_metric("answer_prob")
def answer_prob_metric(inp: QAInputs) -> dict[str, float]:
    """Mean length-normalised answer probability per split (TOFU); the held-out split uses the
    normalised form p(a) / (p(a) + Σ p(perturbed)) when its perturbed answers exist."""
    out = {}
    for name, s in inp.splits().items():
        if name == "heldout" and s.perturbed_nll is not None:
            out[f"{name}_prob"] = float(normalised_answer_probability(s.answer_nll, s.perturbed_nll).mean())
        else:
            out[f"{name}_prob"] = float(answer_probability(s.answer_nll).mean())
    return out


@register_qa_metric("rouge_l", needs=("rouge",))
def rouge_l_metric(inp: QAInputs) -> dict[str, float]:
    """Mean ROUGE-L recall of the greedy answers per split (TOFU)."""
    return {f"{name}_rouge": float(np.mean(s.rouge)) for name, s in inp.splits().items()}


@register_qa_metric("truth_ratio", needs=("perturbed",))
def truth_ratio_metric(inp: QAInputs) -> dict[str, float]:
    """Truth-ratio score per split: mean min(R, 1/R) on forget, mean max(0, 1 − R) elsewhere (TOFU)."""
    return {f"{name}_truth_ratio": truth_ratio_score(s.truth_ratios(), _tr_split(name))
            for name, s in inp.splits().items()}


@register_qa_metric("forget_quality", needs=("forget", "perturbed", "retain_model"))
def forget_quality_metric(inp: QAInputs) -> dict[str, float]:
    """Forget quality: KS-test p-value of the audited vs the retain model's forget truth ratios (TOFU)."""
    stat, p = forget_quality_test(inp.forget.truth_ratios(), inp.retain_model_forget.truth_ratios())
    return {"forget_quality": p, "forget_ks_statistic": stat}


@register_qa_metric("model_utility", needs=("retain", "heldout", "perturbed", "rouge"))
def model_utility_metric(inp: QAInputs) -> dict[str, float]:
    """Model utility: harmonic mean of probability, ROUGE-L and truth-ratio score on retain and held-out
    QA (TOFU's nine-number mean over its three non-forget sets, on the two here)."""
    parts = {}
    for metric in (answer_prob_metric, rouge_l_metric, truth_ratio_metric):
        parts.update({k: v for k, v in metric(inp).items() if not k.startswith("forget")})
    return {"model_utility": model_utility(parts)}


@register_qa_metric("privleak", needs=("auc",), orientation="member")
def privleak_metric(inp: QAInputs, orientation: str = "member") -> dict[str, float]:
    """PrivLeak: relative AUC gap to the retain model, in percent, with MUSE's sign (MUSE)."""
    return {"privleak": privleak(inp.auc, inp.auc_retain_model, orientation)}  # type: ignore[arg-type]


def resolve_qa_metrics(names: Sequence[str] | None, available: set[str],
                       strict: bool) -> tuple[list[str], dict[str, str]]:
    """The metrics to run and, for the skipped ones, why (as :func:`expunge.llm.attacks.resolve_attacks`:
    unknown names are an error; with ``strict`` a missing input is one too)."""
    return QA_METRICS.resolve_adapters(names, available, strict)


def run_qa_metrics(inp: QAInputs, names: Sequence[str] | None = None,
                   params: dict[str, dict[str, Any]] | None = None) -> tuple[dict[str, float], dict[str, str]]:
    """``({column: value}, {skipped metric: why})``; ``names=None`` runs every metric whose inputs
    exist, named metrics with missing inputs are an error."""
    run, skipped = resolve_qa_metrics(names, inp.available(), strict=names is not None)
    params = params or {}
    out: dict[str, float] = {}
    for n in run:
        fn = QA_METRICS.get(n)
        out.update(fn(inp, **{**fn.defaults, **params.get(n, {})}))
    return out, skipped
