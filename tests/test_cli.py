"""The `expunge` command end to end: demo table, reuse, refusal, and every bad input -> exit 2."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from expunge.cli import main
from expunge.store import Store

FAST = ["train.epochs=6", "audit.shadows=1", "unlearn.methods=[retrain,{name: finetune, params: {epochs: 2}},ga]"]


def run_cli(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def artifacts(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("manifest.json"))


def test_demo_local_table_and_reuse(tmp_path, capsys):
    code, out, err = run_cli(["demo", "--local", f"storage={tmp_path}", *FAST], capsys)
    assert code == 0, err
    for col in ("UA", "RA", "TA", "RTE_s", "retrain", "finetune", "ga", "original"):
        assert col in out
    run = tmp_path / "digits"
    assert f"run directory: {run}" in err and "summary.md" in err
    store = Store(str(run))
    table = store.get("audit", "results", verify=True).read("leaderboard.csv")
    assert set(table["method"]) == {"original", "retrain", "finetune", "ga"}
    assert table.loc[table.method == "original", "TA"].item() >= 85.0
    orig = store.get("models", "original").manifest
    # a rerun reuses every stored model: same content hash, same creation time
    code, _, err = run_cli(["demo", "--local", f"storage={tmp_path}", *FAST], capsys)
    assert code == 0, err
    again = store.get("models", "original").manifest
    assert (again["created"], again["content_hash"]) == (orig["created"], orig["content_hash"])
    assert "original: epoch" not in err


def test_changed_config_is_refused_then_rebuilt(tmp_path, capsys):
    assert run_cli(["demo", "--local", f"storage={tmp_path}", *FAST], capsys)[0] == 0
    code, _, err = run_cli(["demo", "--local", f"storage={tmp_path}", *FAST, "train.lr=0.02"], capsys)
    assert code == 2 and "models/original" in err and "config.train.lr: stored 0.05, requested 0.02" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["demo", "--local", "--rebuild", f"storage={tmp_path}", *FAST, "train.lr=0.02"], capsys)
    assert code == 0, err
    assert Store(str(tmp_path / "digits")).get("models", "original").manifest["config"]["train"]["lr"] == 0.02


def test_corrupt_artifact_is_refused_by_name(tmp_path, capsys):
    assert run_cli(["demo", "--local", f"storage={tmp_path}", *FAST], capsys)[0] == 0
    weights = tmp_path / "digits" / "models" / "original" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    weights.write_bytes(bytes(data[: len(data) // 2]))
    code, _, err = run_cli(["demo", "--local", f"storage={tmp_path}", *FAST], capsys)
    assert code == 2 and "models/original" in err and "corrupt" in err
    code, _, err = run_cli(["demo", "--local", "--rebuild", f"storage={tmp_path}", *FAST], capsys)
    assert code == 0, err


@pytest.mark.parametrize("override, needle", [
    ("data.dataset=mnist", "unknown dataset 'mnist'"),
    ("model.name=transformer9", "unknown model 'transformer9'"),
    ("unlearn.methods=[unforget]", "unknown unlearning method 'unforget'"),
    ("data.forget=random:0", "count must be >= 1"),
    ("data.forget=random:0.0", "(0, 1)"),
    ("data.forget=random:1.0", "(0, 1)"),
    ("data.forget=class:12", "class 12 out of range"),
    ("data.forget=class_percentage:3:0.0001", "empty forget set"),
    ("data.dataset=cifar10", "no-such-dir"),
    ("data.dataset=imagefolder", "no-such-dir"),
    ("train.epochs=0", "train.epochs"),
])
def test_bad_input_exits_2_before_compute(tmp_path, capsys, override, needle):
    extra = [f"data.root={tmp_path / 'no-such-dir'}"] if "cifar" in override or "imagefolder" in override else []
    code, out, err = run_cli(["run", "configs/experiments/digits.yaml", "--local", f"storage={tmp_path}",
                              override, *extra], capsys)
    assert code == 2
    line = err.strip()
    assert line.startswith("expunge: error:") and len(line.splitlines()) == 1 and needle in line, line
    assert artifacts(tmp_path) == []  # nothing written, let alone half-written
    assert "loss" not in err  # no training step ran


def test_missing_config_file(tmp_path, capsys):
    code, _, err = run_cli(["run", str(tmp_path / "missing.yaml"), "--local"], capsys)
    assert code == 2 and "config file not found" in err


def test_info_lists_registries(capsys):
    code, out, _ = run_cli(["info"], capsys)
    assert code == 0
    for name in ("digits", "synthetic", "cifar10", "imagefolder", "cnn", "resnet18", "vit", "fastnet",
                 "retrain", "finetune", "ga", "accuracy", "search space"):
        assert name in out


def test_console_script_exit_code_and_one_line(tmp_path):
    exe = Path(sys.executable).with_name("expunge")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "expunge.cli"]
    res = subprocess.run([*cmd, "run", "configs/experiments/digits.yaml", "--local", f"storage={tmp_path}",
                          "data.forget=class:99"], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == ["expunge: error: forget spec class:99: class 99 out of range 0..9"]


@pytest.mark.slow
@pytest.mark.ray
def test_demo_on_embedded_ray(tmp_path):
    """The README's main command: `expunge demo` with stages as Ray tasks on a local Ray."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    exe = Path(sys.executable).with_name("expunge")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "expunge.cli"]
    res = subprocess.run([*cmd, "demo", f"storage={tmp_path}"], capture_output=True, text=True, timeout=300,
                         env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "retrain" in res.stdout and "finetune" in res.stdout and "UA" in res.stdout
    table = Store(str(tmp_path / "digits")).get("audit", "results", verify=True).read("leaderboard.csv")
    orig = table[table.method == "original"].iloc[0]
    assert orig.TA >= 90.0 and orig.UA <= 5.0
    # the audit on digits (4 OUT shadows): the retrained model's forget set is at chance against held-out
    # non-members; the original's is above it (digits generalises well, so the gap is small: measured
    # IAM 0.60 vs 0.51; tests/test_audit.py shows the strong case on data the model memorises)
    retrain = table[table.method == "retrain"].iloc[0]
    for attack in ("lira", "iam"):
        assert abs(retrain[f"{attack}_forget_vs_test_auc"] - 0.5) <= 0.1
    assert orig.iam_forget_vs_test_auc > retrain.iam_forget_vs_test_auc
    assert retrain.avg_gap == 0.0


def test_unlearn_command_runs_one_method(tmp_path, capsys):
    code, out, err = run_cli(["unlearn", "--method", "finetune+cpu", "--forget", "class:3", "--local",
                              f"storage={tmp_path}", "train.epochs=4", "method.epochs=2", "method.lambda=0.5"], capsys)
    assert code == 0, err
    assert "finetune+cpu" in out and "unlearned model (finetune+cpu):" in err
    store = Store(str(tmp_path / "digits"))
    keys = store.keys("models")
    assert "original" in keys and any(k.startswith("finetune+cpu-") for k in keys)
    art = store.get("models", next(k for k in keys if k.startswith("finetune+cpu-")))
    assert art.manifest["config"]["params"]["lam"] == 0.5 and art.manifest["run_time_s"] > 0


@pytest.mark.parametrize("args, needle", [
    (["--method", "pru", "--forget", "random:0.1"], "pru applies to forget specs class"),
    (["--method", "finetune+cpu", "method.alpha=1.5"], "alpha"),
    (["--method", "finetune+cpu", "method.lambda=-1"], "lambda"),
    (["--method", "salun", "method.mask_ratioo=0.2"], "mask_ratioo: unknown key"),
    (["--method", "salunn"], "did you mean salun"),
])
def test_unlearn_bad_input(tmp_path, capsys, args, needle):
    code, _, err = run_cli(["unlearn", *args, "--local", f"storage={tmp_path}"], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert artifacts(tmp_path) == []


def test_help_of_every_command_renders(capsys):
    from expunge.cli import build_parser, main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"demo", "run", "train", "fleet", "sweep", "audit", "report", "unlearn", "info"} <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0, name
    assert "usage: expunge" in capsys.readouterr().out
