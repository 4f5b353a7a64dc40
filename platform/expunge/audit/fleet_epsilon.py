"""Per-example epsilon from fleets (NeurIPS 2023 machine unlearning challenge protocol).

For each forget sample, the logit-scaled confidences under the M members of an ``unlearned`` fleet
(the method applied to M independently trained originals) are compared with those under the M
members of a ``retrain`` fleet: :func:`expunge.metrics.epsilon.per_example_epsilon` estimates how
well any threshold tells the two apart, the bucketed forget score summarises it, and the challenge
score scales it by the RA and TA ratios of the two fleets. Everything is read from cached outputs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from expunge.experiment import Experiment
from expunge.metrics.epsilon import challenge_score, forget_score, per_example_epsilon
from expunge.metrics.signals import logit_scaled_confidence


def fleet_epsilon(ex: Experiment, unlearned_keys: list[str], retrain_keys: list[str]) -> dict[str, Any]:
    """Per-example epsilon of D_f between two equally sized fleets; stored under ``audit/epsilon-*``."""
    if len(unlearned_keys) != len(retrain_keys) or len(unlearned_keys) < 2:
        from expunge.errors import ConfigError

        raise ConfigError(f"per-example epsilon needs two fleets of the same size >= 2 (got {len(unlearned_keys)} "
                          f"unlearned and {len(retrain_keys)} retrained models)")

    def signals(keys: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        outs = [ex.outputs(k) for k in keys]
        sig = np.stack([logit_scaled_confidence(o["forget"].logits, o["forget"].labels) for o in outs])
        acc = lambda s: np.array([(o[s].logits.argmax(1) == o[s].labels).mean() for o in outs])  # noqa: E731
        return sig, acc("retain"), acc("test")

    u, ra_u, ta_u = signals(unlearned_keys)
    r, ra_r, ta_r = signals(retrain_keys)
    eps = per_example_epsilon(u, r, on_no_rule="nan")
    fs = forget_score(np.nan_to_num(eps, nan=0.0), len(unlearned_keys))
    # the challenge score's factors: each fleet's accuracies averaged over its members, then divided
    means = {"ra_unlearned": ra_u.mean(), "ra_retrain": ra_r.mean(), "ta_unlearned": ta_u.mean(),
             "ta_retrain": ta_r.mean()}
    summary = {"models_per_fleet": len(unlearned_keys), "forget_score": fs,
               "challenge_score": challenge_score(fs, ra_u, ra_r, ta_u, ta_r),
               "epsilon_median": float(np.nanmedian(eps)), "epsilon_max": float(np.nanmax(eps)),
               **{k: float(v) for k, v in means.items()},
               "ra_ratio": float(means["ra_unlearned"] / means["ra_retrain"]),
               "ta_ratio": float(means["ta_unlearned"] / means["ta_retrain"])}
    name = unlearned_keys[0].split("/")[0].removeprefix("fleet-")
    art = ex.store.put("audit", f"epsilon-{name}", {"epsilon.npy": eps, "summary.json": summary},
                       config={"unlearned": unlearned_keys, "retrained": retrain_keys}, split_hash=ex.plan.hash,
                       seed=ex.cfg.seed, replace=True, repair=ex.rebuild)
    return {**summary, "path": art.path}
