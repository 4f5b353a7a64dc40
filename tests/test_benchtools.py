"""The shared benchmark timing: interleaved rounds and the median round's ratio with its range."""
from __future__ import annotations

import json

from expunge.jobs.benchtools import describe_ratio, interleaved, median_round, ratio_summary, timed


def test_timed_repeats_until_min_seconds():
    calls = []
    amount, seconds = timed(lambda: calls.append(1) or 2.0, min_seconds=0.02)
    assert seconds >= 0.02 and amount == 2.0 * len(calls) and len(calls) >= 1
    assert timed(lambda: 1.0)[0] == 1.0  # min_seconds 0: exactly once


def test_interleaved_runs_sections_in_alternation():
    order = []
    out = interleaved([("a", lambda: order.append("a") or 1.0), ("b", lambda: order.append("b") or 1.0)], rounds=3)
    assert order == ["a", "b"] * 3 and [len(v) for v in out.values()] == [3, 3]


def test_ratio_summary_reports_an_actual_rounds_median_and_range():
    s = ratio_summary([4.0, 9.0, 3.0, 8.0], [2.0, 3.0, 1.0, 2.0])  # ratios 2, 3, 3, 4
    assert s["ratios"] == [2.0, 3.0, 3.0, 4.0] and (s["ratio_min"], s["ratio_max"]) == (2.0, 4.0)
    assert s["ratio"] == 3.0 and s["ratios"][s["median_round"]] == 3.0
    assert median_round([5.0, 1.0]) == 1  # even count: the lower middle round
    assert describe_ratio(s) == "3.00x (median of 4 interleaved rounds; range 2.00-4.00x)"


def test_bench_llm_reports_the_median_round(capsys):
    from expunge.jobs import bench_llm

    assert bench_llm.main(["--n", "6", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--device", "cpu",
                           "--rounds", "3", "--min-seconds", "0.02"]) == 0
    out = capsys.readouterr().out.splitlines()
    res = json.loads(out[0])
    assert len(res["ratios"]) == 3 and res["ratio"] == sorted(res["ratios"])[1]
    assert res["ratio_min"] <= res["ratio"] <= res["ratio_max"]
    assert all(n >= 1 for n in res["passes"]["naive"] + res["passes"]["batched"])
    assert "median of 3 interleaved rounds" in out[1]
