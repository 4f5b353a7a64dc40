"""Test configuration: Ray stays on loopback with auth and telemetry off; shared small fixtures."""
from __future__ import annotations

import os

# Must be set before Ray is imported anywhere: every Ray listener on 127.0.0.1, no token auth for the
# private test instance, no usage reporting. Traffic to non-loopback addresses is forbidden here.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The fault-injection folder (expunge.faults), set before any Ray starts so every worker inherits it:
# a fault test arms a fault by writing a file there, without restarting Ray.
import tempfile  # noqa: E402

os.environ["EXPUNGE_FAULTS"] = tempfile.mkdtemp(prefix="expunge-faults-")

import random  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

#: intra-op threads of every test: float reductions (and so a training run) depend on the count
TEST_THREADS = 2
#: the global seed every test starts from, whatever ran before it
TEST_SEED = 0
torch.set_num_threads(TEST_THREADS)

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Under ``-p randomly`` keep only its shuffling: its per-test reseed (a seed derived from the test
    id) would replace TEST_SEED after the fixture below ran, so a test would see different random
    draws than in the default run, and thresholds measured there would not apply."""
    if hasattr(config.option, "randomly_reset_seed"):
        config.option.randomly_reset_seed = False


@pytest.fixture(autouse=True)
def isolated_global_state():
    """Each test starts from the same global state and leaves none behind: torch's thread count
    pinned, and Python's, NumPy's and torch's global RNGs seeded with TEST_SEED, then restored.

    Without it a test's result depends on which tests ran before it (any unseeded draw, e.g. a
    model's initial weights, continues the previous test's stream) and on a thread count another
    test changed, so a threshold that held in one order or on one machine fails in another.
    """
    saved = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    random.seed(TEST_SEED)
    np.random.seed(TEST_SEED)
    torch.manual_seed(TEST_SEED)
    torch.set_num_threads(TEST_THREADS)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.random.set_rng_state(saved[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        torch.set_num_threads(TEST_THREADS)


@pytest.fixture
def faults():
    """expunge.faults for one test: armed faults and records are removed afterwards, fired or not."""
    from expunge import faults as module

    module.disarm()
    yield module
    module.disarm()


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    shutil.rmtree(os.environ.get("EXPUNGE_FAULTS", ""), ignore_errors=True)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def digits():
    from expunge.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole session (start-up costs ~5 s), stopped at the end."""
    import ray

    from expunge.runtime import init_ray

    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


def tiny_overrides(tmp_path: Path, *extra: str) -> list[str]:
    """Overrides that make the digits experiment take seconds (methods at their papers' step counts)."""
    return [f"storage={tmp_path}", "train.epochs=8", "unlearn.min_steps=0", *extra]
