"""The audit of models trained outside expunge (``expunge audit-model``).

A user brings an original trained elsewhere, one or more unlearned models' weights and the forget
set (dataset positions). The original is imported as ``model.weights`` imports it (the run's
``models/original``), each unlearned model as ``models/imported/<label>-<hash>``, a retrained model
(``--retrained``) as ``models/imported/retrain``; every manifest records the source file's sha256, so
a changed file under the same name is refused as stale unless ``--rebuild``. ``--train-retrain``
retrains one on the retain set instead, exactly as the ``retrain`` method of a run does. The
shadows are the audit's trained OUT-only fleet (``audit.shadows``), or imported from a folder
(``--shadows DIR``: ``member_0000.safetensors`` ... and ``membership.npy``, K x N booleans over
dataset positions, True where member k trained). Then the same audit, leaderboard and report as a
run (:func:`~expunge.audit.stage.audit_models`, :func:`~expunge.stages.pipeline.write_reports`).

Every input is checked before anything is stored or computed (:func:`check_inputs`), each problem
one :class:`~expunge.errors.ConfigError` line: missing files; weights whose keys or shapes (the
head's class count) do not fit the configured model; forget or train indices that are out of range,
duplicated or (forget) outside the train set; a membership matrix that is not a K x N boolean array
or has an empty row; shadow weights that do not fit.

Imported shadows are the OUT references of every membership metric, so no shadow may have trained
on a position the audit scores with them: the train set (retain and forget: LiRA / RMIA / IAM score
both, online and offline), ``test`` and ``forget_heldout`` (the non-members of the forget-vs-test and
forget-vs-held-out AUCs) and ``population`` (RMIA's reference samples z). A shadow trained on any of
them would be an IN reference there, and the scores would read membership as generalisation. With
``iam`` in ``audit.metrics`` each shadow must also have trained on at least one position of the
split's shadow pool: IAM-Off's anchor is the shadows' mean confidence on their own training samples,
read from their shadow-pool outputs. Calibration positions (read from the audited model only) and
positions in no set are allowed.

Shadows trained on another dataset (IAM Table 3's OOD shadows) are imported with
``audit.shadow_data`` naming that dataset: ``membership.npy`` then indexes its positions (K x N of
the shadow dataset), every target position is OUT for them, and IAM-Off's anchor reads their
outputs on their own training samples of that dataset. Without ``audit.shadow_data`` a member that
trained on no target position (a shadow of another dataset) is refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from expunge.config import ExperimentConfig, MethodSpec
from expunge.data.splits import SplitPlan
from expunge.errors import ArtifactError, ConfigError
from expunge.experiment import Experiment, log, short_hash
from expunge.models.checkpoint import SAFE_SUFFIXES, TORCH_SUFFIXES, file_sha256

#: row labels of the original and the retrained model; an unlearned model takes another
RESERVED_LABELS = ("original", "retrain")
RETRAINED_KEY = "imported/retrain"
MEMBERSHIP = "membership.npy"
MEMBER_FILE = re.compile(r"member_(\d{4,})(" + "|".join(re.escape(s) for s in (*SAFE_SUFFIXES, *TORCH_SUFFIXES)) + ")")
#: sets the audit scores with the shadows as OUT references: no shadow may have trained on them
SHADOW_OUT_SETS = ("retain", "forget", "test", "forget_heldout", "population")
SHADOW_OUT_WHY = {
    "retain": "retained training samples (BinUI scores them against the shadows)",
    "forget": "forget samples (every attack scores them against the shadows)",
    "test": "test samples (the non-members of the forget-vs-test AUCs)",
    "forget_heldout": "held-out samples (the non-members of the forget-vs-held-out AUCs)",
    "population": "population samples (RMIA's reference samples z)",
}


@dataclass(frozen=True)
class ModelFiles:
    """What ``expunge audit-model`` imports: files, as given on the command line."""

    original: str
    forget_indices: str
    #: row label -> weights file of each unlearned model, in the order given
    unlearned: dict[str, str] = field(default_factory=dict)
    train_indices: str | None = None
    retrained: str | None = None
    train_retrain: bool = False
    #: a folder of member_<k>.safetensors files and membership.npy
    shadows: str | None = None


def parse_unlearned(values: list[str]) -> dict[str, str]:
    """``NAME=FILE`` options as ``{NAME: FILE}``: each name given once, none of :data:`RESERVED_LABELS`."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        name = name.strip()
        if not sep or not name or not path:
            raise ConfigError(f"--unlearned {value!r}: give NAME=FILE (NAME is the row's label on the leaderboard)")
        if not re.fullmatch(r"[^\x00-\x1f\x7f]{1,60}", name):
            raise ConfigError(f"--unlearned {name!r}: a label is 1-60 printable characters")
        if name in RESERVED_LABELS:
            raise ConfigError(f"--unlearned {name}=...: {name!r} labels the {name} row; give the unlearned model "
                              "another name" + (" (a retrained model: --retrained FILE)" if name == "retrain" else ""))
        if name in out:
            raise ConfigError(f"--unlearned {name}: given twice")
        out[name] = path
    return out


def imported_key(label: str) -> str:
    """The store key of an imported unlearned model: its label made path-safe, plus a hash of the label
    (two labels that differ only in characters the key cannot hold never share a key)."""
    slug = re.sub(r"[^A-Za-z0-9_.+-]+", "_", label).strip("._") or "model"
    return f"imported/{slug[:40]}-{short_hash(label, 6)}"


def shadow_key(i: int) -> str:
    return f"imported-shadows/{i:04d}"


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve())


def member_files(folder: str) -> list[Path]:
    """``member_<k>`` weight files of ``folder`` in member order; k must run 0..K-1 without a gap."""
    d = Path(folder).expanduser()
    if not d.is_dir():
        raise ConfigError(f"--shadows: no such folder {d}")
    found: dict[int, list[Path]] = {}
    for p in d.iterdir():
        m = MEMBER_FILE.fullmatch(p.name)
        if m:
            found.setdefault(int(m.group(1)), []).append(p)
    if not found:
        raise ConfigError(f"--shadows: {d} holds no member_0000.safetensors (one weights file per shadow model, "
                          f"member_0000, member_0001, ..., beside {MEMBERSHIP})")
    twice = [k for k, ps in found.items() if len(ps) > 1]
    if twice:
        raise ConfigError(f"--shadows: {d} holds member {twice[0]} twice ({', '.join(sorted(p.name for p in found[twice[0]]))})")
    gap = next((k for k in range(len(found)) if k not in found), None)
    if gap is not None:
        raise ConfigError(f"--shadows: {d} has {len(found)} member files but no member_{gap:04d}; number them "
                          "0, 1, ... without a gap (row k of membership.npy is member k)")
    return [found[k][0] for k in range(len(found))]


def audit_model_config(base: ExperimentConfig, files: ModelFiles) -> ExperimentConfig:
    """``base`` with the imported original (``model.weights``), the forget set (``data.forget:
    indices:FILE``), the train set (``data.train_indices``), no unlearning methods (none runs), and
    ``audit.shadows`` = the number of imported shadows; validated and resolved like any config."""
    from expunge.resolve import validate

    if base.seeds is not None:
        raise ConfigError(f"seeds: `expunge audit-model` audits one seed's split (seed={base.seed})")
    if base.data.incremental is not None:
        raise ConfigError("data.incremental: `expunge audit-model` imports a finished original; incremental "
                          "training trains one (leave data.incremental unset)")
    data = base.model_dump()
    data["model"]["weights"] = _absolute(files.original)
    data["data"]["forget"] = f"indices:{_absolute(files.forget_indices)}"
    if files.train_indices is not None:
        data["data"]["train_indices"] = _absolute(files.train_indices)
    data["unlearn"]["methods"] = []
    if files.shadows is not None:
        data["audit"]["shadows"] = len(member_files(files.shadows))
    return validate(ExperimentConfig, data, "audit-model")


@dataclass
class ImportedShadows:
    """Shadow models from a folder: their files and membership (K x N booleans over dataset positions)."""

    files: list[Path]
    membership: np.ndarray
    membership_sha256: str

    @property
    def keys(self) -> list[str]:
        return [shadow_key(i) for i in range(len(self.files))]

    def members(self, i: int) -> np.ndarray:
        return np.flatnonzero(self.membership[i]).astype(np.int64)

    #: ``audit.shadow_data``'s identity (dataset, options, content fingerprint) when the shadows trained on it
    shadow_data: dict[str, Any] | None = None

    def config(self, i: int) -> dict[str, Any]:
        config = {"role": "imported-shadow", "member": i, "membership_sha256": self.membership_sha256}
        if self.shadow_data is not None:  # only then: in-distribution imports keep their identity
            config["shadow_data"] = self.shadow_data
        return config


def read_shadows(ex: Experiment, plan: SplitPlan, folder: str) -> ImportedShadows:
    """The shadows of ``folder`` checked against the data and the split (module docstring):
    ``membership.npy`` is a K x N boolean matrix with no empty row, their weights fit the model, and no
    member trained on a set the audit scores it as OUT on."""
    files = member_files(folder)
    path = Path(folder).expanduser() / MEMBERSHIP
    if not path.is_file():
        raise ConfigError(f"--shadows: no {MEMBERSHIP} in {Path(folder).expanduser()} (K x N booleans: row k is "
                          "True at the dataset positions member k trained on)")
    try:
        matrix = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ConfigError(f"--shadows: {path} is not a readable NumPy array ({type(exc).__name__}; pickled "
                          "objects are refused)") from None
    sd = ex.cfg.audit.shadow_data
    ood = sd is not None
    k, n = len(files), len(ex.shadow_dataset) if ood else len(ex.dataset)
    of = f"of audit.shadow_data {sd.dataset}" if ood else f"of the target {ex.cfg.data.dataset}"
    if matrix.dtype != np.bool_:
        raise ConfigError(f"--shadows: {path} has dtype {matrix.dtype}; give booleans (True where member k "
                          "trained on dataset position n)")
    if matrix.shape != (k, n):
        raise ConfigError(f"--shadows: {path} has shape {list(matrix.shape)}; it must be [{k}, {n}]: one row per "
                          f"member file ({k}), one column per dataset position {of} ({n})")
    empty = np.flatnonzero(~matrix.any(axis=1))
    if len(empty) and not ood:
        raise ConfigError(f"--shadows: member {int(empty[0])} trained on no position of the target dataset (an empty "
                          f"row of {MEMBERSHIP}); a shadow of another dataset needs audit.shadow_data naming it "
                          f"({MEMBERSHIP} then indexes that dataset's positions)")
    if len(empty):
        raise ConfigError(f"--shadows: member {int(empty[0])} trained on no position {of} (an empty row of "
                          f"{MEMBERSHIP})")
    for i, f in enumerate(files):
        ex.read_model_file(str(f), f"--shadows member {i}")
    if ood:  # OUT for every target position by construction; the anchor reads their own training samples
        identity = {**sd.model_dump(exclude={"root"}), "name": ex.shadow_dataset.name,
                    "fingerprint": ex.shadow_dataset.fingerprint}
        return ImportedShadows(files, matrix, file_sha256(path), identity)
    for name in SHADOW_OUT_SETS:
        idx = plan.indices[name]
        hit = matrix[:, idx]
        if hit.any():
            i = int(np.flatnonzero(hit.any(axis=1))[0])
            pos = idx[hit[i]]
            raise ConfigError(f"--shadows: member {i} trained on {len(pos)} of the split's {name} positions (first: "
                              f"{int(pos[0])}); the audit scores {SHADOW_OUT_WHY[name]} with the shadows as OUT "
                              "references, so no shadow may have trained on them")
    if "iam" in ex.cfg.audit.metrics:
        none = np.flatnonzero(~matrix[:, plan.shadow_pool].any(axis=1))
        if len(none):
            raise ConfigError(f"--shadows: member {int(none[0])} trained on no position of the split's shadow pool "
                              f"({len(plan.shadow_pool)} positions); IAM-Off's anchor is each shadow's confidence on "
                              "its own training samples in the shadow pool (or leave iam out of audit.metrics)")
    return ImportedShadows(files, matrix, file_sha256(path))


def check_inputs(ex: Experiment, files: ModelFiles) -> tuple[SplitPlan, ImportedShadows | None]:
    """Every input checked in memory, before anything is stored or computed; returns the split plan and
    the imported shadows (None when the audit trains its own)."""
    from expunge.train.engine import resolve_device

    resolve_device(ex.cfg.device)
    ex.check_shadow_source()  # audit.shadow_data's class count and image shape against the target
    ex.read_model_file(ex.cfg.model.weights, "--original")
    for name, path in files.unlearned.items():
        ex.read_model_file(path, f"--unlearned {name}")
    if files.retrained is not None:
        ex.read_model_file(files.retrained, "--retrained")
    plan = ex.create_plan()
    ex.check_conformal_sizes(plan)
    shadows = read_shadows(ex, plan, files.shadows) if files.shadows is not None else None
    return plan, shadows


def _unlearned_config(label: str, original: str) -> dict[str, Any]:
    return {"role": "imported-unlearned", "label": label, "original": original}


def _retrained_config(original: str) -> dict[str, Any]:
    return {"role": "imported-retrain", "original": original}


def _check_stored(ex: Experiment, files: ModelFiles, shadows: ImportedShadows | None) -> None:
    """Stored imports that no longer match their files (or are damaged): refused before compute."""
    if ex.rebuild:
        return
    original = ex.store.get("models", "original")
    wanted: list[tuple[str, str, str, dict[str, Any]]] = []  # (option, file, key, config)
    if original is not None:  # imported unlearned models belong to one original
        h = original.manifest["content_hash"]
        wanted += [(f"--unlearned {n}", p, imported_key(n), _unlearned_config(n, h)) for n, p in files.unlearned.items()]
        if files.retrained is not None:
            wanted.append(("--retrained", files.retrained, RETRAINED_KEY, _retrained_config(h)))
    if shadows is not None:
        wanted += [(f"--shadows member {i}", str(shadows.files[i]), k, shadows.config(i))
                   for i, k in enumerate(shadows.keys)]
    for flag, path, key, config in wanted:
        try:
            ex.store.get("models", key, expect=ex.imported_expect({**config, "imported_sha256": file_sha256(path)}),
                         verify=True)
        except ArtifactError as exc:
            raise type(exc)(f"{flag}: {exc}") from None


def import_task(cfg: dict[str, Any], rebuild: bool, key: str, path: str, config: dict[str, Any], label: str,
                flag: str, members: np.ndarray | None = None, own_members: bool = False) -> str:
    """Ray task body: import (or reuse) one model file as ``models/<key>`` with its outputs."""
    ex = Experiment(ExperimentConfig.model_validate(cfg), rebuild=rebuild)
    return ex.imported(key, path, config, label, flag, members, own_members).key


@dataclass
class Checked:
    """A config and its files after :func:`check_inputs`: ready to run, nothing stored yet."""

    cfg: ExperimentConfig
    files: ModelFiles
    ex: Experiment
    plan: SplitPlan
    shadows: ImportedShadows | None

    def describe(self) -> list[str]:
        """What the command imports, trains and audits (``--dry-run`` prints it)."""
        cfg, files, plan, shadows = self.cfg, self.files, self.plan, self.shadows
        lines = [f"run directory: {cfg.run_dir}",
                 f"split: {len(plan.train)} train ({len(plan.forget)} forget, {len(plan.retain)} retain), "
                 f"{len(plan.test)} test, {len(plan.shadow_pool)} shadow pool positions of {cfg.data.dataset}",
                 f"import original: {cfg.model.weights} ({cfg.model.name})"]
        lines += [f"import unlearned {n!r}: {_absolute(p)}" for n, p in files.unlearned.items()]
        if files.retrained is not None:
            lines.append(f"import retrain: {_absolute(files.retrained)}")
        elif files.train_retrain:
            lines.append(f"train retrain: on the retain set, {cfg.train.epochs} epochs of the config's training recipe")
        if shadows is not None:
            lines.append(f"import {len(shadows.files)} shadow models from {Path(files.shadows).expanduser()}")
        elif cfg.audit.shadows:
            lines.append(f"train {cfg.audit.shadows} OUT shadow models on the shadow pool (reused when stored)")
        lines.append(f"audit: {', '.join(cfg.audit.metrics)}")
        return lines


def prepare(cfg: ExperimentConfig, files: ModelFiles, rebuild: bool = False) -> Checked:
    """Every input of ``cfg`` (from :func:`audit_model_config`) and ``files`` checked; nothing stored."""
    ex = Experiment(cfg, rebuild=rebuild)
    plan, shadows = check_inputs(ex, files)
    return Checked(cfg, files, ex, plan, shadows)


def execute(checked: Checked, use_ray: bool = True) -> dict[str, Any]:
    """Import the models, train what is asked (retrain, shadows), audit and report."""
    from expunge.audit.stage import audit_models
    from expunge.fleet.members import audit_shadow_config, check_fleets
    from expunge.report.leaderboard import print_shown
    from expunge.report.timings import stage_timer
    from expunge.runtime import run_tasks
    from expunge.stages.fleet import run_fleet
    from expunge.stages.original import run_original
    from expunge.stages.pipeline import unlearn_task, write_reports

    cfg, files, ex, plan, shadows = checked.cfg, checked.files, checked.ex, checked.plan, checked.shadows
    rebuild = ex.rebuild
    retrain = [MethodSpec(name="retrain")] if files.train_retrain else []
    ex.preflight(retrain)  # stores the split; a stale original, retrain or damaged view is refused here
    _check_stored(ex, files, shadows)
    if shadows is None:
        check_fleets(ex)
    log(f"audit-model {cfg.name}: {cfg.data.dataset}, forget {len(plan.forget)} of {len(plan.train)} train samples, "
        f"model {cfg.model.name}, storage {ex.store.uri}")
    timed = partial(stage_timer, ex.store, device=str(ex.device), config=cfg.model_dump(mode="json"), repair=rebuild)
    with timed("original"):
        run_original(cfg, rebuild, use_ray)
    original = ex.store.get("models", "original").manifest["content_hash"]
    labels = {imported_key(n): n for n in files.unlearned}
    calls = [{"key": imported_key(n), "path": _absolute(p), "config": _unlearned_config(n, original), "label": n,
              "flag": f"--unlearned {n}"} for n, p in files.unlearned.items()]
    if files.retrained is not None:
        labels[RETRAINED_KEY] = "retrain"
        calls.append({"key": RETRAINED_KEY, "path": _absolute(files.retrained), "config": _retrained_config(original),
                      "label": "retrain", "flag": "--retrained"})
    if shadows is not None:
        calls += [{"key": key, "path": _absolute(str(path)), "config": shadows.config(i), "label": "imported-shadow",
                   "flag": f"--shadows member {i}", "members": shadows.members(i),
                   "own_members": shadows.shadow_data is not None}
                  for i, (key, path) in enumerate(zip(shadows.keys, shadows.files))]
    with timed("import"):
        run_tasks(import_task, [{"cfg": cfg.model_dump(), "rebuild": rebuild, **c} for c in calls], desc="import",
                  unit="model", use_ray=use_ray)
    keys = ["original", *labels]
    if retrain:
        with timed("unlearn"):
            (res,) = run_tasks(unlearn_task, [{"cfg": cfg.model_dump(), "spec": retrain[0].model_dump(),
                                               "rebuild": rebuild}], desc="retrain", use_ray=use_ray)
        keys.append(res["key"])
    if shadows is None and cfg.audit.shadows:
        with timed("shadows"):
            run_fleet(audit_shadow_config(cfg), rebuild, use_ray)
    with timed("audit"):
        audit = audit_models(ex, keys, labels, shadow_keys=shadows.keys if shadows is not None else None)
    table = audit["leaderboard"]
    report, html = write_reports(ex, table)
    print_shown(table, f"{audit['path']}/leaderboard.csv")
    if "retrain" not in set(table["method"]):
        log("no retrain row: give --retrained FILE or --train-retrain for the gaps to retrain")
    log(f"run directory: {ex.store.uri}")
    log(f"report: {report}")
    log(f"html report: {html}")
    return {"table": table, "run_dir": ex.store.uri, "report": report, "html_report": html, "audit": audit["path"]}
