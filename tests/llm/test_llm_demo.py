"""The embedded LLM demo at a reduced size, end to end, and the scoring benchmark at a tiny size."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from expunge.jobs import bench_llm, llm_demo
from expunge.llm.attacks import ATTACKS

SMALL = ["n_docs=400", "n_canaries=16", "n_population=32", "pretrain_steps=60", "finetune_steps=120",
         "batch_size=16", "repeats=15", "scoreui_checkpoints=1", "n_boot=50"]


@pytest.mark.slow
def test_demo_pipeline_small_is_meaningful_and_reuses_its_artifacts(tmp_path):
    res = llm_demo.run_llm_demo([f"out={tmp_path}", *SMALL], use_ray=False)
    table = res["table"].set_index("attack")
    assert set(table.index) == set(ATTACKS.names())
    orig, binui = "original: member vs non-member", "unlearned: retained vs unlearned (BinUI)"
    # members are detectable after training, and the unlearned canaries are told apart from the retained
    assert table.loc["loss", orig] >= 0.9
    assert table.loc["ratio", orig] >= 0.9
    assert table.loc["loss", binui] >= 0.75
    assert table.loc["iam_online", binui] >= 0.75
    assert pd.isna(table.loc["iam_online", orig])  # the original is its own fit model: n/a, not a number
    assert table.loc["loss", "ScoreUI Spearman"] > 0.3
    assert res["roundtrip"] == 0.0
    report = tmp_path / "llm_demo" / "report"
    for name in ("report.md", "auc_table.csv", "results.csv", "scores.parquet", "scoreui.csv",
                 "roc_unlearned_retained_vs_unlearned.png"):
        assert (report / name).is_file(), name
    md = (report / "report.md").read_text()
    assert "round trip" in md and "| loss |" in md
    stored = {k: json.loads((tmp_path / "llm_models" / k / "manifest.json").read_text())["created"]
              for k in ("reference", "original", "unlearned-npo")}
    cached = sorted(p.name for p in (tmp_path / "llm_logprobs").iterdir())
    # the same settings again: nothing is retrained or rescored, and the table is identical
    again = llm_demo.run_llm_demo([f"out={tmp_path}", *SMALL], use_ray=False)
    assert {k: json.loads((tmp_path / "llm_models" / k / "manifest.json").read_text())["created"]
            for k in stored} == stored
    assert sorted(p.name for p in (tmp_path / "llm_logprobs").iterdir()) == cached
    pd.testing.assert_frame_equal(again["table"], res["table"])


def test_demo_rejects_bad_overrides_before_compute(tmp_path, capsys):
    assert llm_demo.main([f"out={tmp_path}", "n_canaries=2", "--local"]) == 2
    assert "n_canaries" in capsys.readouterr().err
    assert llm_demo.main([f"out={tmp_path}", "methd=ga", "--local"]) == 2
    assert "unknown key" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_bench_llm_tiny_reports_both_rates(capsys):
    assert bench_llm.main(["--n", "12", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--device", "cpu", "--rounds", "1",
                           "--min-seconds", "0"]) == 0
    res = json.loads(capsys.readouterr().out.splitlines()[0])
    assert res["sequences"] == 12 and res["scored_tokens"] > 12
    assert res["naive_tokens_per_s"] > 0 and res["batched_tokens_per_s"] > 0
    assert res["ratio"] == pytest.approx(res["naive_s"] / res["batched_s"], rel=2e-3, abs=0.006)  # ratio rounded to 0.01
    assert res["max_abs_logp_diff"] < 1e-4  # both paths compute the same numbers
    assert "batched_fraction_of_peak" not in res  # only on CUDA
