"""Every shipped experiment config validates and has a dry-run plan (real-data ones without their data)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from expunge.resolve import load_config
from expunge.jobs.plan import describe_plan

EXPERIMENTS = ["digits", "digits_class", "cifar10_resnet18", "cifar100_resnet18", "cifar10_fast", "tinyimagenet_vit"]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_config_validates_and_plans(repo_root, name):
    cfg = load_config(repo_root / "configs" / "experiments" / f"{name}.yaml")
    stages = [s["stage"] for s in describe_plan(cfg)]
    assert stages[:2] == ["split", "original"] and stages[-1] == "storage"
    assert "unlearn retrain" in stages  # every experiment is scored against the retrained gold standard
    if cfg.audit.shadows:
        assert "audit shadows" in stages


def test_real_data_configs_name_what_the_papers_use(repo_root):
    c10 = load_config(repo_root / "configs/experiments/cifar10_resnet18.yaml")
    assert (c10.data.dataset, c10.model.name, c10.train.epochs, c10.train.lr) == ("cifar10", "resnet18", 200, 0.1)
    assert load_config(repo_root / "configs/experiments/cifar100_resnet18.yaml").data.dataset == "cifar100"
    fast = load_config(repo_root / "configs/experiments/cifar10_fast.yaml")
    assert fast.model.name == "fastnet" and fast.train.recipe == "fast" and fast.audit.shadows == 128
    vit = load_config(repo_root / "configs/experiments/tinyimagenet_vit.yaml")
    assert vit.data.dataset == "imagefolder" and vit.model.name == "vit"


def test_dry_run_reads_no_data_and_writes_nothing(repo_root, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "expunge.cli", "run", "configs/experiments/cifar10_resnet18.yaml",
                           "--dry-run", f"storage={tmp_path}/runs"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "the config is valid" in proc.stdout and "unlearn finetune+cpu" in proc.stdout
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()
    bad = subprocess.run([sys.executable, "-m", "expunge.jobs.pipeline", "--config",
                          "configs/experiments/cifar10_resnet18.yaml", "--dry-run", "model.name=resnet19"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert bad.returncode == 2 and "model.name" in bad.stderr and "resnet19" in bad.stderr
