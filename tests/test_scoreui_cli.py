"""`expunge scoreui` end to end on digits (tiny MLP, no Ray): the checkpoint series and its table,
ScoreUI in the report, and bad input refused in one line before anything is made."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from expunge.cli import main
from expunge.store import Store

DIGITS = "configs/experiments/digits.yaml"
TINY = ["model.name=mlp", "train.epochs=8", "audit.shadows=1", "audit.metrics=[accuracy,iam,lira]"]


def artifacts(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("manifest.json")) if root.exists() else []


@pytest.fixture(scope="module")
def scoreui_run(tmp_path_factory, repo_root):
    import os

    tmp = tmp_path_factory.mktemp("scoreui")
    cwd = os.getcwd()
    os.chdir(repo_root)
    try:
        code = main(["scoreui", DIGITS, "--local", "--breaks", "4", f"storage={tmp}", *TINY])
    finally:
        os.chdir(cwd)
    assert code == 0
    return tmp / "digits"


def test_scoreui_table_has_a_row_per_attack_and_iam_tracks_membership(scoreui_run):
    store = Store(str(scoreui_run))
    (key,) = [k for k in store.keys("audit") if k.startswith("scoreui-")]
    art = store.get("audit", key, verify=True)
    table = art.read("table.parquet")
    # accuracy has no per-sample scores: only the membership attacks, online and offline each
    assert list(table["attack"]) == ["IAM-On", "IAM-Off", "LiRA-On", "LiRA-Off"]
    for col in ("spearman", "spearman_low", "spearman_high", "pearson", "pearson_low", "pearson_high", "mse"):
        assert table[col].notna().all(), col
    assert (table["spearman_low"] <= table["spearman"]).all() and (table["spearman"] <= table["spearman_high"]).all()
    assert (table["checkpoints"] == 5).all()
    forget = store.get("split", "plan").read("forget.npy")
    assert (table["samples"] == len(forget)).all()
    # membership rises with the degree, and IAM's scores follow it (measured Spearman 0.71 here)
    iam = table.set_index("attack").loc["IAM-On"]
    assert iam["spearman"] > 0.3 and iam["spearman_low"] > 0
    scores = art.read("scores__IAM-On.npy")
    assert scores.shape == (5, len(forget)) and np.allclose(art.read("fractions.npy"), [0, .25, .5, .75, 1])
    assert scores[-1].mean() > scores[0].mean()
    # the series is stored with manifests: b = 0 ... 4, membership b / 4, from the extra OUT shadow
    summary = art.read("summary.json")
    assert summary["init"] == "fleet-shadow-out_only/0001"  # not the audit's scoring shadow 0000
    for b, ckpt in enumerate(summary["checkpoints"]):
        assert store.get("models", ckpt).manifest["config"]["membership"] == b / 4
        assert store.exists("outputs", ckpt)
    assert (scoreui_run / "audit" / key / "table.csv").is_file()


def test_scoreui_rerun_reuses_the_series_and_the_report_shows_it(scoreui_run, repo_root, monkeypatch, capsys):
    monkeypatch.chdir(repo_root)
    store = Store(str(scoreui_run))
    first = store.get("models", store.get("audit", [k for k in store.keys("audit") if k.startswith("scoreui-")][0])
                      .read("summary.json")["checkpoints"][2]).manifest["created"]
    assert main(["scoreui", DIGITS, "--local", "--breaks", "4", f"storage={scoreui_run.parent}", *TINY]) == 0
    err = capsys.readouterr().err
    assert "reused the checkpoint series" in err and "scoreui table: " in err
    ckpts = store.get("audit", [k for k in store.keys("audit") if k.startswith("scoreui-")][0]).read("summary.json")
    assert store.get("models", ckpts["checkpoints"][2]).manifest["created"] == first
    assert main(["report", str(scoreui_run)]) == 0
    html = store.get("reports", "report").read("report.html")
    assert '<section id="scoreui">' in html and "IAM-On" in html and "spearman [95% CI]" in html
    assert "scoreui_" in html or "data:image/png" in html
    files = store.get("reports", "report").files()
    assert any(f.startswith("scoreui_") and f.endswith(".png") for f in files)


@pytest.mark.parametrize("extra,needles", [
    (["--breaks", "3"], ["--breaks 3", "train.epochs=8"]),
    (["--breaks", "0"], ["--breaks 0"]),
    (["audit.metrics=[accuracy,cr]"], ["audit.metrics", "per-sample"]),
    (["audit.shadows=0"], ["audit.shadows", "iam, lira"]),
    (["--breaks", "two"], ["--breaks", "two"]),
    (["audit.shadow_model={name: mlp}"], ["audit.shadow_model", "in-distribution shadow"]),
])
def test_bad_input_is_one_line_exit_2_and_makes_nothing(tmp_path, repo_root, monkeypatch, capsys, extra, needles):
    monkeypatch.chdir(repo_root)
    code = main(["scoreui", DIGITS, "--local", f"storage={tmp_path}", *TINY, *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("expunge: error:"), err
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    assert artifacts(tmp_path) == [] and not any(tmp_path.iterdir())
