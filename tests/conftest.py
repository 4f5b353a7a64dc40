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

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[1]


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

    from expunge.distributed import init_ray

    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


def tiny_overrides(tmp_path: Path, *extra: str) -> list[str]:
    """Overrides that make the digits experiment take seconds."""
    return [f"storage={tmp_path}", "train.epochs=8", *extra]
