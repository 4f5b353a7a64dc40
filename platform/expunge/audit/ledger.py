"""The arithmetic of a sequential-unlearning ledger: requests, regressions, per-version summaries.

The lifecycle setting of Wang et al., "Towards Lifecycle Unlearning Commitment Management:
Measuring Sample-level Unlearning Completeness" (USENIX Security 2025; IAM): requests r_1, r_2, ...
arrive one after another, each asks to forget a further set of training samples from the latest
model, and model version v_k is the unlearning method applied to v_{k-1} with forget set r_k
(v_0 is the original). The ledger records, for every sample ever forgotten, its IAM membership
score S_v(x) in [0, 1] at every version v >= k(x), the request that forgot it, so a commitment that
held at one version and broke at a later one is visible.

Definitions (``τ`` = ``threshold``, default :data:`MEMBER_THRESHOLD` = 0.5, IAM's binary decision on
a score in [0, 1]):

* unlearning score (completeness) U_v(x) = 1 − S_v(x) (IAM's orientation);
* x is *scored as unlearned* at v when S_v(x) < τ and *scored as a member* when S_v(x) >= τ;
* x is *regressed* at v when it was scored as unlearned at some version u with k(x) <= u < v and is
  scored as a member at v (a sample never scored as unlearned is under-unlearned, not regressed).

Requests (:func:`draw_requests`) are forget specs drawn from the samples still retained, never from
ones already forgotten: ``random:<fraction|count>`` (a fraction is of the whole train split, so
equal specs ask for equal sizes), ``class:<c>`` (every retained sample of class c),
``class_percentage:<c>:<ratio>`` (ratio × the train split's class-c count, drawn from the retained
ones), ``mislabeled`` (the retained samples whose label ``data.label_noise`` corrupted) and
``indices:<file>`` (dataset positions, all of them retained training samples). A request that
cannot be satisfied is a one-line :class:`DataError`.

Pure functions on arrays and DataFrames; the stage (``expunge.stages.ledger``) trains, stores and
scores the versions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from expunge import seeds
from expunge.config.forget import ForgetSpec
from expunge.data.splits import read_indices
from expunge.errors import DataError

#: IAM's membership decision: S >= 0.5 reads as member, S < 0.5 as unlearned
MEMBER_THRESHOLD = 0.5
#: forget-spec kinds a request may take
REQUEST_KINDS = ("random", "class", "class_percentage", "mislabeled", "indices")


@dataclass(frozen=True)
class Request:
    """Request ``number`` (1-based): its spec and the dataset positions it forgets (sorted)."""

    number: int
    spec: ForgetSpec
    forget: np.ndarray


def parse_requests(texts: list[str]) -> list[ForgetSpec]:
    """Each request's forget spec, parsed (a malformed one is a one-line :class:`DataError`)."""
    if not texts:
        raise DataError("ledger: give at least one request, e.g. --requests random:0.05 random:0.05 class:3")
    specs = []
    for i, text in enumerate(texts, 1):
        try:
            spec = ForgetSpec.parse(text)
        except DataError as exc:
            raise DataError(f"request {i}: {exc}") from None
        if spec.kind not in REQUEST_KINDS:  # every ForgetSpec kind is allowed today; kept for new kinds
            raise DataError(f"request {i} ({text}): allowed kinds {', '.join(REQUEST_KINDS)}")
        specs.append(spec)
    return specs


def request_rng(seed: int, number: int) -> np.random.Generator:
    """The generator of request ``number``'s draw: a named stream of the run seed (``Salt.LEDGER_REQUEST``)
    and the request's number, so request k's draw does not depend on how earlier draws consumed theirs."""
    return np.random.Generator(np.random.PCG64([seeds.stream(seed, seeds.Salt.LEDGER_REQUEST), number]))


def draw_request(spec: ForgetSpec, number: int, train: np.ndarray, retained: np.ndarray, labels: np.ndarray,
                 rng: np.random.Generator, noisy: np.ndarray | None = None, n_dataset: int | None = None) -> np.ndarray:
    """The positions request ``number`` forgets: drawn from ``retained`` (the train positions no earlier
    request forgot), never all of them (the retain set must stay non-empty). ``labels`` and ``noisy``
    are indexed by dataset position. Raises a one-line :class:`DataError` when the request cannot be
    satisfied."""
    what = f"request {number} ({spec})"
    retained = np.sort(np.asarray(retained, dtype=np.int64))
    if spec.cls is not None and not 0 <= spec.cls <= int(labels.max(initial=0)):
        raise DataError(f"{what}: class {spec.cls} is not a class of this dataset")
    if spec.kind == "random":
        k = int(round(spec.value * len(train))) if isinstance(spec.value, float) else int(spec.value)
        if k < 1:
            raise DataError(f"{what}: selects no sample of the {len(train)} train samples; ask for more")
        if k >= len(retained):
            raise DataError(f"{what}: asks for {k} samples but only {len(retained)} are still retained "
                            "(a request must leave at least one)")
        forget = rng.choice(retained, size=k, replace=False)
    elif spec.kind in ("class", "class_percentage"):
        of_class = retained[labels[retained] == spec.cls]
        if spec.kind == "class":
            forget = of_class
        else:
            k = int(round(float(spec.value) * int(np.sum(labels[train] == spec.cls))))
            if k > len(of_class):
                raise DataError(f"{what}: asks for {k} samples of class {spec.cls} but only {len(of_class)} are "
                                "still retained")
            forget = rng.choice(of_class, size=k, replace=False)
        if len(forget) == 0:
            raise DataError(f"{what}: no retained sample of class {spec.cls} is left to forget")
    elif spec.kind == "mislabeled":
        if noisy is None:
            raise DataError(f"{what}: needs corrupted labels; set data.label_noise > 0")
        forget = retained[noisy[retained]]
        if len(forget) == 0:
            raise DataError(f"{what}: no retained mislabeled sample is left to forget")
    else:
        forget = read_indices(str(spec.value))
        n = len(labels) if n_dataset is None else n_dataset
        if forget.min(initial=0) < 0 or forget.max(initial=0) >= n:
            raise DataError(f"{what}: positions out of range 0..{n - 1}")
        if len(np.unique(forget)) != len(forget) or len(forget) == 0:
            raise DataError(f"{what}: the file is empty or has duplicate positions")
        outside = np.setdiff1d(forget, train)
        if len(outside):
            raise DataError(f"{what}: {len(outside)} positions are not training samples (first: {int(outside[0])})")
        gone = np.setdiff1d(forget, retained)
        if len(gone):
            raise DataError(f"{what}: {len(gone)} positions were already forgotten by an earlier request "
                            f"(first: {int(gone[0])}); a request forgets retained samples only")
    if len(forget) >= len(retained):
        raise DataError(f"{what}: would forget all {len(retained)} retained samples (the retain set must not be empty)")
    return np.sort(np.asarray(forget, dtype=np.int64))


def draw_requests(specs: list[ForgetSpec], train: np.ndarray, labels: np.ndarray, seed: int,
                  noisy: np.ndarray | None = None) -> list[Request]:
    """Every request's forget set, in order, each drawn from what the earlier ones left retained."""
    retained = np.sort(np.asarray(train, dtype=np.int64))
    out = []
    for number, spec in enumerate(specs, 1):
        forget = draw_request(spec, number, train, retained, labels, request_rng(seed, number), noisy)
        out.append(Request(number, spec, forget))
        retained = np.setdiff1d(retained, forget, assume_unique=True)
    return out


def retained_after(train: np.ndarray, requests: list[Request], k: int) -> np.ndarray:
    """The train positions still retained after requests 1..k (the retain set of version v_k)."""
    gone = [r.forget for r in requests[:k]]
    return np.setdiff1d(train, np.concatenate(gone), assume_unique=True) if gone else np.sort(train)


def flag_regressions(scores: np.ndarray, request_of: np.ndarray, threshold: float = MEMBER_THRESHOLD) -> np.ndarray:
    """Regression flags [V + 1, P] from membership scores ``scores[v, p]`` = S_v of ledger sample p at
    version v = 0..V and the request number ``request_of[p]`` >= 1 that forgot it:

        regressed[v, p] = (v >= k_p) and S_v(p) >= τ and exists u in [k_p, v) with S_u(p) < τ.

    Entries before a sample's request are False (it was not yet forgotten there)."""
    s = np.asarray(scores, dtype=np.float64)
    k = np.asarray(request_of, dtype=np.int64)
    if s.ndim != 2 or k.shape != (s.shape[1],):
        raise ValueError(f"need scores [V+1, P] and request_of [P], got {s.shape} and {k.shape}")
    versions = np.arange(s.shape[0])[:, None]
    forgotten = versions >= k[None, :]
    unlearned = forgotten & (s < threshold)
    # unlearned at some u < v (and u >= k_p): the running OR of the rows above
    before = np.zeros_like(unlearned)
    before[1:] = np.logical_or.accumulate(unlearned, axis=0)[:-1]
    return forgotten & before & (s >= threshold)


def ledger_table(positions: np.ndarray, request_of: np.ndarray, scores: np.ndarray,
                 correct: np.ndarray | None = None, threshold: float = MEMBER_THRESHOLD) -> pd.DataFrame:
    """One row per (sample, version) with version >= the sample's request number k_p:

    ``position`` (dataset position), ``request`` (k_p), ``version``, ``membership`` S_v, ``unlearning``
    1 − S_v, ``membership_before`` S_{k_p − 1} (the model the request was applied to), ``unlearned``
    (S_v < τ), ``regressed`` (:func:`flag_regressions`) and, with ``correct[v, p]``, whether version v
    classifies the sample correctly. ``scores`` and ``correct`` are [V + 1, P] over versions 0..V."""
    s = np.asarray(scores, dtype=np.float64)
    k = np.asarray(request_of, dtype=np.int64)
    regressed = flag_regressions(s, k, threshold)
    v_idx, p_idx = np.nonzero(np.arange(s.shape[0])[:, None] >= k[None, :])
    order = np.lexsort((v_idx, np.asarray(positions)[p_idx], k[p_idx]))  # by request, position, version
    v_idx, p_idx = v_idx[order], p_idx[order]
    m = s[v_idx, p_idx]
    table = pd.DataFrame({
        "position": np.asarray(positions, dtype=np.int64)[p_idx], "request": k[p_idx], "version": v_idx,
        "membership": m, "unlearning": 1.0 - m, "membership_before": s[k[p_idx] - 1, p_idx],
        "unlearned": m < threshold, "regressed": regressed[v_idx, p_idx]})
    if correct is not None:
        table["correct"] = np.asarray(correct, dtype=bool)[v_idx, p_idx]
    return table


def version_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (version, request): ``n`` samples, ``mean_unlearning`` (mean 1 − S, the request's
    completeness), ``unlearned_frac`` (share with S < τ), ``n_regressed``, ``mean_membership_before``
    and, when the table has it, ``forget_acc`` (share classified correctly)."""
    agg = {"n": ("position", "size"), "mean_unlearning": ("unlearning", "mean"),
           "unlearned_frac": ("unlearned", "mean"), "n_regressed": ("regressed", "sum"),
           "mean_membership_before": ("membership_before", "mean")}
    if "correct" in table:
        agg["forget_acc"] = ("correct", "mean")
    out = table.groupby(["version", "request"], sort=True).agg(**agg).reset_index()
    out["n_regressed"] = out["n_regressed"].astype(int)
    return out


def regressions(table: pd.DataFrame) -> pd.DataFrame:
    """The regressed rows, with the version each sample was first scored as unlearned (``first_unlearned``)."""
    first = table[table["unlearned"]].groupby("position")["version"].min().rename("first_unlearned")
    return table[table["regressed"]].join(first, on="position")
