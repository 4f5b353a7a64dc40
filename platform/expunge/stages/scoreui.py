"""The ScoreUI stage (IAM paper, Wang et al., USENIX Security 2025, Section 8 protocol of
``new_records_internal.py``): do the attacks' per-sample scores track a *degree* of membership?

1. The init model is one more OUT-only shadow of the audit's shadow fleet: member ``K`` of
   ``audit.shadows = K`` (the same recipe as the scoring shadows, trained on a fraction of the shadow
   pool, so it never saw the target samples), but not one of the K models the attacks score against
   (the paper starts from a shadow too; its runs where the init is also the scoring shadow are a quirk
   this avoids).
2. A copy of it is trained on the original's training set with the config's recipe (``train.*``)
   for ``train.epochs`` epochs; the weights after every ``epochs / breaks`` epochs are checkpoint b
   (b = 0 ... breaks, b = 0 being the init), and every target sample's ground-truth membership at
   checkpoint b is ``b / breaks`` (:func:`expunge.audit.scoreui_checkpoints.partial_membership_checkpoints`).
   Checkpoints are stored as ``models/scoreui-<tag>/b<NNN>`` with their cached outputs.
3. Each checkpoint plays the audited (unlearned) model, the stored original plays θ_o and the audit's
   shadows are the references, exactly as in the audit (:func:`expunge.audit.stage.metric_values`
   with :func:`expunge.audit.stage.reference_inputs`), for every attack of ``audit.metrics`` that
   yields per-sample membership scores (:data:`SCORED`). The scored samples are the forget set (a
   subset of the training set, so all of them have membership b / breaks).
4. ScoreUI per attack (:func:`expunge.metrics.scoreui.scoreui`): scores min-max normalised over all
   samples x checkpoints, flattened, Spearman (the paper's headline), Pearson and MSE against b / breaks;
   95% intervals from a bootstrap over samples (each resample keeps a sample's whole trajectory;
   percentile interval of ``N_BOOT`` resamples).

Stored as ``audit/scoreui-<tag>``: ``table.parquet`` / ``table.csv`` (one row per attack),
``summary.json``, ``fractions.npy`` and ``scores__<attack>.npy`` ([breaks + 1, samples], raw scores).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from expunge import seeds
from expunge.config import ExperimentConfig
from expunge.errors import ArtifactError, ConfigError
from expunge.experiment import WEIGHTS, Experiment, log, short_hash
from expunge.progress import progress
from expunge.versions import code_version

#: the paper's number of breaks (21 checkpoints b = 0 ... 20)
PAPER_BREAKS = 20
#: bootstrap resamples for the Spearman / Pearson intervals
N_BOOT = 200
#: seed stream of the checkpoint series' batch order (not the original's, which trains on the same set)
SERIES_SALT = 5_151
#: attacks with per-sample membership scores on the forget set: metric -> ((row name, per-sample key), ...)
SCORED: dict[str, tuple[tuple[str, str], ...]] = {
    "iam": (("IAM-On", "iam_forget"), ("IAM-Off", "iam_offline_forget")),
    "lira": (("LiRA-On", "lira_forget"), ("LiRA-Off", "lira_offline_forget")),
    "rmia": (("RMIA-On", "rmia_forget"), ("RMIA-Off", "rmia_offline_forget")),
    "svc_mia": (("SVC-MIA", "member_pred_confidence"),),  # 0/1 member predictions (ties in the ranking)
}
TABLE_COLUMNS = ("attack", "metric", "spearman", "spearman_low", "spearman_high", "pearson", "pearson_low",
                 "pearson_high", "mse", "samples", "checkpoints")


def default_breaks(epochs: int) -> int:
    """The paper's 20 breaks when they divide ``train.epochs``, else the largest divisor of it below 20."""
    return max(d for d in range(1, min(PAPER_BREAKS, epochs) + 1) if epochs % d == 0)


def scored_attacks(cfg: ExperimentConfig) -> list[str]:
    """The metrics of ``audit.metrics`` ScoreUI can score, in the config's order."""
    return [m for m in cfg.audit.metrics if m in SCORED]


def check_request(cfg: ExperimentConfig, breaks: int | None) -> int:
    """Every problem of the request as one :class:`ConfigError` before anything is read or trained;
    returns the number of breaks."""
    epochs = cfg.train.epochs
    if breaks is None:
        breaks = default_breaks(epochs)
    if breaks < 1:
        raise ConfigError(f"--breaks {breaks}: give a positive number of checkpoints after the init")
    if epochs % breaks:
        raise ConfigError(f"--breaks {breaks} does not divide train.epochs={epochs}: checkpoint b is the model "
                          f"after b * epochs / breaks epochs (use a divisor of {epochs}, or change train.epochs)")
    attacks = scored_attacks(cfg)
    if not attacks:
        raise ConfigError(f"audit.metrics={cfg.audit.metrics} lists no attack with per-sample scores for ScoreUI "
                          f"(any of {', '.join(SCORED)})")
    if cfg.model.weights is not None:
        raise ConfigError("model.weights: ScoreUI trains its own checkpoint series from a shadow model; "
                          "leave model.weights unset")
    if cfg.audit.shadow_data is not None or cfg.audit.shadow_model is not None:
        # the series starts from one more in-distribution shadow of the target's architecture
        raise ConfigError("audit.shadow_data / audit.shadow_model: ScoreUI's checkpoint series starts from an "
                          "in-distribution shadow of the target's architecture; unset them for expunge scoreui")
    return breaks


def _init_experiment(ex: Experiment) -> tuple[Experiment, int]:
    """The experiment of the audit's shadow fleet grown by one member, and that member's index."""
    from expunge.fleet.members import audit_shadow_config

    k = ex.cfg.audit.shadows
    shadow = audit_shadow_config(ex.cfg)
    grown = shadow.model_copy(update={"fleet": shadow.fleet.model_copy(update={"size": k + 1})})
    return Experiment(grown, rebuild=ex.rebuild, verbose=False), k


def series_tag(cfg: ExperimentConfig, breaks: int) -> str:
    """What names a checkpoint series: the breaks, the init member, the model and the recipe."""
    return short_hash({"breaks": breaks, "init_member": cfg.audit.shadows, "shadow_fraction": cfg.audit.shadow_fraction,
                       "model": cfg.model.model_dump(), "train": cfg.train.model_dump()})


def checkpoint_key(tag: str, b: int) -> str:
    return f"scoreui-{tag}/b{b:03d}"


def checkpoint_expect(ex: Experiment, init_hash: str, breaks: int, b: int) -> dict[str, Any]:
    """What checkpoint b's manifest must say: its place in the series and the init it started from."""
    return {"config": {"role": "scoreui-checkpoint", "breaks": breaks, "b": b, "membership": b / breaks,
                       "init": init_hash, "target": "train", "model": ex.cfg.model.model_dump(),
                       "train": ex.cfg.train.model_dump()},
            "split_hash": ex.plan.hash, "seed": ex.cfg.seed, "code_version": code_version("train")}


def check_stored(ex: Experiment, breaks: int) -> None:
    """Refuse a damaged stored checkpoint before any compute (``--rebuild`` replaces it)."""
    if ex.rebuild:
        return
    tag = series_tag(ex.cfg, breaks)
    for b in range(breaks + 1):
        ex.store.check_intact("models", checkpoint_key(tag, b))


def series_task(cfg: dict[str, Any], breaks: int, rebuild: bool) -> dict[str, Any]:
    """Train (or reuse) the init shadow and the checkpoint series; store each checkpoint and its outputs."""
    from expunge.audit.scoreui_checkpoints import partial_membership_checkpoints
    from expunge.fleet.members import member_key, train_member

    ex = Experiment(ExperimentConfig.model_validate(cfg), rebuild=rebuild, verbose=False)
    shadow_ex, k = _init_experiment(ex)
    init = train_member(shadow_ex, k)
    tag = series_tag(ex.cfg, breaks)
    keys = [checkpoint_key(tag, b) for b in range(breaks + 1)]
    expects = [checkpoint_expect(ex, init.manifest["content_hash"], breaks, b) for b in range(breaks + 1)]
    stored = []
    for key, expect in zip(keys, expects):
        try:
            stored.append(ex.store.get("models", key, expect=expect, verify=True))
        except ArtifactError:
            if not rebuild:  # another init or recipe under this name, or damage: refused by name
                raise
            stored.append(None)
    reused = all(a is not None for a in stored)
    seconds = None
    if not reused:
        t0 = time.perf_counter()
        series = partial_membership_checkpoints(ex.load_model(member_key(shadow_ex.cfg.fleet, k)), ex.data,
                                                ex.plan.train, ex.cfg.train, breaks,
                                                seed=seeds.stream(ex.cfg.seed, SERIES_SALT))
        seconds = time.perf_counter() - t0
        for key, expect, (fraction, state) in zip(keys, expects, series):
            ex.store.put("models", key, {WEIGHTS: state}, replace=True, repair=rebuild, method="scoreui-checkpoint",
                         run_time_s=seconds, **expect)
    for key in keys:  # cached outputs of every checkpoint (computed from the stored weights once)
        ex.outputs(key)
    return {"keys": keys, "init": init.key, "reused": reused, "train_s": seconds}


def _bootstrap(scores: np.ndarray, fractions: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    """Percentile 95% intervals of Spearman and Pearson over samples resampled with replacement."""
    from expunge.metrics.scoreui import scoreui

    rng = np.random.default_rng(seed)
    n = scores.shape[1]
    draws = [scoreui(scores[:, rng.integers(0, n, n)], fractions) for _ in range(n_boot)]
    out = {}
    for what in ("spearman", "pearson"):
        vals = np.array([d[what] for d in draws], dtype=float)
        vals = vals[np.isfinite(vals)]
        lo, hi = (np.percentile(vals, [2.5, 97.5]) if len(vals) else (np.nan, np.nan))
        out[f"{what}_low"], out[f"{what}_high"] = float(lo), float(hi)
    return out


def scoreui_table(scores: dict[str, np.ndarray], metric_of: dict[str, str], fractions: np.ndarray,
                  n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """One row per attack: ScoreUI's Spearman, Pearson, MSE (:func:`expunge.metrics.scoreui.scoreui`)
    and bootstrap intervals; ``scores[attack]`` is [checkpoints, samples]."""
    from expunge.metrics.scoreui import scoreui

    rows = []
    for attack, s in scores.items():
        s = np.where(np.isfinite(s), s, np.nan)  # an infinite score would make every normalised value nan
        res = scoreui(s, fractions)
        rows.append({"attack": attack, "metric": metric_of[attack], **res,
                     **(_bootstrap(s, fractions, n_boot, seed) if n_boot else {}),
                     "samples": s.shape[1], "checkpoints": s.shape[0]})
    frame = pd.DataFrame(rows)
    return frame[[c for c in TABLE_COLUMNS if c in frame]]


def run_scoreui(cfg: ExperimentConfig, rebuild: bool = False, use_ray: bool = True,
                breaks: int | None = None) -> dict[str, Any]:
    """The whole stage (module docstring); returns the table, the artifact path and the checkpoints."""
    from expunge.audit.stage import metric_values, reference_inputs
    from expunge.fleet.members import audit_shadow_config, check_fleets
    from expunge.runtime import run_tasks
    from expunge.stages.fleet import run_fleet
    from expunge.stages.original import run_original

    breaks = check_request(cfg, breaks)
    attacks = scored_attacks(cfg)
    ex = Experiment(cfg, rebuild=rebuild)
    ex.preflight([])  # split, device and stored-artifact checks before any compute
    check_fleets(ex)
    check_stored(ex, breaks)
    init_ex, k = _init_experiment(ex)
    if not rebuild:  # the init shadow too (the scoring shadows were checked with the fleets)
        from expunge.fleet.members import member_key

        ex.store.check_intact("models", member_key(init_ex.cfg.fleet, k))
    log(f"scoreui: {breaks + 1} checkpoints (membership b/{breaks}) of {cfg.model.name} trained from an OUT shadow "
        f"on the {len(ex.plan.train)} training samples, {cfg.train.epochs} epochs; attacks: {', '.join(attacks)}")
    run_original(cfg, rebuild, use_ray)
    if cfg.audit.shadows:  # the scoring shadows (SVC-MIA alone needs none)
        run_fleet(audit_shadow_config(cfg), rebuild, use_ray)
    (series,) = run_tasks(series_task, [{"cfg": cfg.model_dump(), "breaks": breaks, "rebuild": rebuild}],
                          num_cpus=cfg.fleet.cpus_per_model, num_gpus=cfg.fleet.gpus_per_model,
                          desc="scoreui checkpoint series", unit="series run", use_ray=use_ray)
    log(f"scoreui: {'reused' if series['reused'] else 'trained'} the checkpoint series "
        f"models/{series['keys'][0].rsplit('/', 1)[0]} (init models/{series['init']})")
    inputs_for = reference_inputs(ex)
    fractions = np.arange(breaks + 1) / breaks
    per_attack: dict[str, list[np.ndarray]] = {}
    metric_of: dict[str, str] = {}
    with progress(breaks + 1, "scoreui: scoring checkpoints", unit="checkpoint") as bar:
        for b, key in enumerate(series["keys"]):
            _, per = metric_values(inputs_for(ex.outputs(key)), attacks, cfg.audit.params)
            for metric in attacks:
                for attack, score in SCORED[metric]:
                    name = f"{metric}__{score}"
                    if name in per:
                        per_attack.setdefault(attack, []).append(np.asarray(per[name], dtype=np.float64))
                        metric_of[attack] = metric
            bar.advance(f"b={b}/{breaks}")
    scores = {a: np.stack(v) for a, v in per_attack.items()}
    table = scoreui_table(scores, metric_of, fractions, seed=cfg.seed)
    tag = series_tag(cfg, breaks)
    summary = {"breaks": breaks, "epochs": cfg.train.epochs, "checkpoints": series["keys"], "init": series["init"],
               "scored_set": "forget", "samples": int(len(ex.plan.forget)), "attacks": list(scores),
               "bootstrap": N_BOOT, "train_s": series["train_s"], "rows": table.to_dict(orient="records")}
    files: dict[str, Any] = {"table.parquet": table, "table.csv": table, "summary.json": summary,
                             "fractions.npy": fractions,
                             **{f"scores__{a}.npy": s for a, s in scores.items()}}
    inputs = {k: ex.store.get("models", k).manifest["manifest_hash"]
              for k in [*series["keys"], "original", *_shadow_keys(ex)]}
    art = ex.store.put("audit", f"scoreui-{tag}", files, replace=True, repair=rebuild,
                       config={"audit": cfg.audit.model_dump(), "breaks": breaks, "inputs": inputs},
                       split_hash=ex.plan.hash, seed=cfg.seed, code_version=code_version("audit"))
    shown = table[["attack", "spearman", "spearman_low", "spearman_high", "pearson", "mse"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"), flush=True)
    log(f"scoreui table: {art.path}/table.csv")
    log(f"report: expunge report {ex.store.uri}")
    return {"table": table, "path": art.path, "checkpoints": series["keys"], "breaks": breaks}


def _shadow_keys(ex: Experiment) -> list[str]:
    from expunge.fleet.members import audit_shadow_keys

    return audit_shadow_keys(ex)
