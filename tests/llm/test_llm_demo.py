"""The embedded LLM benchmark at its tiny size end to end, its checks, the GPU size's shape, and the
scoring benchmark at a tiny size."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from expunge.jobs import bench_llm, llm_demo
from expunge.llm.demo_run import DEMO_ATTACKS, LLMDemoConfig
from expunge.resolve import load_config


def _created(root, keys):
    return {k: json.loads((root / k / "manifest.json").read_text())["created"] for k in keys}


@pytest.mark.slow
def test_demo_tiny_end_to_end_and_reuses_its_artifacts(tmp_path):
    res = llm_demo.run_llm_demo([f"out={tmp_path}", "size=tiny"], use_ray=False)
    table = res["table"].set_index("attack")
    assert set(table.index) == set(DEMO_ATTACKS)
    ranked = table["npo BinUI AUC"].dropna().to_numpy()
    assert list(ranked) == sorted(ranked, reverse=True)  # ranked by the first method's BinUI AUC
    # an attack needing the fit model is n/a on the original, one needing the reference on the retain model
    assert pd.isna(table.loc["iam_online", "original MvN AUC"]) and pd.isna(table.loc["ratio", "retain BinUI AUC"])
    assert table.loc["ratio", "original MvN AUC"] >= 0 and table.loc["iam_online", "npo BinUI AUC"] >= 0
    aucs = table.filter(like=" AUC").to_numpy(dtype=float)
    assert np.all((aucs[np.isfinite(aucs)] >= 0) & (aucs[np.isfinite(aucs)] <= 1))
    low, auc = table["npo BinUI low"].to_numpy(), table["npo BinUI AUC"].to_numpy()
    assert np.all(low[np.isfinite(auc)] <= auc[np.isfinite(auc)] + 1e-12)
    models = res["models"].set_index("model")
    assert models.loc["retain", "forget_quality"] == 1.0  # the retain model against itself: the same distribution
    assert models.loc["retain", "privleak (mink)"] == 0.0
    assert 0 < models.loc["npo", "forget_quality"] <= 1 and models.loc["npo", "model_utility"] >= 0
    assert (models["general_ppl"] > 1).all() and models["general_ppl"].nunique() == 4  # one per model
    # the demo audits the epoch llm-unlearn chose, through the same cached scores
    unl = tmp_path / "unlearn" / "llm_unlearn"
    for method in ("npo", "grad_diff"):
        best = json.loads((unl / method / "result.json").read_text())
        assert res["unlearned"][method]["epoch"] == best["epoch"] == models.loc[method, "epoch"]
        epochs = pd.read_csv(unl / method / "epochs.csv").set_index("model")
        assert epochs.loc[f"epoch {best['epoch']}", "loss_binui_auc"] == pytest.approx(
            table.loc["loss", f"{method} BinUI AUC"], abs=1e-12)
    assert res["roundtrip"] == 0.0
    assert [v.split(":")[0] for v in res["verdict"] if "IAM-On BinUI AUC" in v] == ["npo", "grad_diff"]
    for line in res["verdict"]:  # every attack said to tie on a model has AUC 0.5 there
        for said in line.split(": ", 1)[1].split(", ") if line.startswith("constant") else ():
            attack, model = said.split(" on ")
            assert res["results"].query("model == @model and attack == @attack")["auc"].eq(0.5).all()
    report = tmp_path / "llm_demo" / "report"
    for name in ("report.md", "report.html", "attack_table.csv", "models.csv", "results.csv", "scoreui.csv",
                 "privleak.csv", "roc_npo_BinUI.png"):
        assert (report / name).is_file(), name
    md = (report / "report.md").read_text()
    assert "round trip" in md and "| loss |" in md and "IAM-On BinUI AUC" in md
    stored = _created(tmp_path / "llm_models", ("base", "original", "retain"))
    cached = sorted(p.name for p in (tmp_path / "unlearn" / "llm_logprobs").iterdir())
    # the same settings again: nothing is retrained or rescored, and the tables are identical
    again = llm_demo.run_llm_demo([f"out={tmp_path}", "size=tiny"], use_ray=False)
    assert _created(tmp_path / "llm_models", stored) == stored
    assert sorted(p.name for p in (tmp_path / "unlearn" / "llm_logprobs").iterdir()) == cached
    pd.testing.assert_frame_equal(again["table"], res["table"])
    pd.testing.assert_frame_equal(again["models"], res["models"])


def test_demo_rejects_bad_settings_before_compute(tmp_path, capsys):
    for bad, said in (("n_authors=2", "n_authors"), ("methd=ga", "unknown key"), ("methods=[npo,nope]", "nope"),
                      ("n_head=3", "divisible"), ("attacks=[lowercase]", "lowercase")):
        assert llm_demo.main([f"out={tmp_path}", bad, "--local"]) == 2, bad
        assert said in capsys.readouterr().err, bad
    with pytest.raises(SystemExit):
        llm_demo.main([f"out={tmp_path}", "--size", "huge", "--local"])
    assert not any(tmp_path.iterdir())


def test_demo_gpu_size_has_the_intended_shape_without_training(tmp_path, capsys):
    gpu = load_config(None, ["size=gpu"], model=LLMDemoConfig)
    assert (gpu.n_layer, gpu.n_embd, gpu.n_head, gpu.n_authors) == (8, 512, 8, 200)
    assert load_config(None, ["size=gpu", "n_layer=6"], model=LLMDemoConfig).n_layer == 6  # an override wins
    assert LLMDemoConfig().n_layer == 2 and LLMDemoConfig().size == "cpu"
    assert llm_demo.main(["--size", "gpu", "--dry-run", f"out={tmp_path}"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["size"] == "gpu" and plan["model"]["n_layer"] == 8 and plan["model"]["n_embd"] == 512
    assert 20e6 < plan["model"]["n_params"] < 30e6 and plan["model"]["n_positions"] > 600
    b = plan["benchmark"]
    assert (b["trained_authors"], b["forget_authors"], b["forget_qa"], b["retain_qa"]) == (200, 20, 300, 2700)
    assert (b["heldout_qa"], b["population_qa"]) == (300, 300)
    assert plan["training"]["original_steps"] == 235 and plan["training"]["retain_steps"] == 211  # 5 epochs, batch 64
    assert plan["unlearning"] == {"methods": ["npo", "grad_diff"], "epochs": 10, "steps_per_epoch": 19}
    assert not any(tmp_path.iterdir())  # nothing trained or written


def test_bench_llm_tiny_reports_both_rates(capsys):
    assert bench_llm.main(["--n", "12", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--device", "cpu", "--rounds", "1",
                           "--min-seconds", "0"]) == 0
    res = json.loads(capsys.readouterr().out.splitlines()[0])
    assert res["sequences"] == 12 and res["scored_tokens"] > 12
    assert res["naive_tokens_per_s"] > 0 and res["batched_tokens_per_s"] > 0
    assert res["ratio"] == pytest.approx(res["naive_s"] / res["batched_s"], rel=2e-3, abs=0.006)  # ratio rounded to 0.01
    assert res["max_abs_logp_diff"] < 1e-4  # both paths compute the same numbers
    assert "batched_fraction_of_peak" not in res  # only on CUDA
