"""Every seed derivation of expunge, in one place.

A run has one seed (``ExperimentConfig.seed``); each random stream in it (an epoch's shuffle, a fleet
member's initialisation, a method's noise, a calibration subset) derives from that seed by one of the
functions below, with a named salt where several streams share a derivation. The formulas are kept
exactly as first released, so stored artifacts and the README's measured numbers reproduce; a new
stream takes :func:`stream` with a new salt in :class:`Salt`.
"""
from __future__ import annotations

from enum import IntEnum


class Salt(IntEnum):
    """The named streams of one unlearning run (``stream(seed, salt)`` unless noted)."""

    MODEL_FACTORY = 1        #: a fresh model built by a method (``offset``): the same initial weights every time
    RANDOM_LABELS = 7        #: random-label relabelling of the forget set
    UNLEARN = 17             #: the global RNG before a method runs (``offset``)
    BOUNDARY_SHADOW = 77     #: boundary shrink's shadow head
    BAD_TEACHER_INIT = 777   #: bad teacher's randomly initialised teacher
    BAD_TEACHER_BATCHES = 778
    FISHER_SAMPLE = 901      #: the retain samples Fisher forgetting estimates the Fisher on
    FISHER_NOISE = 902
    IEU_NOISE = 4242         #: IEU's weight noise
    CPU_CALIBRATION = 4242   #: CPU's calibration subset of the test split (``offset``)
    LEDGER_REQUEST = 5003    #: the forget set drawn for each request of a sequential-unlearning ledger


def stream(seed: int, salt: int) -> int:
    """``seed * 1_000_003 + salt``: the seed of one named stream of a run (a prime multiplier, so
    streams of different runs do not collide for salts below it)."""
    return seed * 1_000_003 + int(salt)


def offset(seed: int, salt: int) -> int:
    """``seed + salt``: the first-released additive streams (:data:`Salt.UNLEARN`,
    :data:`Salt.MODEL_FACTORY`, :data:`Salt.CPU_CALIBRATION`)."""
    return seed + int(salt)


def epoch(seed: int, epoch: int) -> int:
    """``seed * 100_003 + epoch``: the shuffle and augmentation of one training epoch, so a resumed
    run sees the same batches."""
    return seed * 100_003 + epoch


def member(seed: int, i: int) -> int:
    """``seed * 100_003 + 7 i + 11``: fleet member ``i``'s training seed."""
    return seed * 100_003 + 7 * i + 11


def member_pair(seed: int, i: int) -> list[int]:
    """NumPy seed of the random half shared by balanced fleet members ``2j`` and ``2j + 1``."""
    return [seed, 104_729, i // 2]


def out_only_member(seed: int, i: int) -> list[int]:
    """NumPy seed of OUT-only fleet member ``i``'s subset of its pool."""
    return [seed, 7919, i]


def shadow_data_pool(seed: int) -> list[int]:
    """NumPy seed of the positions of ``audit.shadow_data`` that form its shadow pool (when ``pool`` is
    set); two entries, so never the stream of :func:`member_pair`'s three."""
    return [seed, 104_729]


def augmented_view(v: int) -> int:
    """Seed of the ``v``-th augmented query view (the same for every model, so views compare)."""
    return 10_007 * v + 1
