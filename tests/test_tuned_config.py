"""Tuned comparisons: the sweep's tuned_methods.yaml, the committed tuned config and the demo's rows."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from expunge.resolve import load_config
from expunge.sweep.runner import tuned_methods_yaml

REPO = Path(__file__).resolve().parents[1]


def test_tuned_methods_yaml_takes_each_methods_best_feasible_trial():
    cfg = load_config(str(REPO / "configs/sweeps/demo_tuned.yaml"), [])
    table = pd.DataFrame([
        {"method": "ga", "trial_id": "a", "objective": 2.0, "status": "completed", "param.lr": 0.01, "param.epochs": 3},
        {"method": "ga", "trial_id": "b", "objective": 1.0, "status": "completed", "param.lr": 0.02, "param.epochs": 4},
        {"method": "ga", "trial_id": "c", "objective": 0.5, "status": "completed", "param.lr": 0.9, "param.epochs": 9},
        {"method": "ssd", "trial_id": "d", "objective": 3.0, "status": "stopped", "param.lr": float("nan"),
         "param.epochs": float("nan")},
    ])
    ok = pd.Series([True, True, False, False])  # c broke a constraint; d never completed
    text = tuned_methods_yaml(cfg, table, ok, {"ga": {"batch_size": 32}, "ssd": {}})
    methods = yaml.safe_load(text)["unlearn"]["methods"]
    assert methods == [{"name": "ga", "label": "ga (tuned)", "params": {"batch_size": 32, "lr": 0.02, "epochs": 4}}]
    assert text.startswith("# tuned by sweep demo_tuned: objective avg_gap (min)")
    assert "left out" in text and "ssd" in text.split("left out")[1]


def test_committed_tuned_config_states_its_sweep_and_labels_every_row():
    path = REPO / "configs/tuned/digits_mislabeled.yaml"
    head = path.read_text().splitlines()[:6]
    assert any("expunge sweep configs/sweeps/demo_tuned.yaml" in line for line in head)
    cfg = load_config(str(path), [])
    tuned = [m for m in cfg.unlearn.methods if m.name != "retrain"]
    assert tuned and all(m.label == f"{m.name} (tuned)" and m.params for m in tuned)


def test_demo_shows_tuned_rows_next_to_the_defaults():
    from expunge.jobs.demo import DEMO_CONFIGS, demo_config

    cfg = demo_config(*DEMO_CONFIGS[0], [])
    names = [m.name for m in cfg.unlearn.methods if m.label is None]
    labels = [m.label for m in cfg.unlearn.methods if m.label]
    assert "retrain" in names and "ieu" in names
    assert labels and all(label.endswith("(tuned)") for label in labels)
    only = demo_config(*DEMO_CONFIGS[0], ["unlearn.methods=[retrain, ga]"])
    assert [m.name for m in only.unlearn.methods] == ["retrain", "ga"]  # the user's list wins
