"""The fleet benchmark runs end to end and reports rates (no timing assertion: numbers go to the README)."""
from __future__ import annotations

import json

from expunge.jobs.bench_fleet import main


def test_bench_fleet_cpu_smoke(capsys):
    assert main(["--mode", "cpu", "--k", "2", "--epochs", "1", "--no-ray", "--rounds", "1"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    res = json.loads(line)
    assert res["K"] == 2 and res["baseline_models_timed"] == 2 and res["train_samples"] > 1000
    assert res["baseline_models_per_hour"] > 0 and res["expunge_models_per_hour"] > 0
    assert res["ratio"] == round(res["expunge_models_per_hour"] / res["baseline_models_per_hour"], 2)


def test_bench_fleet_interleaved_rounds_report_median_and_range(capsys):
    assert main(["--mode", "cpu", "--k", "1", "--epochs", "1", "--no-ray", "--rounds", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    res = json.loads(out[0])
    assert res["rounds"] == 3 and len(res["ratios"]) == len(res["baseline_rates"]) == len(res["expunge_rates"]) == 3
    # the reported ratio is the median round's, inside the range over rounds
    assert res["ratio"] == sorted(res["ratios"])[1] == res["ratios"][res["median_round"]]
    assert res["ratio_min"] == min(res["ratios"]) <= res["ratio"] <= res["ratio_max"] == max(res["ratios"])
    assert res["baseline_models_per_hour"] == res["baseline_rates"][res["median_round"]]
    assert "median of 3 interleaved rounds" in out[1]


def test_bench_fleet_batched_ensemble_smoke(capsys):
    assert main(["--mode", "cpu", "--k", "3", "--epochs", "1", "--no-ray", "--ensemble", "2",
                 "--baseline-k", "1", "--rounds", "1"]) == 0
    res = json.loads(capsys.readouterr().out.splitlines()[0])
    assert res["ensemble"] == 2 and res["K"] == 3 and res["expunge_models_per_hour"] > 0
