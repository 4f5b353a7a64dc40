"""Membership of fleet members: which samples each model trains on. Pure NumPy, seeded.

* ``balanced``: LiRA-style (Carlini et al., 2022): every sample of the universe is IN for half the
  models. Built from complementary pairs: models 2j and 2j+1 split the universe into a random half
  and its complement with their own seed, so each sample is IN for exactly K/2 of K (K even) and
  growing the fleet from K to 2K adds new pairs without changing members 0..K-1.
* ``out_only``: each model trains on a seeded ``fraction`` subset of a pool disjoint from the
  original's training set (IAM's OUT-only shadows).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from expunge import seeds


def out_only_subset(pool: np.ndarray, fraction: float, seed: Sequence[int] | int) -> np.ndarray:
    """A seeded ``fraction`` subset of ``pool`` (sorted dataset positions)."""
    rng = np.random.default_rng(seed)
    n = max(1, int(round(fraction * len(pool))))
    return np.sort(rng.choice(pool, size=n, replace=False))


def balanced_member(universe: np.ndarray, i: int, seed: int) -> np.ndarray:
    """Member i's training positions: pair i // 2's random half of ``universe`` (even i) or its
    complement (odd i)."""
    rng = np.random.default_rng(seeds.member_pair(seed, i))
    half = rng.permutation(len(universe)) < len(universe) // 2
    return np.sort(universe[half if i % 2 == 0 else ~half])


def membership_matrix(members: list[np.ndarray], n: int) -> np.ndarray:
    """K x N booleans over dataset positions: row i marks member i's training samples."""
    out = np.zeros((len(members), n), dtype=bool)
    for i, idx in enumerate(members):
        out[i, idx] = True
    return out
