"""``expunge sweep``: one Ray Tune ``Tuner`` per swept method, every trial scored against retrain.

Order of work: validate everything (spaces, search algorithm, objective columns) -> make the gold
standard once (original, retrained model, the audit's shadow fleet; reused from the store when there)
-> per method, run or resume its Tuner (ASHA by default) -> one results table, the Pareto front, the
best configuration per objective as a ready-to-run YAML, plots and a leaderboard by objective.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from expunge.audit.stage import audit_values, reference_inputs
from expunge.config import ExperimentConfig, MethodSpec, SweepConfig, SweepMethod, join_uri
from expunge.errors import ConfigError, CorruptArtifactError, ExpungeError
from expunge.experiment import Experiment, log, short_hash
from expunge.fleet.members import audit_shadow_config, audit_shadow_keys, check_fleets
from expunge.store import Store
from expunge.store.store import diff
from expunge.sweep.objective import Constraint, check_columns, pareto_front, trial_row
from expunge.resolve import method_space
from expunge.sweep.trial import mean_row
from expunge.sweep.tune_state import check_seal, seal

#: leaderboard columns shown first
SHOWN = ("method", "objective", "objective_std", "UA", "RA", "TA", "MIA_efficacy", "avg_gap", "RTE_s")


class SweepInterrupted(ExpungeError):
    exit_code = 130


def slug(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name)


def with_absolute_storage(cfg: ExperimentConfig) -> ExperimentConfig:
    """Tune runs trials in their own working directories: a relative run directory must not move."""
    if "://" in cfg.storage:
        return cfg
    return cfg.model_copy(update={"storage": str(Path(cfg.storage).resolve())})


def max_epochs(method: SweepMethod, space: dict[str, Any], train_epochs: int) -> int:
    """ASHA's max_t: the most epochs any configuration of the method can run (methods whose epochs
    default to None, such as retrain+cpu, train for the experiment's ``train.epochs``)."""
    from expunge.unlearn.space import endpoints
    from expunge.unlearn import METHODS

    if "epochs" in space:
        values = [v for v in endpoints(space["epochs"]) if v is not None]
        return max(1, int(max(values))) if values else train_epochs
    fields = METHODS.get(method.name).Config.model_fields
    value = method.params.get("epochs", fields["epochs"].default if "epochs" in fields else 1)
    return max(1, int(train_epochs if value is None else value))


def expected_trials(space: dict[str, Any], sweep: SweepConfig) -> int:
    """How many trials a finished sweep of one method has: every grid point once per sample."""
    points = int(np.prod([len(d.args) for d in space.values() if d.kind == "grid" or
                          (sweep.search == "grid" and d.kind == "choice")] or [1]))
    return points * (1 if sweep.search == "grid" else sweep.num_samples)


def reference_rows(ex: Experiment, metrics: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """The retrained model's and the original's rows (leaderboard units): what every trial is scored
    against, computed once with the same metric functions the trials use."""
    inputs_for = reference_inputs(ex)
    rows = []
    for key in (ex.unlearned_key(MethodSpec(name="retrain")), "original"):
        values, _, _ = audit_values(ex, inputs_for(ex.outputs(key)), metrics, lambda: ex.load_model(key))
        row = trial_row(values, {}, {})
        row["RTE_s"] = float(ex.store.get("models", key).manifest.get("run_time_s", math.nan))
        rows.append(row)
    return rows[0], rows[1]


def _trial_rows(method: str, grid, space: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for res in grid:
        m = dict(res.metrics or {})
        status = ("error" if res.error else "diverged" if m.get("diverged") else
                  "completed" if m.get("final") else "stopped")
        params = {f"param.{k}": (res.config or {}).get(k) for k in space}
        keep = {k: v for k, v in m.items() if isinstance(v, (int, float, bool, np.number)) and k not in
                ("timestamp", "time_this_iter_s", "time_total_s", "pid", "time_since_restore",
                 "iterations_since_restore", "done", "final", "diverged", "epoch")}
        rows.append({"method": method, "trial_id": m.get("trial_id", ""), "status": status,
                     "epochs_run": int(m.get("training_iteration", 0) or 0), **params, **keep,
                     "error": str(res.error).splitlines()[0][:200] if res.error else ""})
    return rows


def _tuner(trainable, space: dict[str, Any], sweep: SweepConfig, method: SweepMethod, path: str,
           tune_root: str, seed: int, progress: Any, max_t: int, rebuild: bool = False):
    """The method's Tuner: resumed from ``path`` when its sealed state is intact, new otherwise."""
    from expunge.runtime.tune import can_restore, new_tuner, restore_tuner

    if can_restore(path):
        try:
            check_seal(path)  # before anything of Tune's is unpickled
        except CorruptArtifactError:
            if not rebuild or "://" in path:
                raise
            log(f"sweep {method.name}: unverified state in {path} removed (--rebuild); starting over")
            shutil.rmtree(path)
        else:
            log(f"sweep {method.name}: resuming from {path}")
            return restore_tuner(path, trainable)
    return new_tuner(trainable, space, sweep, slug(method.name), tune_root, seed, progress, max_t)


def _state_check(tune_root: str, state: dict[str, Any], rebuild: bool) -> None:
    """A sweep directory made with another config is refused (or cleared with ``--rebuild``)."""
    path = Path(tune_root) if "://" not in tune_root else None
    if path is None:
        return  # remote storage: Tune's own restore checks apply
    marker = path / "sweep.json"
    if marker.is_file():
        old = json.loads(marker.read_text())
        changed = diff(old, state)
        if changed and not rebuild:
            raise ConfigError(f"sweep state in {path} was made with another config ({'; '.join(changed[:4])}); "
                              "rerun with --rebuild to start it over, or set sweep.name")
        if changed:
            shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, sort_keys=True, default=str))
    tmp.replace(marker)


def best_yaml(cfg: ExperimentConfig, storage: str, row: pd.Series, fixed: dict[str, Any], what: str,
              metrics: list[str]) -> str:
    """A ready-to-run experiment: the sweep's experiment with ``unlearn.methods`` = [retrain, best],
    audited with the metrics the sweep scored (so the re-run reports the same columns)."""
    params = {**fixed, **{k.removeprefix("param."): _plain(v) for k, v in row.items()
                          if k.startswith("param.") and not _missing(v)}}
    data = cfg.model_dump(mode="json", exclude={"sweep"})
    data["storage"] = storage
    data["unlearn"] = {"methods": [{"name": "retrain"}, {"name": row["method"], "params": params}]}
    data["audit"]["metrics"] = metrics
    data["audit"]["params"] = {k: v for k, v in data["audit"]["params"].items() if k in metrics}
    over = f" (mean over seeds {', '.join(map(str, cfg.seeds))})" if cfg.seeds else ""
    head = (f"# best trial of sweep {cfg.sweep.name} by {what} = {float(row[what]):.6g}{over} "
            f"(trial {row['trial_id']}); reproduce with `expunge run` on this file" +
            (" (per seed)\n" if cfg.seeds else ", or\n# `expunge unlearn --config` on it, which reuses the "
             "stored original and retrained models\n"))
    return head + yaml.safe_dump(data, sort_keys=False)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _typed(method: str, key: str, v: Any) -> Any:
    """A trial's value as its method's config field takes it: the results table stores every
    parameter column as float (NaN where another method lacks it), so an integer field's 6 reads 6.0."""
    from expunge.unlearn import METHODS

    v = _plain(v)
    field = METHODS.get(method).Config.model_fields.get(key)
    wants_int = field is not None and (field.annotation is int or int in typing.get_args(field.annotation))
    return int(v) if wants_int and isinstance(v, float) and v.is_integer() else v


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


@dataclass
class _Setup:
    """What every step of a sweep reads: the checked config, its spaces and each seed's experiment."""
    cfg: ExperimentConfig  # run directory made absolute (Tune's trials run elsewhere)
    user_storage: str  # the storage as written, for the best-config YAMLs
    metrics: list[str]
    spaces: dict[str, dict[str, Any]]
    constraints: list[Constraint]
    per_seed: list[ExperimentConfig]
    exps: list[Experiment]
    results_store: Store

    @property
    def sweep(self) -> SweepConfig:
        return self.cfg.sweep


def _checked(cfg: ExperimentConfig, rebuild: bool, use_ray: bool) -> _Setup:
    """Check the config, spaces, search algorithm and every seed's experiment before any compute."""
    from expunge.runtime.tune import search_algorithm, to_tune

    sweep = cfg.sweep
    if not sweep.methods:
        raise ConfigError("sweep.methods: nothing to sweep (list methods under sweep.methods)")
    if not use_ray:
        raise ConfigError("sweep: trials run on Ray Tune; run without --local")
    user_storage = cfg.storage
    cfg = with_absolute_storage(cfg)
    metrics = list(sweep.metrics or cfg.audit.metrics)
    spaces = {m.name: method_space(m) for m in sweep.methods}
    for m in sweep.methods:  # grid / optuna compatibility and ASHA's horizon, before any compute
        to_tune(spaces[m.name], sweep.search)
        max_epochs(m, spaces[m.name], cfg.train.epochs)
    search_algorithm(sweep, cfg.seed)
    constraints = [Constraint.parse(c) for c in sweep.constraints]
    retrain = MethodSpec(name="retrain")
    # with ``seeds``, every trial runs on each seed's experiment and is scored on the mean over seeds
    per_seed = cfg.per_seed_configs()
    exps = [Experiment(c, rebuild=rebuild) for c in per_seed]
    for e in exps:  # an inapplicable method or a stale artifact of any seed is refused before compute
        e.preflight([retrain, *[MethodSpec(name=m.name, params=m.params) for m in sweep.methods]])
        check_fleets(e)
    # results: one seed's run directory; over seeds, the cross-seed directory <run>/ beside seed-<s>/
    results_store = exps[0].store if not cfg.seeds else Store(cfg.run_dir)
    if not rebuild:  # damaged results of an earlier run of this sweep: refused now, not after the trials
        results_store.check_intact("sweeps", sweep.name)
    return _Setup(cfg, user_storage, metrics, spaces, constraints, per_seed, exps, results_store)


def _announce(s: _Setup) -> None:
    """The sweep's opening log line: methods, dataset, forget set, objective, scheduler, search, seeds."""
    cfg, sweep = s.cfg, s.sweep
    seeds_text = f", seeds {', '.join(str(c.seed) for c in s.per_seed)} (scored on the mean)" if cfg.seeds else ""
    log(f"sweep {sweep.name}: {', '.join(s.spaces)} on {cfg.data.dataset}, forget {cfg.data.forget} "
        f"({len(s.exps[0].plan.forget)} samples); objective {sweep.objective} ({sweep.mode}), "
        f"scheduler {sweep.scheduler}, search {sweep.search}{seeds_text}")


def _references(s: _Setup, rebuild: bool, use_ray: bool) -> list[dict[str, Any]]:
    """Prepare the reference per seed (original, retrain, shadows, reference rows); trials only read them."""
    from expunge.runtime import run_tasks
    from expunge.stages.fleet import run_fleet
    from expunge.stages.original import run_original
    from expunge.stages.pipeline import unlearn_task

    cfg, retrain = s.cfg, MethodSpec(name="retrain")
    runs = []
    for c, e in zip(s.per_seed, s.exps):
        # stored references are only read back (and checked): in this process, since a Ray task would
        # start a worker (a second or more of imports) just to say so; whatever is missing trains on Ray
        keys = ["original", e.unlearned_key(retrain), *(audit_shadow_keys(e) if c.audit.shadows else [])]
        on_ray = use_ray and (rebuild or not all(e.store.exists("models", k) for k in keys))
        run_original(c, rebuild, on_ray)
        run_tasks(unlearn_task, [{"cfg": c.model_dump(), "spec": retrain.model_dump(), "rebuild": rebuild}],
                  desc=f"retrain (reference{f', seed {c.seed}' if cfg.seeds else ''})", use_ray=on_ray)
        if c.audit.shadows:
            run_fleet(audit_shadow_config(c), rebuild, on_ray)
        reference, original = reference_rows(e, s.metrics)
        runs.append({"experiment": c.model_dump(mode="json"), "reference": reference, "original": original})
        log(f"sweep {s.sweep.name}: reference retrain{f' (seed {c.seed})' if cfg.seeds else ''} " + ", ".join(
            f"{k} {reference[k]:.2f}" for k in ("UA", "RA", "TA", "MIA_efficacy") if k in reference))
    return runs


def _sweep_state(s: _Setup, runs: list[dict[str, Any]], reference: dict[str, float]) -> dict[str, Any]:
    """The sweep's state: what its Tune directory was made with, checked before it is resumed."""
    cfg = s.cfg
    return {"sweep": s.sweep.model_dump(mode="json", exclude={"max_concurrent"}), "metrics": s.metrics,
            "split_hash": [e.plan.hash for e in s.exps] if cfg.seeds else s.exps[0].plan.hash,
            "reference": ([{k: round(v, 9) for k, v in r["reference"].items() if k != "RTE_s"} for r in runs]
                          if cfg.seeds else {k: round(v, 9) for k, v in reference.items() if k != "RTE_s"}),
            # where the run directory lies is not what it holds: a moved or copied run resumes
            "experiment": short_hash(cfg.model_dump(mode="json", exclude={"sweep", "unlearn", "fleet", "scaling",
                                                                         "storage"}))}


def _run_method(s: _Setup, method: SweepMethod, runs: list[dict[str, Any]], tune_root: str,
                rebuild: bool) -> list[dict[str, Any]]:
    """Run (or resume) one method's Tuner and collect its rows; an unfinished run is SweepInterrupted."""
    from expunge.runtime.tune import trainable as tune_trainable
    from expunge.sweep.progress import ENDED, SweepProgress
    from expunge.sweep.trial import run_trial

    cfg, sweep = s.cfg, s.sweep
    sweep_dict = {"objective": sweep.objective, "mode": sweep.mode, "constraints": sweep.constraints}
    space = s.spaces[method.name]
    trainable = tune_trainable(run_trial, sweep.cpus_per_trial, sweep.gpus_per_trial, runs=runs,
                               method=method.name, fixed=dict(method.params), metrics=s.metrics, sweep=sweep_dict)
    progress = SweepProgress(method.name, expected_trials(space, sweep))
    path = join_uri(tune_root, slug(method.name))
    ENDED.pop(method.name, None)
    try:
        grid = _tuner(trainable, space, sweep, method, path, tune_root, cfg.seed, progress,
                      max_epochs(method, space, cfg.train.epochs), rebuild).fit()
    finally:
        if "://" not in path:
            seal(path)  # the state a later run may restore from, as this run left it
    if len(grid) < expected_trials(space, sweep) or any(not r.metrics and r.error is None for r in grid):
        # Tune stops gracefully on SIGINT and saves its state; the same command resumes it
        # as the last progress line said (a trial interrupted while running has metrics too)
        finished = ENDED.get(method.name, sum(1 for r in grid if (r.metrics or {}).get("final")
                                              or r.error is not None))
        raise SweepInterrupted(f"sweep {sweep.name} interrupted during {method.name} ({finished} of "
                               f"{expected_trials(space, sweep)} trials finished); rerun the same command "
                               "to resume it")
    return _trial_rows(method.name, grid, space)


def _results_table(rows: list[dict[str, Any]], sweep: SweepConfig) -> tuple[pd.DataFrame, pd.Series]:
    """All methods' trials in one table with its Pareto column, and which rows are feasible completed."""
    table = pd.DataFrame(rows)
    ok = (table["status"] == "completed") & table.get("feasible", False).fillna(False).astype(bool)
    front = pd.Series(False, index=table.index)
    if sweep.pareto and ok.any():
        front[ok] = pareto_front(table[ok], sweep.pareto)
    table["pareto"] = front
    return table, ok


def _best_configs(s: _Setup, table: pd.DataFrame, ok: pd.Series,
                  fixed: dict[str, dict[str, Any]]) -> tuple[dict[str, str], dict[str, Any]]:
    """The best feasible trial by the objective and by each Pareto column: its YAML file and summary."""
    sweep = s.sweep
    files: dict[str, str] = {}
    bests: dict[str, Any] = {}
    targets = {"objective": sweep.mode, **sweep.pareto}
    for what, mode in targets.items():
        cand = table[ok & table[what].notna()] if what in table else table.iloc[0:0]
        if cand.empty:
            continue
        row = cand.loc[cand[what].idxmin() if mode == "min" else cand[what].idxmax()]
        name = f"best_{slug(what)}.yaml"
        files[name] = best_yaml(s.cfg, s.user_storage, row, fixed[row["method"]], what, s.metrics)
        bests[what] = {"file": name, "method": row["method"], "trial_id": row["trial_id"], "value": float(row[what])}
    return files, bests


def _result_files(s: _Setup, table: pd.DataFrame, ok: pd.Series, runs: list[dict[str, Any]],
                  reference: dict[str, float],
                  original: dict[str, float]) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """The sweep's files (results, best configs, leaderboard, tuned methods, Pareto front, figures, summary)."""
    from expunge.sweep.plots import sweep_figures

    cfg, sweep = s.cfg, s.sweep
    files: dict[str, Any] = {"results.parquet": table, "results.csv": table}
    fixed = {m.name: dict(m.params) for m in sweep.methods}
    best_files, bests = _best_configs(s, table, ok, fixed)
    files.update(best_files)
    leaderboard = _leaderboard(table, ok, sweep.mode)
    files["leaderboard.csv"] = leaderboard
    files["tuned_methods.yaml"] = tuned_methods_yaml(cfg, table, ok, fixed)
    files["pareto.csv"] = table[table["pareto"]]
    files.update(sweep_figures(table, s.spaces, sweep))
    files["summary.json"] = {"objective": sweep.objective, "mode": sweep.mode, "constraints": sweep.constraints,
                             "pareto": sweep.pareto, "seeds": cfg.seeds or [cfg.seed],
                             "reference_retrain": reference, "original": original,
                             "reference_retrain_per_seed": {str(c.seed): r["reference"] for c, r in zip(s.per_seed, runs)},
                             "best": bests, "trials": int(len(table)),
                             "status": table["status"].value_counts().to_dict()}
    from expunge.report.markdown import markdown_table

    files["leaderboard.md"] = (f"# sweep `{sweep.name}`: best trial per method by {sweep.objective} ({sweep.mode})\n\n"
                               + markdown_table(leaderboard) + "\n")
    return files, bests, leaderboard


def _publish(s: _Setup, files: dict[str, Any], state: dict[str, Any], table: pd.DataFrame,
             leaderboard: pd.DataFrame, bests: dict[str, Any], rebuild: bool) -> str:
    """Store the sweep's files as one artifact, print the leaderboard and log where everything lies."""
    cfg, sweep = s.cfg, s.sweep
    art = s.results_store.put("sweeps", sweep.name, files,
                              config={"sweep": sweep.model_dump(mode="json"), "metrics": s.metrics,
                                      "seeds": cfg.seeds, "split_hashes": state["split_hash"]},
                              split_hash=None if cfg.seeds else s.exps[0].plan.hash,
                              seed=None if cfg.seeds else cfg.seed, replace=True, repair=rebuild)
    print(leaderboard.to_string(index=False), flush=True)
    counts = table["status"].value_counts().to_dict()
    log(f"sweep {sweep.name}: {len(table)} trials ({', '.join(f'{v} {k}' for k, v in counts.items())})")
    for what, b in bests.items():
        log(f"best by {what}: {b['method']} ({b['value']:.4g}) -> {art.path}/{b['file']}")
    log(f"tuned methods (unlearn.methods at each method's best trial): {art.path}/tuned_methods.yaml")
    log(f"sweep results: {art.path}")
    return art.path


def run_sweep(cfg: ExperimentConfig, rebuild: bool = False, use_ray: bool = True) -> dict[str, Any]:
    """Run (or resume) the config's ``sweep:`` block; returns the results table and artifact path."""
    s = _checked(cfg, rebuild, use_ray)
    _announce(s)
    runs = _references(s, rebuild, use_ray)
    reference = mean_row([r["reference"] for r in runs])
    original = mean_row([r["original"] for r in runs])
    columns = {*trial_row({k: 0.0 for k in reference if k != "RTE_s"}, reference, original), "RTE_s"}
    check_columns(columns, s.sweep.objective, s.constraints, s.sweep.pareto)

    tune_root = join_uri(s.cfg.run_dir, "tune", s.sweep.name)
    state = _sweep_state(s, runs, reference)
    _state_check(tune_root, state, rebuild)
    rows: list[dict[str, Any]] = []
    for method in s.sweep.methods:
        rows += _run_method(s, method, runs, tune_root, rebuild)

    table, ok = _results_table(rows, s.sweep)
    files, bests, leaderboard = _result_files(s, table, ok, runs, reference, original)
    path = _publish(s, files, state, table, leaderboard, bests, rebuild)
    return {"table": table, "leaderboard": leaderboard, "best": bests, "path": path,
            "reference": reference, "references": {c.seed: r["reference"] for c, r in zip(s.per_seed, runs)},
            "tune_path": tune_root}


def _best_rows(table: pd.DataFrame, ok: pd.Series, mode: str) -> pd.DataFrame:
    """The best feasible completed trial of each method (first-listed order of the methods)."""
    done = table[ok]
    if done.empty:
        return done
    idx = done.groupby("method", sort=False)["objective"]
    return done.loc[(idx.idxmin() if mode == "min" else idx.idxmax()).values]


def tuned_methods_yaml(cfg: ExperimentConfig, table: pd.DataFrame, ok: pd.Series, fixed: dict[str, dict]) -> str:
    """``unlearn.methods`` with every method at its best feasible trial, labelled ``<name> (tuned)``:
    the tuned config a leaderboard puts next to the defaults (``expunge demo`` reads the committed
    copy). Methods without a feasible completed trial are left out and named in the header."""
    sweep = cfg.sweep
    best = _best_rows(table, ok, sweep.mode)
    methods = []
    for _, row in best.iterrows():
        params = {**fixed[row["method"]], **{k.removeprefix("param."): _typed(row["method"], k.removeprefix("param."), v)
                                            for k, v in row.items() if k.startswith("param.") and not _missing(v)}}
        methods.append({"name": row["method"], "label": f"{row['method']} (tuned)", "params": params})
    missing = [m.name for m in sweep.methods if m.name not in set(best["method"])]
    trials = table.groupby("method").size().to_dict()
    head = [f"# tuned by sweep {sweep.name}: objective {sweep.objective} ({sweep.mode}), constraints "
            f"{sweep.constraints or 'none'}, {sweep.search} search, {sweep.scheduler} scheduler, "
            f"{'seeds ' + ', '.join(map(str, cfg.seeds)) + ' (mean)' if cfg.seeds else f'seed {cfg.seed}'}, "
            f"num_samples {sweep.num_samples}",
            "# trials per method: " + ", ".join(f"{k} {v}" for k, v in trials.items())]
    if missing:
        head.append(f"# no feasible completed trial (left out): {', '.join(missing)}")
    return "\n".join(head) + "\n" + yaml.safe_dump({"unlearn": {"methods": methods}}, sort_keys=False)


def _leaderboard(table: pd.DataFrame, ok: pd.Series, mode: str) -> pd.DataFrame:
    """The best feasible completed trial of each method, ordered by the objective."""
    done = table[ok]
    if done.empty:
        return pd.DataFrame(columns=list(SHOWN))
    idx = done.groupby("method")["objective"].idxmin() if mode == "min" else done.groupby("method")["objective"].idxmax()
    best = done.loc[idx.values]
    counts = table.groupby("method")["status"].value_counts().unstack(fill_value=0)
    cols = [c for c in SHOWN if c in best.columns]
    params = best.apply(lambda r: ", ".join(f"{k.removeprefix('param.')}={_fmt(r[k])}" for k in best.columns
                                            if k.startswith("param.") and not _missing(r[k])), axis=1)
    out = best[cols].assign(trials=best["method"].map(counts.sum(axis=1)),
                            stopped=best["method"].map(counts.get("stopped", pd.Series(dtype=int))).fillna(0).astype(int),
                            params=params.values)
    return out.sort_values("objective", ascending=(mode == "min")).round(3).reset_index(drop=True)


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
