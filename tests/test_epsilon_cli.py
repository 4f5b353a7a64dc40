"""`expunge epsilon` end to end on digits (tiny MLP, no Ray): a retrain and an unlearned fleet, the
per-example epsilon artifact, the section in the report, and bad input refused before anything is made."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from expunge.cli import main
from expunge.store import Store

DIGITS = "configs/experiments/digits.yaml"
TINY = ["model.name=mlp", "train.epochs=6", "method.epochs=2", "method.min_steps=0"]


def artifacts(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("manifest.json")) if root.exists() else []


def test_epsilon_fleets_artifact_and_report(tmp_path, repo_root, monkeypatch, capsys):
    monkeypatch.chdir(repo_root)
    code = main(["epsilon", DIGITS, "--method", "finetune", "--models", "3", "--local", f"storage={tmp_path}", *TINY])
    out, err = capsys.readouterr()
    assert code == 0, err
    store = Store(str(tmp_path / "digits"))
    (key,) = [k for k in store.keys("audit") if k.startswith("epsilon-unlearned-finetune-")]
    art = store.get("audit", key, verify=True)
    eps = art.read("epsilon.npy")
    forget = store.get("split", "plan").read("forget.npy")
    assert eps.shape == (len(forget),) and np.all((eps[np.isfinite(eps)] >= 0) & (eps[np.isfinite(eps)] <= 50))
    summary = art.read("summary.json")
    assert summary["models_per_fleet"] == 3 and 0 <= summary["forget_score"] <= 1
    assert 0 <= summary["challenge_score"] <= 1
    # what it printed: the same numbers, the two ratios, and where the artifact is
    printed = {k: float(v) for k, v in re.findall(r"^  (forget score|challenge score|RA ratio|TA ratio) +([\d.]+)",
                                                    out, re.M)}
    assert set(printed) == {"forget score", "challenge score", "RA ratio", "TA ratio"}
    assert printed["forget score"] == pytest.approx(summary["forget_score"], abs=1e-4)
    assert printed["challenge score"] == pytest.approx(summary["challenge_score"], abs=1e-4)
    # challenge score = forget score x RA ratio x TA ratio
    assert printed["challenge score"] == pytest.approx(
        printed["forget score"] * printed["RA ratio"] * printed["TA ratio"], abs=2e-3)
    assert f"epsilon: {art.path}" in err
    # both fleets of 3 members, each with its cached outputs
    for fleet in ("retrain", key.removeprefix("epsilon-")):
        members = store.get("fleets", fleet).read("members.json")
        assert len(members) == 3 and all(store.exists("outputs", m) for m in members)
    # the report shows the section with the numbers
    assert main(["report", str(tmp_path / "digits")]) == 0
    report = store.get("reports", "report")
    html = report.read("report.html")
    assert '<section id="epsilon">' in html and "challenge_score" in html and "finetune" in html
    assert f"{summary['forget_score']:.3f}" in html and "epsilon.png" in report.files()
    assert '<section id="scoreui">' in html and "no ScoreUI table" in html  # the other section says what is missing


@pytest.mark.parametrize("argv,needles", [
    (["--method", "finetune", "--models", "1"], ["--models 1", "at least 3"]),
    (["--method", "finetune", "--models", "2"], ["--models 2", "always 0"]),
    (["--method", "nope", "--models", "3"], ["nope"]),
    (["--method", "finetune", "--models", "3", "method.nosuch=1"], ["finetune", "nosuch"]),
    (["--method", "finetune"], ["--models"]),
    (["--models", "2"], ["--method"]),
    (["--method", "finetune", "--models", "x"], ["--models", "x"]),
    (["--method", "finetune", "--models", "3", "train.epochs=0"], ["train.epochs"]),
])
def test_bad_input_is_one_line_exit_2_and_makes_nothing(tmp_path, repo_root, monkeypatch, capsys, argv, needles):
    monkeypatch.chdir(repo_root)
    code = main(["epsilon", DIGITS, *argv, "--local", f"storage={tmp_path}", "model.name=mlp"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("expunge: error:"), err
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    assert artifacts(tmp_path) == [] and not any(tmp_path.iterdir())
