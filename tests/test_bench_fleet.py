"""The fleet benchmark runs end to end and reports rates (no timing assertion: numbers go to the README)."""
from __future__ import annotations

import json

from expunge.jobs.bench_fleet import main


def test_bench_fleet_cpu_smoke(capsys):
    assert main(["--mode", "cpu", "--k", "2", "--epochs", "1", "--no-ray"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    res = json.loads(line)
    assert res["K"] == 2 and res["baseline_models_timed"] == 2 and res["train_samples"] > 1000
    assert res["baseline_models_per_hour"] > 0 and res["expunge_models_per_hour"] > 0
    assert res["ratio"] == round(res["expunge_models_per_hour"] / res["baseline_models_per_hour"], 2)


def test_bench_fleet_batched_ensemble_smoke(capsys):
    assert main(["--mode", "cpu", "--k", "3", "--epochs", "1", "--no-ray", "--ensemble", "2",
                 "--baseline-k", "1"]) == 0
    res = json.loads(capsys.readouterr().out.splitlines()[0])
    assert res["ensemble"] == 2 and res["K"] == 3 and res["expunge_models_per_hour"] > 0
