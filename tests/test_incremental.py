"""Incremental training (IAM paper, Table 4, ``data.incremental``): the split records old and new
positions, the original is a warm-started model trained further on the new positions, the forget set
comes from the new positions, and all of it is part of the split's and the original's identity."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from expunge.cli import main

DIGITS = "configs/experiments/digits.yaml"
INCREMENTAL = "data.incremental={old_fraction: 0.5}"
BASE = ["model.name=mlp", "train.epochs=3", "unlearn.methods=[retrain]", "audit.shadows=2",
        "audit.metrics=[lira,iam]"]


def _config(storage: Path, *extra: str):
    from expunge.resolve import load_config

    return load_config(DIGITS, [f"storage={storage}", *BASE, *extra])


def test_the_split_keeps_old_positions_apart_and_forgets_new_ones(tmp_path):
    from expunge.experiment import Experiment

    plain = Experiment(_config(tmp_path / "a"), verbose=False).plan
    ex = Experiment(_config(tmp_path / "b", INCREMENTAL), verbose=False)
    plan = ex.plan  # stored and read back
    old, new = plan.indices["old"], plan.train
    assert len(old) and len(new) and not set(old) & set(new)
    # old and new together are the plain split's train part (same seed, same carving)
    np.testing.assert_array_equal(np.sort(np.concatenate([old, new])), plain.train)
    assert abs(len(old) - len(plain.train) / 2) <= 1
    assert set(plan.forget) <= set(new) and not set(plan.forget) & set(old)
    np.testing.assert_array_equal(np.sort(np.concatenate([plan.forget, plan.retain])), new)
    for held in ("test", "calibration", "population", "shadow_pool"):
        assert not set(plan.indices[held]) & set(old), held
    assert plan.incremental == {"old_fraction": 0.5}
    assert plan.hash != plain.hash
    other = Experiment(_config(tmp_path / "c", "data.incremental={old_fraction: 0.3}"), verbose=False).plan
    assert other.hash != plan.hash and len(other.indices["old"]) < len(old)
    assert "old" not in plain.indices  # plans without the setting keep their hash and files
    # the stored split is another split: the same run directory refuses the incremental config
    from expunge.errors import StaleArtifactError

    with pytest.raises(StaleArtifactError):
        Experiment(_config(tmp_path / "a", INCREMENTAL), verbose=False).plan


def test_the_original_is_warm_started_and_trained_on_the_new_positions(repo_root, tmp_path, monkeypatch):
    from expunge.experiment import WEIGHTS, Experiment

    storage = tmp_path / "runs"
    monkeypatch.chdir(repo_root)
    assert main(["run", DIGITS, f"storage={storage}", *BASE, INCREMENTAL, "--local"]) == 0
    ex = Experiment(_config(storage, INCREMENTAL), verbose=False)
    base, original = ex.store.get("models", "incremental-base"), ex.store.get("models", "original")
    np.testing.assert_array_equal(base.read("members.npy"), ex.plan.indices["old"])
    np.testing.assert_array_equal(original.read("members.npy"), ex.plan.train)
    role = original.manifest["config"]
    assert role["incremental"] == {"old_fraction": 0.5, "trained_on": "new", "warm_start": "incremental-base"}
    assert len(original.read("history.json")) == 3  # train.epochs more on the new positions
    w0, w1 = base.read(WEIGHTS), original.read(WEIGHTS)
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)
    board = pd.read_csv(storage / "digits" / "audit" / "results" / "leaderboard.csv").set_index("method")
    assert {"original", "retrain"} <= set(board.index)
    for column in ("iam_binui_auc", "lira_binui_auc"):
        assert np.isfinite(board.loc[["original", "retrain"], column]).all(), column

    # the same warm start from a file (model.weights): no base trained, the file's hash in the identity
    weights = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in w0.items()}, str(weights))
    imported = Experiment(_config(tmp_path / "imported", INCREMENTAL, f"model.weights={weights}"), verbose=False)
    art = imported.original()
    assert not imported.store.exists("models", "incremental-base")
    config = art.manifest["config"]
    assert config["incremental"]["warm_start"] == "model.weights" and "imported_sha256" in config
    # the same start, the same seed and recipe: the same original as the run's
    got = art.read(WEIGHTS)
    assert all(torch.allclose(got[k], w1[k]) for k in w1)


BAD = [
    (["data.incremental={old_fraction: 1.5}"], ["data.incremental.old_fraction"]),
    (["data.incremental={old_fraction: 0.5, new: 3}"], ["data.incremental.new"]),
    (["data.incremental={}"], ["data.incremental.old_fraction"]),
    (["data.incremental={old_fraction: 0.5}", "scaling.num_workers=2"], ["data.incremental", "scaling"]),
    (["data.incremental={old_fraction: 0.999}"], ["data.incremental.old_fraction=0.999", "2 new"]),
    (["data.incremental={old_fraction: 0.5}", "data.train_indices={tmp}/train.npy"],
     ["data.incremental", "data.train_indices"]),
]


@pytest.mark.parametrize("extra,needles", BAD, ids=[" ".join(e)[:60] for e, _ in BAD])
def test_bad_incremental_settings_are_one_line_before_any_compute(repo_root, tmp_path, monkeypatch, capsys, extra,
                                                                  needles):
    np.save(tmp_path / "train.npy", np.arange(100))
    monkeypatch.chdir(repo_root)
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    code = main(["run", DIGITS, f"storage={tmp_path / 'runs'}", *BASE, *extra, "--local"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("expunge: error:"), err
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    made = [p for p in tmp_path.rglob("*") if {"models", "outputs"} & set(p.parts)]
    assert not made, made


def test_the_identity_of_the_original_includes_the_setting(tmp_path):
    from expunge.experiment import Experiment

    plain = Experiment(_config(tmp_path, "name=a"), verbose=False).original_expect()
    inc = Experiment(_config(tmp_path, "name=b", INCREMENTAL), verbose=False).original_expect()
    assert plain["split_hash"] != inc["split_hash"]
    assert "incremental" in inc["config"] and "incremental" not in plain["config"]
    assert json.dumps(plain, sort_keys=True, default=str) != json.dumps(inc, sort_keys=True, default=str)
