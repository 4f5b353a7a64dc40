"""Faults survived and nothing stale trusted: a killed driver, changed inputs.

Damaged artifacts of every kind: tests/test_integrity.py.

The Ray-side faults (a killed Ray Train worker, fleet member or sweep trial) live next to their
features: tests/test_multinode.py (Ray Train), tests/test_fleet.py and tests/test_sweep_ray.py.
"""
from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from expunge.config import MethodSpec

from expunge.resolve import load_config
from expunge.errors import ArtifactError, CorruptArtifactError, StaleArtifactError
from expunge.experiment import Experiment

SMALL = ["train.epochs=6", "unlearn.methods=[retrain,finetune,salun]", "audit.shadows=2",
         "audit.metrics=[accuracy,svc_mia,iam]"]


def pipeline(storage: Path, *extra: str, cwd: Path | None = None) -> list[str]:
    return [sys.executable, "-m", "expunge.jobs.pipeline", "--config", "configs/experiments/digits.yaml", "--local",
            f"storage={storage}", *SMALL, *extra]


def run(cmd: list[str], repo_root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=repo_root)


def weights_hashes(run_dir: Path) -> dict[str, str]:
    return {str(p.parent.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.glob("models/**/weights.safetensors"))}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, repo_root):
    """An uninterrupted run, the yardstick of every fault test here."""
    storage = tmp_path_factory.mktemp("reference") / "runs"
    proc = run(pipeline(storage), repo_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return storage / "digits"


@pytest.mark.slow
def test_killed_driver_resumes_to_identical_results(tmp_path, repo_root, reference_run):
    storage = tmp_path / "runs"
    proc = subprocess.Popen(pipeline(storage), cwd=repo_root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # SIGKILL the driver as soon as the first unlearned model is stored (mid-pipeline, no clean-up)
    while time.time() < deadline and proc.poll() is None and not list(storage.glob("digits/models/retrain-*/manifest.json")):
        time.sleep(0.05)
    assert proc.poll() is None, "the pipeline finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (storage / "digits" / "audit").exists()  # it really died mid-pipeline
    done = run(pipeline(storage), repo_root)  # the same command again
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = storage / "digits"
    assert weights_hashes(run_dir) == weights_hashes(reference_run)  # every model bit-identical
    ours = pd.read_csv(run_dir / "audit/results/leaderboard.csv").drop(columns=["RTE_s", "gap_RTE_s"], errors="ignore")
    ref = pd.read_csv(reference_run / "audit/results/leaderboard.csv").drop(columns=["RTE_s", "gap_RTE_s"], errors="ignore")
    pd.testing.assert_frame_equal(ours, ref)
    for npy in sorted((reference_run / "audit/results").glob("*.npy")):
        np.testing.assert_array_equal(np.load(run_dir / "audit/results" / npy.name), np.load(npy), err_msg=npy.name)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory, repo_root):
    from expunge.stages.original import run_original

    storage = tmp_path_factory.mktemp("stale") / "runs"
    cfg = load_config(repo_root / "configs/experiments/digits.yaml", [f"storage={storage}", "train.epochs=2"])
    run_original(cfg, use_ray=False)
    Experiment(cfg, verbose=False).unlearn(MethodSpec(name="finetune", params={"epochs": 1}))
    return storage


STALE = [  # (override or patch, artifact refused, what the message names)
    (["train.lr=0.1"], "models/original", "config.train.lr: stored 0.05, requested 0.1"),
    (["train.epochs=3"], "models/original", "config.train.epochs"),
    (["model.name=mlp"], "models/original", "config.model.name: stored 'cnn', requested 'mlp'"),
    (["seed=1"], "split/plan", "seed: stored 0, requested 1"),
    (["data.forget=random:0.2"], "split/plan", "config.forget"),
    (["data.sizes.test=0.25"], "split/plan", "config.sizes.test"),
    (["data.sizes.calibration=0.15"], "split/plan", "config.sizes.calibration"),
    ({"train": 2}, "models/original", "code_version: stored 'train/1', requested 'train/2'"),
    ({"split": 3}, "split/plan", "code_version: stored 'split/2', requested 'split/3'"),
    ({"unlearn": 2}, "models/finetune", "code_version: stored 'unlearn/1', requested 'unlearn/2'"),
]


@pytest.mark.parametrize("change,artifact,message", STALE)
def test_changed_input_makes_the_old_artifact_refused(small_store, repo_root, monkeypatch, change, artifact, message):
    """Each input that matters, changed alone: the stored artifact is refused, naming what differs."""
    from expunge import versions

    overrides = [f"storage={small_store}", "train.epochs=2"]
    if isinstance(change, dict):
        monkeypatch.setattr(versions, "STAGE_VERSIONS", {**versions.STAGE_VERSIONS, **change})
    else:
        overrides += change
    cfg = load_config(repo_root / "configs/experiments/digits.yaml", overrides)
    ex = Experiment(cfg, verbose=False)
    with pytest.raises(StaleArtifactError) as err:
        ex.preflight([MethodSpec(name="finetune", params={"epochs": 1})])
    assert artifact in str(err.value) and message in str(err.value), str(err.value)
    assert "--rebuild" in str(err.value)


def test_changed_dataset_content_makes_the_split_refused(tmp_path):
    """The same config over different data (one image changed on disk): the split is refused."""
    from PIL import Image

    root = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for c in range(3):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(20):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / f"class{c}" / f"{i}.png")
    cfg = load_config(None, [f"storage={tmp_path}/runs", "data.dataset=imagefolder", f"data.root={root}"])
    Experiment(cfg, verbose=False).plan
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(root / "class1" / "3.png")
    with pytest.raises(StaleArtifactError, match=r"split/plan .*config\.fingerprint"):
        Experiment(cfg, verbose=False).plan


def test_corrupt_and_stale_are_both_artifact_errors():
    assert issubclass(CorruptArtifactError, ArtifactError) and issubclass(StaleArtifactError, ArtifactError)
