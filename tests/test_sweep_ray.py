"""Sweeps on local Ray: ASHA, the best config reproduces under `expunge unlearn`, interrupt + resume."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from expunge.config import MethodSpec

from expunge.resolve import load_config
from expunge.errors import ConfigError

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def sweep_yaml(path: Path, repo_root: Path, storage: Path, num_samples: int, concurrent: int) -> Path:
    path.write_text(f"""base: {repo_root}/configs/experiments/digits.yaml
storage: {storage}
train: {{epochs: 8}}
audit: {{shadows: 2}}
sweep:
  name: small
  methods:
    - name: finetune
      params: {{min_steps: 0}}  # the paper's step count: seconds per trial (the default rule is tested elsewhere)
      space: {{lr: {{loguniform: [1.0e-3, 0.2]}}, epochs: 4}}
  num_samples: {num_samples}
  max_concurrent: {concurrent}
  metrics: [accuracy, svc_mia, iam]
  constraints: ["TA_drop <= 5"]
  pareto: {{gap_UA: min, TA: max}}
""")
    return path


@pytest.fixture(scope="module")
def gold(tmp_path_factory, repo_root):
    """The original, retrained model and audit shadows of ``sweep_yaml``'s experiment, made once: each
    test starts from a copy (``storage(...)``), as a sweep does after `expunge run` made them."""
    from expunge.stages.fleet import run_fleet
    from expunge.experiment import Experiment
    from expunge.fleet.members import audit_shadow_config
    from expunge.stages.original import run_original

    root = tmp_path_factory.mktemp("sweep_gold")
    cfg = load_config(sweep_yaml(root / "s.yaml", repo_root, root / "runs", 1, 1))
    run_original(cfg, use_ray=False)
    Experiment(cfg, verbose=False).unlearn(MethodSpec(name="retrain"))
    run_fleet(audit_shadow_config(cfg), use_ray=False)
    return root / "runs"


def storage(gold: Path, tmp_path: Path) -> Path:
    """A copy of the gold run directory for one test (a run directory is relocatable)."""
    import shutil

    shutil.copytree(gold, tmp_path / "runs")
    return tmp_path / "runs"


def test_stored_references_are_read_here_and_missing_ones_trained_on_ray(tmp_path, repo_root, ray_local, gold,
                                                                          monkeypatch):
    """A sweep's original, retrained model and shadows, when stored, are read back in the driver: a
    Ray task would start a worker just to find them (measured: ~7 s of every sweep on 2 cores). When
    one is missing, the stages run on Ray as before."""
    import shutil

    import expunge.runtime as runtime
    import expunge.stages.fleet as fleet_stage
    from expunge.sweep import runner

    calls: list[bool] = []

    def recording(real):
        def run(*args, use_ray: bool = True, **kwargs):
            calls.append(use_ray)
            return real(*args, use_ray=use_ray, **kwargs)
        return run

    monkeypatch.setattr(runtime, "run_tasks", recording(runtime.run_tasks))
    monkeypatch.setattr(fleet_stage, "run_tasks", recording(fleet_stage.run_tasks))
    cfg = load_config(sweep_yaml(tmp_path / "s.yaml", repo_root, storage(gold, tmp_path), 2, 1))
    setup = runner._checked(cfg, False, True)
    (run,) = runner._references(setup, False, True)
    assert calls == [False, False, False]  # original, retrain, shadows: all read in this process
    assert run["reference"]["UA"] > run["original"]["UA"]

    calls.clear()
    retrain = setup.exps[0].unlearned_key(MethodSpec(name="retrain"))
    shutil.rmtree(tmp_path / "runs" / "digits" / "models" / retrain)
    (again,) = runner._references(setup, False, True)
    assert calls == [True, True, True]  # the missing retrained model is trained on Ray
    # retrained in a Ray worker (other torch threads than the fixture's): the same rows, not the same bits
    assert set(again["reference"]) == set(run["reference"]) and again["reference"]["RA"] > 90


def test_sweep_asha_best_config_reproduces(tmp_path, repo_root, ray_local, gold):
    from expunge.jobs.unlearn import unlearn_config
    from expunge.stages.unlearn import run_unlearn
    from expunge.store import Store
    from expunge.sweep.runner import run_sweep

    cfg = load_config(sweep_yaml(tmp_path / "s.yaml", repo_root, storage(gold, tmp_path), 8, 2))
    res = run_sweep(cfg, use_ray=True)
    table = res["table"]
    assert len(table) == 8 and set(table["status"]) <= {"completed", "stopped"}
    assert (table["status"] == "stopped").sum() >= 1, "ASHA stopped no trial early"
    stopped = table[table["status"] == "stopped"]
    assert (stopped["epochs_run"] < 4).all()
    assert (table.loc[table["status"] == "completed", "epochs_run"] == 4).all()
    # every trial is scored against the same retrained model: the gap columns are |m - m_retrain|
    ref = res["reference"]
    assert (table["gap_TA"] - (table["TA"] - ref["TA"]).abs()).abs().max() < 1e-9
    out = Path(res["path"])
    for name in ("results.csv", "results.parquet", "pareto.csv", "leaderboard.md", "summary.json",
                 "best_objective.yaml", "best_gap_UA.yaml", "best_TA.yaml", "objective_finetune.png", "pareto.png"):
        assert (out / name).is_file(), name
    assert table["pareto"].any()
    # no trial stored a model, and the gold standard was trained once
    keys = Store(cfg.run_dir).keys("models")
    assert sum(k.startswith("finetune") for k in keys) == 0 and sum(k.startswith("retrain") for k in keys) == 1

    best = res["best"]["objective"]
    # a trial ran in a 1-CPU Ray worker, which runs torch on one thread (Ray sets OMP_NUM_THREADS from
    # num_cpus); float sums differ between thread counts, and over 200 steps that can flip a prediction,
    # so the re-run uses the trial's thread count (the conftest fixture restores the count afterwards)
    torch.set_num_threads(1)
    rerun = run_unlearn(unlearn_config(str(out / best["file"]), None, None, []), use_ray=False)
    row = rerun["table"].set_index("method").loc["finetune"]
    assert row["avg_gap"] == pytest.approx(best["value"], abs=1e-3)  # the leaderboard rounds to 3 decimals
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"]["objective"]["trial_id"] == best["trial_id"]

    # damaged results of this sweep are refused by name before any trial runs, never rewritten
    # silently; --rebuild restores the finished Tune state and writes them again
    from expunge.errors import CorruptArtifactError

    (out / "best_TA.yaml").unlink()
    with pytest.raises(CorruptArtifactError, match="sweeps/small: file best_TA.yaml is missing"):
        run_sweep(cfg, use_ray=True)
    assert not (out / "best_TA.yaml").exists()
    again = run_sweep(cfg, rebuild=True, use_ray=True)
    assert Store(cfg.run_dir).get("sweeps", "small", verify=True) is not None
    assert sorted(again["table"]["trial_id"]) == sorted(table["trial_id"])  # the same trials, none re-run


def test_interrupted_sweep_resumes_and_stale_state_is_refused(tmp_path, repo_root, ray_local, gold):
    from expunge.sweep.runner import run_sweep

    path = sweep_yaml(tmp_path / "s.yaml", repo_root, storage(gold, tmp_path), 5, 1)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "first.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "expunge.jobs.sweep", "--config", str(path)],
                                stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        deadline = time.time() + 240
        while time.time() < deadline and log.read_text().count("trials done") < 2 and proc.poll() is None:
            time.sleep(0.5)
        assert proc.poll() is None, log.read_text()[-2000:]
        proc.send_signal(signal.SIGINT)  # Ctrl+C: Tune saves its state and stops
        rc = proc.wait(timeout=120)
    text = log.read_text()
    assert rc == 130 and "interrupted during finetune" in text and "rerun the same command" in text, text[-2000:]
    tune_dir = tmp_path / "runs" / "digits" / "tune" / "small" / "finetune"
    before = {p.name.split("_")[3] for p in tune_dir.glob("tune_trial_*")
              if (p / "result.json").is_file() and (p / "result.json").stat().st_size}
    assert 2 <= len(before) < 5
    # the message counts the trials that ended, not those that had reported when the run stopped
    ended = int(re.search(r"\((\d+) of 5 trials finished\)", text).group(1))
    done_lines = re.findall(r"(\d+)/5 trials done", text)
    assert ended == int(done_lines[-1]), (ended, done_lines)

    res = run_sweep(load_config(path), use_ray=True)  # the same command again: resumes
    table = res["table"]
    assert len(table) == 5 and set(table["status"]) <= {"completed", "stopped"}
    assert before <= {t.split("_")[1] for t in table["trial_id"]}  # the earlier trials are kept, not redrawn

    with pytest.raises(ConfigError, match="made with another config"):
        run_sweep(load_config(path, ["sweep.num_samples=7"]), use_ray=True)


def test_killed_trial_worker_is_retried_and_the_sweep_finishes(tmp_path, repo_root, ray_local, faults, gold):
    from expunge.sweep.runner import run_sweep

    fired = faults.arm("trial", epoch=2)
    cfg = load_config(sweep_yaml(tmp_path / "s.yaml", repo_root, storage(gold, tmp_path), 3, 2),
                      ["sweep.scheduler=fifo", "sweep.max_failures=1"])
    res = run_sweep(cfg, use_ray=True)
    assert fired.exists()  # a trial's worker really died mid-trial
    table = res["table"]
    assert len(table) == 3 and (table["status"] == "completed").all(), table[["trial_id", "status", "error"]]


def test_sweep_over_seeds_scores_the_mean_and_writes_seeded_configs(tmp_path, repo_root, ray_local):
    """``seeds: [0, 1]``: each seed gets its own gold standard, every trial's objective is the mean over
    seeds of its per-seed gaps, and the tuned config says which seeds it was scored on."""
    import yaml

    from expunge.sweep.runner import run_sweep

    cfg = load_config(sweep_yaml(tmp_path / "s.yaml", repo_root, tmp_path / "runs", 2, 2),
                      ["seeds=[0,1]", "train.epochs=4", "audit.shadows=1", "sweep.scheduler=fifo",
                       "sweep.methods=[{name: finetune, params: {min_steps: 0}, space: {lr: {loguniform: [1.0e-3, 0.2]}, epochs: 2}}]"])
    res = run_sweep(cfg, use_ray=True)
    table = res["table"]
    assert len(table) == 2 and (table["status"] == "completed").all()
    assert (table["seeds"] == 2).all() and table["objective_std"].notna().all()
    refs = res["references"]
    assert sorted(refs) == [0, 1] and refs[0]["TA"] != refs[1]["TA"]  # two gold standards, not one
    assert res["reference"]["TA"] == pytest.approx((refs[0]["TA"] + refs[1]["TA"]) / 2)
    out = Path(res["path"])
    assert out.parent.parent == tmp_path / "runs" / "digits"  # the cross-seed directory, beside seed-0/ and seed-1/
    assert (tmp_path / "runs" / "digits" / "seed-1").is_dir()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and sorted(summary["reference_retrain_per_seed"]) == ["0", "1"]
    tuned = (out / "tuned_methods.yaml").read_text()
    assert "seeds 0, 1 (mean)" in tuned.splitlines()[0]
    best = yaml.safe_load((out / res["best"]["objective"]["file"]).read_text())
    assert best["seeds"] == [0, 1]  # `expunge run` on it repeats the seeds it was scored on
