"""ScoreUI (IAM paper): how well per-sample scores track partial membership.

Scores of the checkpoints b = 0 ... B (``scores[b, i]``, higher = more member) are min-max
normalised over all samples x checkpoints, flattened, and compared with the ground truth b / B:
Spearman (the paper's headline), Pearson and the mean squared error.
"""
from __future__ import annotations

import numpy as np

from expunge.metrics.roc import pearson, spearman


def scoreui(scores: np.ndarray, fractions: np.ndarray) -> dict[str, float]:
    scores = np.asarray(scores, dtype=np.float64)
    fractions = np.asarray(fractions, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != len(fractions):
        raise ValueError("scores must be [checkpoints, samples] with one fraction per checkpoint")
    lo, hi = np.nanmin(scores), np.nanmax(scores)
    norm = (scores - lo) / (hi - lo) if hi > lo else np.zeros_like(scores)
    truth = np.repeat(fractions[:, None], scores.shape[1], axis=1)
    x, y = norm.ravel(), truth.ravel()
    return {"spearman": spearman(x, y), "pearson": pearson(x, y), "mse": float(np.mean((x - y) ** 2))}
