"""``expunge llm-sweep`` on tiny byte-level GPT-2s the tests train: a sweep of two methods on Ray Tune
writes the per-epoch results table, the Pareto front and a best config per method; ``llm-unlearn`` on
a best config reproduces the trial's rows; an interrupted sweep resumes; the fixed models' log-probs
are computed once; every bad input is one line with exit status 2 and nothing written."""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from expunge.errors import ConfigError
from expunge.jobs.llm_sweep import main
from expunge.store import Store

CONFIG = "configs/llm/sweep_tiny.yaml"
LR = "{loguniform: [3.0e-4, 3.0e-3]}"
METHODS = f"[{{name: grad_diff, space: {{lr: {LR}, epochs: 2}}}}, {{name: npo, space: {{lr: {LR}, epochs: 2}}}}]"
SETS = ("forget", "retain", "heldout")


def _write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An original model trained on forget + retain canaries, a retain model trained without the forget
    ones (2 layers, 32 wide), and the three sets as JSON lines."""
    import torch

    from expunge.llm.corpus import make_corpus
    from expunge.llm.models import tiny_gpt2
    from expunge.llm.train import train_lm

    root = tmp_path_factory.mktemp("llm_sweep")
    c = make_corpus(n_docs=48, n_members=20, n_nonmembers=8, n_population=2, canary_words=5, seed=1)
    forget, kept, held = c.members[:8], c.members[8:], c.nonmembers
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, texts in (("original", c.docs + (forget + kept) * 4), ("retain_model", c.docs + kept * 4)):
            model, tok = tiny_gpt2(n_layer=2, n_embd=32, n_head=2, n_positions=96, seed=0)
            train_lm(model, tok, texts, steps=60, batch_size=16, lr=1e-2, seed=0)
            model.save_pretrained(root / name)
            tok.save_pretrained(root / name)
    finally:
        torch.set_num_threads(old)
    files = {name: _write_jsonl(root / f"{name}.jsonl", [{"id": f"{name}{i}", "text": t} for i, t in enumerate(texts)])
             for name, texts in (("forget", forget), ("retain", kept + c.docs[:8]), ("heldout", held))}
    return {"root": root, "model": str(root / "original"), "retain_model": str(root / "retain_model"), **files}


def _args(world, storage, *extra: str) -> list[str]:
    return [f"model={world['model']}", f"retain_model={world['retain_model']}", f"forget={world['forget']}",
            f"retain={world['retain']}", f"heldout={world['heldout']}", f"storage={storage}", "name=run",
            "data.id_column=id", "threads=1", "unlearn.batch_size=4", "audit.n_boot=0", "audit.n_levels=50",
            f"sweep.methods={METHODS}", "sweep.name=s", "sweep.num_samples=2", "sweep.max_concurrent=2", *extra]


@pytest.fixture(scope="module")
def swept(world, tmp_path_factory, ray_local):
    """2 methods x 2 trials x 2 epochs, ASHA, two trials at a time; the printed output kept."""
    from expunge.llm.sweep_run import load_sweep_config, run_llm_sweep

    storage = tmp_path_factory.mktemp("sweep_runs")
    cfg = load_sweep_config(CONFIG, _args(world, storage))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        res = run_llm_sweep(cfg)
    return {"res": res, "cfg": cfg, "out": out.getvalue(), "store": Store(str(storage / "run")), "storage": storage}


@pytest.mark.ray
@pytest.mark.slow
def test_sweep_writes_the_table_pareto_front_and_best_configs(swept):
    from expunge.llm.sweep_run import check_sweep, known_columns
    from expunge.llm.unlearn_run import LLMUnlearnJobConfig

    res, store = swept["res"], swept["store"]
    art = store.get("llm_sweeps", "s", verify=True)  # every file's hash checks
    assert {"results.parquet", "results.csv", "pareto.parquet", "pareto.csv", "best_grad_diff.yaml", "best_npo.yaml",
            "summary.json"} <= set(art.files())
    table = art.read("results.parquet")
    assert art.read("results.csv")["trial_id"].tolist() == table["trial_id"].tolist()
    assert table.groupby("method")["trial_id"].nunique().to_dict() == {"grad_diff": 2, "npo": 2}
    assert set(table["status"]) <= {"completed", "stopped"}
    for _, trial in table.groupby("trial_id"):  # one row per epoch reported; a completed trial has both
        assert trial["epoch"].tolist() == list(range(1, len(trial) + 1))
        assert len(trial) == 2 or (trial["status"] == "stopped").all()
    # every column a constraint may name is in the table, computed from the sets and attacks alone
    assert known_columns(check_sweep(swept["cfg"]).inp) <= set(table.columns)

    # the objective recomputed: mean |AUC - AUC_retain| over the attack columns, against the retain model
    ref = json.loads(art.read_bytes("summary.json"))["fixed_rows"]["retain model"]
    aucs = [c for c in table.columns if c.endswith("_auc")]
    dist = np.nanmean(np.abs(table[aucs].to_numpy(float) - np.array([ref[c] for c in aucs])), axis=1)
    np.testing.assert_allclose(table["objective"], dist, rtol=1e-12)
    assert table["feasible"].all()  # no constraint: every row counts
    # the best row per method: the smallest objective of its rows
    for method, rows in table.groupby("method"):
        best = rows[rows["best"]]
        assert len(best) == 1 and best["objective"].iloc[0] == rows["objective"].min()
    # the Pareto front, by brute force on (forgetting, utility drop), both lower-is-better
    vals = table[["forgetting", "utility_drop_pct"]].to_numpy(float)
    front = [not any((o <= v).all() and (o < v).any() for o in vals) for v in vals]
    assert table["pareto"].tolist() == front and art.read("pareto.csv")["trial_id"].tolist() == \
        table.loc[front, "trial_id"].tolist()

    for method in ("grad_diff", "npo"):  # each best config is an llm-unlearn config at the best row
        row = table[table["best"] & (table["method"] == method)].iloc[0]
        best = LLMUnlearnJobConfig.model_validate(yaml.safe_load(art.read(f"best_{method}.yaml")))
        assert best.unlearn.method == method and best.epochs == row["epoch"]
        assert best.unlearn.lr == row["param.lr"] and best.threads == 1
        assert best.retain_model == swept["cfg"].retain_model  # the user's paths, as written
        assert f"best {method}: objective" in swept["out"] and f"{art.path}/best_{method}.yaml" in swept["out"]
    assert f"results table: {art.path}/results.csv" in swept["out"] and "Pareto front" in swept["out"]
    assert res["path"] == art.path


@pytest.mark.ray
@pytest.mark.slow
def test_fixed_models_are_scored_once_and_trials_cache_nothing(swept):
    """The driver computed the original's and the retain model's passes (3 sets each); every trial read
    all six from the store's cache and computed none; no trial model entered the cache."""
    res, store = swept["res"], swept["store"]
    assert res["passes"]["computed"] == 2 * len(SETS)
    table = res["table"]
    assert (table["fixed_computed"] == 0).all() and (table["fixed_read"] == 2 * len(SETS)).all()
    assert len(store.keys("llm_logprobs")) == 2 * len(SETS)


@pytest.mark.ray
@pytest.mark.slow
def test_llm_unlearn_on_a_best_config_reproduces_the_trial(swept, tmp_path):
    """``expunge llm-unlearn`` on best_npo.yaml retrains epochs 1..e and audits them: its per-epoch rows
    equal the trial's. Same seed, same data order, no schedule (epoch e of a longer run is the e-epoch
    model), one torch thread in both, and the same scoring code, so the numbers agree to the last bit
    here; rel 1e-6 leaves room for a float32 rounding difference of the log-probs, far below the gap
    between epochs (> 1e-2)."""
    from expunge.jobs.llm_unlearn import main as llm_unlearn

    art = swept["store"].get("llm_sweeps", "s")
    table = art.read("results.parquet")
    best = table[table["best"] & (table["method"] == "npo")].iloc[0]
    (tmp_path / "best.yaml").write_text(art.read("best_npo.yaml"))
    with contextlib.redirect_stdout(io.StringIO()):
        assert llm_unlearn([str(tmp_path / "best.yaml"), f"storage={tmp_path / 'again'}", "--local"]) == 0
    again = Store(str(tmp_path / "again" / "run-s-npo")).get("llm_unlearn", "npo").read("epochs.parquet")
    trial = table[table["trial_id"] == best["trial_id"]].set_index("epoch")
    for e in range(1, int(best["epoch"]) + 1):
        got = again[again["epoch"] == e].iloc[0]
        for col in ("objective", "utility_drop_pct", "forget_loss", "heldout_ppl", "loss_binui_auc"):
            assert got[col] == pytest.approx(trial.loc[e, col], rel=1e-6), (e, col)


@pytest.mark.ray
@pytest.mark.slow
def test_interrupted_sweep_resumes_and_another_config_is_refused(world, tmp_path, repo_root, ray_local):
    """Ctrl+C after the first trial: exit 130 and a rerun hint; the same command finishes the sweep with
    the earlier trial kept; a changed sweep in the same place is refused. The interrupted command joins
    the test run's Ray (RAY_ADDRESS), as a command on a cluster would, instead of starting its own."""
    from expunge.llm.sweep_run import load_sweep_config, run_llm_sweep

    args = _args(world, tmp_path / "runs", "sweep.methods=[{name: grad_diff, space: {lr: " + LR + ", epochs: 2}}]",
                 "sweep.num_samples=3", "sweep.max_concurrent=1", "sweep.scheduler=fifo", "sweep.name=cut")
    log = tmp_path / "first.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "expunge.jobs.llm_sweep", str(repo_root / CONFIG), *args],
                                stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1",
                                     "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address},
                                cwd=tmp_path)
        deadline = time.time() + 180
        while time.time() < deadline and "1/3 trials done" not in log.read_text() and proc.poll() is None:
            time.sleep(0.3)
        assert proc.poll() is None, log.read_text()[-2000:]
        proc.send_signal(signal.SIGINT)  # Ctrl+C: Tune saves its state and stops
        rc = proc.wait(timeout=120)
    text = log.read_text()
    assert rc == 130 and "interrupted during grad_diff" in text and "rerun the same command" in text, text[-2000:]
    ended = int(re.search(r"\((\d+) of 3 trials finished\)", text).group(1))
    assert 1 <= ended < 3
    tune_dir = tmp_path / "runs" / "run" / "llm_tune" / "cut" / "grad_diff"
    before = {p.name.split("_")[3] for p in tune_dir.glob("tune_trial_*")
              if (p / "result.json").is_file() and (p / "result.json").stat().st_size}
    assert len(before) >= 1

    with contextlib.redirect_stdout(io.StringIO()):
        res = run_llm_sweep(load_sweep_config(CONFIG, args))  # the same command again: resumes
    table = res["table"]
    assert table["trial_id"].nunique() == 3 and (table["status"] == "completed").all()
    assert before <= {t.split("_")[1] for t in table["trial_id"]}  # the earlier trials kept, not redrawn
    assert res["passes"]["computed"] == 0  # the fixed models' scores came from the store
    with pytest.raises(ConfigError, match="made with another config"):
        run_llm_sweep(load_sweep_config(CONFIG, [*args, "sweep.num_samples=4"]))


def test_benchmark_times_shared_against_recomputed_fixed_scores(world, tmp_path):
    """The benchmark's two kinds of trial: the shared one reads the six fixed passes, the other computes
    them; both reach the same objective."""
    from expunge.llm.sweep_run import bench_trial_cost, load_sweep_config

    out = bench_trial_cost(load_sweep_config(CONFIG, _args(world, tmp_path / "runs")), rounds=1, method="npo")
    (shared,), (recomputed,) = out["rounds"]["shared"], out["rounds"]["recompute"]
    assert (shared["fixed_computed"], shared["fixed_read"]) == (0, 2 * len(SETS))
    assert (recomputed["fixed_computed"], recomputed["fixed_read"]) == (2 * len(SETS), 0)
    assert out["same_objective"] and out["method"] == "npo" and out["median_trial_s"]["shared"] > 0


def test_tune_state_of_another_config_is_refused_and_rebuild_clears_it(tmp_path):
    from expunge.llm.sweep_run import check_state

    root = tmp_path / "tune" / "s"
    check_state(str(root), {"sweep": {"num_samples": 2}}, rebuild=False)
    (root / "npo").mkdir()  # Tune's state of a method
    check_state(str(root), {"sweep": {"num_samples": 2}}, rebuild=False)  # the same config: kept, resumed
    assert (root / "npo").is_dir()
    with pytest.raises(ConfigError, match=r"made with another config \(sweep.num_samples: stored 2, requested 3\)"):
        check_state(str(root), {"sweep": {"num_samples": 3}}, rebuild=False)
    check_state(str(root), {"sweep": {"num_samples": 3}}, rebuild=True)  # starts over
    assert not (root / "npo").exists()
    assert json.loads((root / "sweep.json").read_text()) == {"sweep": {"num_samples": 3}}


def test_infeasible_rows_are_kept_but_never_best():
    """Constraints make a row infeasible (scored with a penalty for the scheduler); the best row of a
    method is its feasible one with the smallest objective, ties to the earlier epoch; the forgetting
    objective carries llm-unlearn's utility limit."""
    from expunge.config import Constraint
    from expunge.llm.sweep_run import best_rows, results_table, scored_row

    fixed = {"original": {"heldout_ppl": 10.0, "loss_forget_vs_heldout_auc": 0.9, "loss_binui_auc": 0.7},
             "retain model": {"heldout_ppl": 11.0, "loss_forget_vs_heldout_auc": 0.5, "loss_binui_auc": 0.9}}
    row = {"heldout_ppl": 10.4, "loss_forget_vs_heldout_auc": 0.6, "loss_binui_auc": 0.8}
    rules = [Constraint.parse("utility_drop_pct <= 3")]
    out = scored_row(row, fixed, "retain", rules)
    assert out["utility_drop_pct"] == pytest.approx(4.0) and out["forgetting"] == pytest.approx(0.1)
    assert out["retain_distance"] == pytest.approx(0.1) and out["objective"] == out["retain_distance"]
    assert not out["feasible"] and out["sweep_score"] > 1e5
    assert scored_row(row, fixed, "retain", [])["feasible"]
    util = [Constraint("utility_drop_pct", "<=", 5.0)]  # the forgetting objective's limit
    assert scored_row(row, {"original": fixed["original"]}, "forgetting", util)["objective"] == pytest.approx(0.1)

    rows = [{"method": "npo", "trial_id": "a", "epoch": 1, "objective": 0.05, "feasible": False, "utility_drop_pct": 9,
             "forgetting": 0.05},
            {"method": "npo", "trial_id": "a", "epoch": 2, "objective": 0.2, "feasible": True, "utility_drop_pct": 2,
             "forgetting": 0.2},
            {"method": "npo", "trial_id": "b", "epoch": 1, "objective": 0.2, "feasible": True, "utility_drop_pct": 1,
             "forgetting": 0.2},
            {"method": "ga", "trial_id": "c", "epoch": 1, "objective": 0.1, "feasible": False, "utility_drop_pct": 8,
             "forgetting": 0.1}]
    table = results_table(rows, {"forgetting": "min", "utility_drop_pct": "min"})
    assert table["best"].tolist() == [False, False, True, False]  # the tie goes to the earlier epoch
    assert best_rows(table)["method"].tolist() == ["npo"]  # ga has no feasible row: no best config
    assert table["pareto"].tolist() == [True, False, True, True]  # the trade-off, feasible or not


@pytest.mark.parametrize("case, expect", [
    ("unknown_method", r"sweep.methods: unknown LLM unlearning method 'nop'; did you mean npo"),
    ("unknown_key", r"sweep method npo: space.betta: unknown hyperparameter \(allowed: .*beta"),
    ("empty_space", r"sweep method ga: nothing to sweep \(the space is empty\)"),
    ("refused_bound", r"sweep method npo: space.beta: value 0 is refused by the method: beta: Input should be greater"),
    ("rmu_layer", r"sweep method rmu: space.rmu_layer: rmu_layer 4 is out of range for a model with 2 layers"),
    ("fractional_epochs", r"sweep method npo: space.epochs: takes whole numbers; use randint, choice or grid"),
    ("unknown_column", r"sweep.constraints: unknown column 'utility_drop' \(known: .*utility_drop_pct"),
    ("fixed_and_swept", r"sweep method npo: lr is both fixed in params and swept in space"),
    ("grid_search", r"sweep method grad_diff: grid search needs grid or choice dimensions; lr is loguniform"),
    ("empty_forget", r"forget set: dataset .*empty.jsonl has no rows"),
    ("needs_retain", r"sweep method npo \(lr=0.001\): method 'npo' needs a retain set \(or alpha=0\)"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(world, tmp_path, capsys, case, expect):
    storage = tmp_path / "runs"
    method = {"unknown_method": "{name: nop}", "unknown_key": "{name: npo, space: {betta: {choice: [0.1]}}}",
              "empty_space": "{name: ga, default_space: false}",
              "refused_bound": "{name: npo, space: {beta: {choice: [0, 0.1]}}}",
              "rmu_layer": "{name: rmu, space: {rmu_layer: {choice: [0, 4]}}}",
              "fractional_epochs": "{name: npo, space: {epochs: {uniform: [1, 3]}}}",
              "fixed_and_swept": "{name: npo, params: {lr: 0.001}, space: {lr: {choice: [0.001]}}}"}.get(case)
    extra = [f"sweep.methods=[{method}]"] if method else []
    if case == "unknown_column":
        extra.append("sweep.constraints=['utility_drop <= 5']")
    elif case == "grid_search":
        extra.append("sweep.search=grid")
    elif case == "empty_forget":
        (tmp_path / "empty.jsonl").write_text("")
        extra.append(f"forget={tmp_path / 'empty.jsonl'}")
    elif case == "needs_retain":
        extra += ["retain=null", "sweep.methods=[{name: npo, space: {lr: {choice: [0.001]}}}]"]
    assert main([CONFIG, *_args(world, storage), *extra]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("expunge: error: "), captured.err
    assert re.search(expect, err[0]), err[0]
    assert not storage.exists()  # nothing written, not even the run directory


def test_local_runs_every_trial_in_process_to_its_last_epoch(world, tmp_path, capsys):
    """--local: no Ray; the grid point of each method runs here, every epoch is a row, and the best row's
    config is an llm-unlearn config with that epoch."""
    storage = tmp_path / "runs"
    extra = ["sweep.methods=[{name: grad_diff, space: {lr: {grid: [0.001, 0.003]}, epochs: 2, alpha: 1.0}}]",
             "sweep.num_samples=1", "--local"]
    assert main([CONFIG, *_args(world, storage), *extra]) == 0
    table = pd.read_csv(storage / "run" / "llm_sweeps" / "s" / "results.csv")
    assert sorted(table["param.lr"].unique().tolist()) == [0.001, 0.003]
    assert table.groupby("trial_id")["epoch"].apply(list).tolist() == [[1, 2], [1, 2]]  # no early stop
    assert (table["status"] == "completed").all() and table["best"].sum() == 1
    best = table[table["best"]].iloc[0]
    cfg = yaml.safe_load((storage / "run" / "llm_sweeps" / "s" / "best_grad_diff.yaml").read_text())
    assert cfg["unlearn"]["epochs"] == int(best["epoch"]) and cfg["unlearn"]["lr"] == best["param.lr"]
    assert not (storage / "run" / "llm_tune").exists()  # no Tune state without Tune


def test_the_command_is_registered(world, tmp_path, capsys):
    from expunge.cli import main as cli

    assert cli(["llm-sweep", CONFIG, *_args(world, tmp_path / "x"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "the config is valid: sweep grad_diff, npo" in out and "objective retain" in out
    assert "grad_diff: 2 trial(s) over lr, epochs, alpha; npo: 2 trial(s) over lr, epochs, beta" in out
    assert not (tmp_path / "x").exists()
