"""The suite's isolation fixture (tests/conftest.py): no global RNG state or torch thread count leaks
from one test into the next, so results do not depend on the order tests run in."""
from __future__ import annotations

import random

import numpy as np
import torch

from conftest import TEST_SEED, TEST_THREADS


def _draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.random_sample()), float(torch.rand(()))


def _fresh_draws() -> tuple[float, float, float]:
    """What each global RNG yields first after being seeded with TEST_SEED (from private generators)."""
    return (random.Random(TEST_SEED).random(), float(np.random.RandomState(TEST_SEED).random_sample()),
            float(torch.rand((), generator=torch.Generator().manual_seed(TEST_SEED))))


def test_a_test_that_disturbs_global_state():
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    _draws()
    torch.set_num_threads(1)


def test_every_test_starts_from_the_same_global_state():
    """Passes in any order: after the test above (which would leak seed 123 and one thread), first,
    or alone; without the fixture it fails in each of those cases."""
    assert torch.get_num_threads() == TEST_THREADS
    assert _draws() == _fresh_draws()
