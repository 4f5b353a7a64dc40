"""The stages of one experiment as plain functions over the artifact store (no Ray here).

``split`` -> ``original`` -> ``unlearn`` (one call per method); fleets (``expunge.fleet``) add shadow
models through :meth:`Experiment.trained`; the
audit stage (``expunge.audit.stage``) reads their cached outputs. Each stage reads
what it needs from the store, reuses an artifact whose manifest matches its request, refuses one that
does not (or recomputes it when ``rebuild`` is set), and stores what it produced. Each model's
per-sample logits on every audit set are computed once, right after the model is made, and cached as
an ``outputs`` artifact that every metric reads. ``expunge.runtime`` runs these functions as Ray
tasks; called directly they run in-process (the GPU benchmark machine has no Ray).
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from expunge import seeds
from expunge.config import ExperimentConfig, MethodSpec
from expunge.config.forget import ForgetSpec
from expunge.data import DeviceData, ImageDataset, SplitPlan, SplitSizes, load_dataset
from expunge.data.noise import with_label_noise
from expunge.data.splits import OPTIONAL_SETS, SETS, set_size, read_indices
from expunge.errors import (ArtifactError, ConfigError, CorruptArtifactError, DataError, ExpungeError,
                            StaleArtifactError)
from expunge.store.lock import artifact_lock
from expunge.metrics import Outputs
from expunge.models import create_model
from expunge.models.checkpoint import file_sha256, load_into, read_weights
from expunge.store import Artifact, Store
from expunge.store.serialize import normalize
from expunge.train.engine import evaluate, resolve_device, seed_everything, train
from expunge.unlearn import METHODS, UnlearnContext, UnlearnResult, unlearn
from expunge.versions import code_version

#: sets whose logits are cached for every model
AUDIT_SETS = ("forget", "retain", "test", "calibration", "population", "shadow_pool", "forget_heldout")
#: sets queried with augmented views when ``audit.augmented_views`` > 0 (LiRA's BinUI sets)
AUGMENTED_SETS = ("forget", "retain", "test", "forget_heldout")
WEIGHTS = "weights.safetensors"
#: artifact kinds a command rewrites as views of the models (membership, the current audit, reports,
#: stage timings): checked intact before compute, replaced only when intact or under ``--rebuild``
DERIVED_KINDS = ("fleets", "audit", "reports", "timings")
#: ``config.role`` of models trained outside expunge that a leaderboard lists (``expunge audit-model``)
IMPORTED_ROLES = ("imported-unlearned", "imported-retrain")


def short_hash(obj: Any, n: int = 8) -> str:
    return hashlib.sha256(json.dumps(normalize(obj), sort_keys=True).encode()).hexdigest()[:n]


def state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """A model's state as plain tensors (``torch.compile`` prefixes stripped, shared storage cloned)."""
    return {k.removeprefix("_orig_mod."): v.detach().cpu().clone() for k, v in model.state_dict().items()}


def log(msg: str) -> None:
    print(msg, flush=True, file=sys.stderr)


class Experiment:
    """A config bound to its run directory; loads data and the split plan lazily, once."""

    def __init__(self, cfg: ExperimentConfig, rebuild: bool = False, verbose: bool = True) -> None:
        self.cfg = cfg
        self.rebuild = rebuild
        self.verbose = verbose
        self.store = Store(cfg.run_dir)

    # --- inputs ------------------------------------------------------------------------------
    @cached_property
    def dataset(self) -> ImageDataset:
        d = self.cfg.data
        return with_label_noise(load_dataset(d.dataset, root=d.root, **d.options), d.label_noise,
                                d.label_noise_seed)

    @cached_property
    def device(self) -> torch.device:
        return resolve_device(self.cfg.device)

    @cached_property
    def data(self) -> DeviceData:
        return DeviceData(self.dataset, self.device, channels_last=self.cfg.train.channels_last)

    @cached_property
    def shadow_dataset(self) -> ImageDataset | None:
        """The dataset of the audit's out-of-distribution shadows (``audit.shadow_data``), or None."""
        sd = self.cfg.audit.shadow_data
        return None if sd is None else load_dataset(sd.dataset, root=sd.root, **sd.options)

    @cached_property
    def shadow_data(self) -> DeviceData | None:
        """:attr:`shadow_dataset` on the device (normalised with its own statistics, as the shadows
        train on it), or None."""
        if self.shadow_dataset is None:
            return None
        return DeviceData(self.shadow_dataset, self.device, channels_last=self.cfg.train.channels_last)

    def shadow_pool_of_shadow_data(self) -> np.ndarray:
        """The positions of :attr:`shadow_dataset` the OOD shadows draw their members from: every position
        outside its official test part, or ``audit.shadow_data.pool`` of them drawn with the seed."""
        ds = self.shadow_dataset
        pool = np.flatnonzero(~ds.is_test) if ds.is_test is not None and ds.is_test.any() else np.arange(len(ds))
        n = self.cfg.audit.shadow_data.pool
        if n is not None:
            if n > len(pool):
                raise ConfigError(f"audit.shadow_data.pool: {n} positions asked, {ds.name} has {len(pool)} outside "
                                  "its test part")
            rng = np.random.default_rng(seeds.shadow_data_pool(self.cfg.seed))
            pool = np.sort(rng.choice(pool, size=n, replace=False))
        return pool

    def shadow_model_factory(self) -> nn.Module:
        """A fresh model of the audit's shadow architecture (``audit.shadow_model``, else ``model``)."""
        sm = self.cfg.audit.shadow_model
        if sm is None:
            return self.model_factory()
        return create_model(sm.name, self.dataset.num_classes, self.dataset.in_shape, **sm.kwargs)

    def check_shadow_source(self) -> None:
        """``audit.shadow_data`` and ``audit.shadow_model`` against the target, before any compute: the
        shadow dataset loads and has the target's class count and image shape (a shadow is queried on the
        target's images and its logits compared class by class), and the shadow model builds."""
        a = self.cfg.audit
        if not a.shadows or (a.shadow_data is None and a.shadow_model is None):
            return
        if a.shadow_data is not None:
            try:
                ds = self.shadow_dataset
            except ExpungeError as exc:
                raise ConfigError(f"audit.shadow_data: {exc}") from None
            target = self.dataset
            if ds.num_classes != target.num_classes:
                raise ConfigError(f"audit.shadow_data: {ds.name} has {ds.num_classes} classes, the target "
                                  f"{target.name} has {target.num_classes}; shadows must predict the target's classes")
            if ds.in_shape != target.in_shape:
                raise ConfigError(f"audit.shadow_data: {ds.name} has images of shape {list(ds.in_shape)}, the target "
                                  f"{target.name} {list(target.in_shape)}; the shadows are queried on the target's images")
            self.shadow_pool_of_shadow_data()
        if a.shadow_model is not None:
            try:
                self.shadow_model_factory()
            except ExpungeError as exc:
                raise ConfigError(f"audit.shadow_model: {exc}") from None

    def shadow_own_files(self, model: nn.Module, members: np.ndarray) -> dict[str, np.ndarray]:
        """An OOD shadow's logits on its own training samples of :attr:`shadow_dataset` (clean views):
        IAM-Off's anchor is the shadows' mean confidence on these (``own_*.npy`` of the model artifact,
        read by :func:`expunge.audit.stage.reference_inputs`)."""
        was_training = model.training
        logits = evaluate(model, self.shadow_data, members, self.cfg.train.eval_batch_size)
        model.train(was_training)
        return {"own_logits.npy": logits, "own_labels.npy": self.shadow_dataset.labels.numpy()[members],
                "own_ids.npy": np.asarray(members, dtype=np.int64)}

    @cached_property
    def plan(self) -> SplitPlan:
        art = self._fetch("split", "plan", self._split_expect(), self._build_split)
        names = [*SETS, *(k for k in OPTIONAL_SETS if f"{k}.npy" in art.files())]
        plan = SplitPlan.from_arrays(art.read("plan.json"), {k: art.read(f"{k}.npy") for k in names})
        plan.check_dataset(self.dataset)
        return plan

    def _split_expect(self) -> dict[str, Any]:
        d = self.cfg.data
        config = {"dataset": d.dataset, "options": d.options, "forget": d.forget,
                  "label_noise": d.label_noise, "label_noise_seed": d.label_noise_seed,
                  "sizes": d.sizes.model_dump(), "fingerprint": self.dataset.fingerprint}
        if d.incremental is not None:  # only when set: every other split keeps its identity
            config["incremental"] = d.incremental.model_dump()
        files = self._index_files()
        if files:  # the files' content, not only their names: an edited file is another split
            config["train_indices"] = d.train_indices
            config["indices_sha256"] = {k: file_sha256(v) for k, v in files.items()}
        return {"config": config, "seed": self.cfg.seed, "code_version": code_version("split")}

    def _index_files(self) -> dict[str, str]:
        """The index files the split reads (``data.forget: indices:FILE``, ``data.train_indices``) that exist
        (a missing one is named when the split is made)."""
        d = self.cfg.data
        spec = ForgetSpec.parse(d.forget)
        files = {"forget": str(spec.value)} if spec.kind == "indices" else {}
        if d.train_indices is not None:
            files["train"] = d.train_indices
        return {k: v for k, v in files.items() if Path(v).is_file()}

    def create_plan(self) -> SplitPlan:
        """The split plan this config asks for, computed in memory and not stored: every problem of the
        data, the sizes or an indices file is raised here, before anything is written."""
        d = self.cfg.data
        sizes = SplitSizes(**d.sizes.model_dump())
        if d.train_indices is None:
            old = None if d.incremental is None else d.incremental.old_fraction
            return SplitPlan.create(self.dataset, self.cfg.seed, d.forget, sizes, old_fraction=old)
        return plan_with_train(self.dataset, self.cfg.seed, d.forget, sizes, d.train_indices)

    def _build_split(self) -> tuple[dict[str, Any], dict[str, Any]]:
        plan = self.create_plan()
        files = {f"{k}.npy": v for k, v in plan.arrays().items()}
        files["plan.json"] = plan.meta()
        return files, {"split_hash": plan.hash}

    # --- store access ------------------------------------------------------------------------
    def checked_get(self, kind: str, key: str, expect: dict[str, Any]) -> Artifact | None:
        """``store.get(..., verify=True)``; a split or original made from other settings is refused
        with the exact ``name=`` that runs this request beside it (derived from the request, so the
        same request finds the same run again)."""
        try:
            return self.store.get(kind, key, expect=expect, verify=True)
        except StaleArtifactError as exc:
            if (kind, key) not in (("split", "plan"), ("models", "original")):
                raise
            name = f"{self.cfg.name}-{short_hash(expect, 6)}"
            what = str(exc).removesuffix("; use a new run name or --rebuild")
            raise StaleArtifactError(f"{what}; to keep both, add name={name} (a separate run directory), "
                                     "or --rebuild to replace it") from None

    def _fetch(self, kind: str, key: str, expect: dict[str, Any],
               build: Callable[[], tuple[dict[str, Any], dict[str, Any]]]) -> Artifact:
        """The stored artifact if it matches ``expect``; else build and store it (or refuse).

        A reused model is said once per command and process, ``reused models/<key> (stored <when>)``,
        unless this process made it, or it was made after the command started (``EXPUNGE_RUN_STARTED``,
        set by ``expunge.cli.main``): by this same run, in another Ray worker. A stage reading the
        original as its input (:meth:`unlearn`) does not say it: the original stage did, possibly in
        another process; the set of models already said keeps other repeats to one line."""
        import os

        started = os.environ.get("EXPUNGE_RUN_STARTED", "")
        said = Experiment.__dict__.get("_models_said")
        if said is None:
            said = Experiment._models_said = set()
        def lookup(say: bool) -> Artifact | None:
            """The stored artifact, or None when absent (or, with ``rebuild``, unusable)."""
            try:
                return self.checked_get(kind, key, expect)
            except ArtifactError:
                if not self.rebuild:
                    raise
                if say and self.verbose:
                    log(f"rebuilding {kind}/{key}")
                return None

        art = lookup(say=True)
        reused = art is not None
        if not reused:
            def waiting(holder: dict[str, Any]) -> None:
                log(f"{kind}/{key}: waiting for process {holder.get('pid')} on {holder.get('host')}, which is "
                    "building it")

            with artifact_lock(self.store.uri, kind, key, on_wait=waiting) as waited:
                if waited:  # the other command has stored it by now (or failed): look again
                    art = lookup(say=False)
                    if art is not None:
                        log(f"reused {kind}/{key} (stored {art.manifest.get('created', '')} by the command "
                            "it waited for)")
                        return art
                files, extra = build()
                art = self.store.put(kind, key, files, replace=True, repair=self.rebuild, **{**expect, **extra})
        if kind != "models":
            return art
        mark = (started, self.store.uri, key, art.manifest["content_hash"])
        created = art.manifest.get("created", "")
        quiet = getattr(self, "_reading_input", False)
        if reused and self.verbose and not quiet and mark not in said and (not started or created < started):
            log(f"reused {kind}/{key} (stored {created or 'at an unknown time'})")
        if not (reused and quiet):
            said.add(mark)
        return art

    def model_factory(self) -> nn.Module:
        m = self.cfg.model
        return create_model(m.name, self.dataset.num_classes, self.dataset.in_shape, **m.kwargs)

    def load_model(self, key: str) -> nn.Module:
        art = self.store.get("models", key)
        if art is None:
            raise ArtifactError(f"model {key} is not in {self.store.uri}; run its stage first")
        config = art.manifest.get("config") or {}
        arch = config.get("model") if config.get("role") == "fleet-shadow" and config.get("shadow_model") else None
        # a shadow of another architecture (audit.shadow_model) is rebuilt as its manifest says
        model = self.model_factory() if arch is None else create_model(
            arch["name"], self.dataset.num_classes, self.dataset.in_shape, **arch["kwargs"])
        try:
            model.load_state_dict(art.read(WEIGHTS))
        except RuntimeError as exc:
            raise ArtifactError(f"artifact models/{key}: weights do not fit model {(arch or {}).get('name', self.cfg.model.name)} "
                                f"({str(exc).splitlines()[0]})") from None
        return model.to(self.device).eval()

    def preflight(self, methods: list[MethodSpec]) -> None:
        """Before any compute: refuse inapplicable methods and stored artifacts that do not match.

        With ``rebuild`` a mismatching or corrupt artifact is left for its stage to replace.
        """
        for spec in methods:  # before the split plan is even made (and stored)
            METHODS.get(spec.name).check_forget_spec(self.cfg.data.forget)
        resolve_device(self.cfg.device)  # device=cuda without CUDA
        if self.cfg.model.weights is not None:
            self.imported_weights  # unreadable, pickled or ill-fitting weights: refused before compute
        self.check_shadow_source()  # another class count or image shape: refused before the split is stored
        plan = self.plan
        for spec in methods:
            method = METHODS.get(spec.name)
            method.check(plan, method.parse_config(spec.params))
        self.check_conformal_sizes(plan)
        if self.rebuild:
            return
        # the run's derived artifacts are rewritten by every command: damage to one is refused here,
        # before compute, rather than overwritten at the end (``--rebuild`` replaces them)
        for kind in DERIVED_KINDS:
            self.store.check_intact(kind)
        original = self.checked_get("models", "original", self.original_expect())
        for spec in methods:
            if original is not None:
                self.store.get("models", self.unlearned_key(spec), expect=self.unlearn_expect(spec, original),
                               verify=True)

    def check_conformal_sizes(self, plan: SplitPlan) -> None:
        """CR / MIACR need enough calibration samples of ``plan`` for every alpha; refuse before training."""
        from expunge.metrics.conformal import min_calibration_size

        audit = self.cfg.audit
        alphas = [float(a) for a in audit.params.get("cr", {}).get("alphas", (0.05,))] if "cr" in audit.metrics else []
        if "miacr" in audit.metrics:
            alphas.append(float(audit.params.get("miacr", {}).get("alpha", 0.05)))
        if not alphas:
            return
        cal = plan.calibration
        sizes = {"calibration split": len(cal)}
        if plan.spec.classwise and "cr" in audit.metrics:
            labels = self.dataset.labels.numpy()[cal]
            sizes["calibration samples of the forgotten class"] = int((labels == plan.forget_class).sum())
        for alpha in alphas:
            for what, n in sizes.items():
                if n < min_calibration_size(alpha):
                    raise ConfigError(f"audit: the {what} has {n} samples, too few for alpha={alpha} (need "
                                      f"{min_calibration_size(alpha)}); raise data.sizes.calibration or alpha")

    # --- stages ------------------------------------------------------------------------------
    def trained(self, key: str, indices: np.ndarray, seed: int, config: dict[str, Any],
                label: str, log_epochs: bool = False, extra_files: dict[str, Any] | None = None,
                fit: Callable[[nn.Module], list[dict[str, Any]]] | None = None,
                run_time_s: float | None = None, factory: Callable[[], nn.Module] | None = None) -> Artifact:
        """A model trained from a seeded fresh init on ``indices`` with ``train`` (or the stored one).

        The manifest records the model and training config plus ``config`` (what makes this model
        what it is: its role, member index, ...); outputs are cached once, right after training.
        ``fit`` replaces the in-process engine call (Ray Train fills the model from its checkpoint; a
        batched ensemble from its stacked weights, with its share of the time as ``run_time_s``).
        ``factory`` builds the fresh model instead of ``model`` (a shadow of ``audit.shadow_model``).
        ``extra_files`` is read after ``fit`` ran, so ``fit`` may fill it (an OOD shadow's own outputs).
        """
        expect = self.trained_expect(config, seed)

        def build():
            seed_everything(seed)
            model = (factory or self.model_factory)().to(self.device)
            if self.device.type == "cuda" and self.cfg.train.channels_last:
                model = model.to(memory_format=torch.channels_last)
            t0 = time.perf_counter()
            if fit is not None:
                history = fit(model)
            else:
                history = train(model, self.data, indices, self.cfg.train, seed=seed,
                                callback=self._epoch_logger(label, self.cfg.train.epochs) if log_epochs else None)
            seconds = time.perf_counter() - t0 if run_time_s is None else run_time_s
            built["model"] = model
            files = {WEIGHTS: state_tensors(model), "history.json": history, "members.npy": np.asarray(indices)}
            return {**files, **(extra_files or {})}, {"run_time_s": seconds, "method": label}

        built: dict[str, nn.Module] = {}
        art = self._fetch("models", key, expect, build)
        self._ensure_outputs(art, built.get("model"))
        return art

    def trained_expect(self, config: dict[str, Any], seed: int) -> dict[str, Any]:
        """What a trained model's manifest must say to be reused: model, training config, its role
        (``config``), split, seed and the training stage's code version."""
        return {"config": {"model": self.cfg.model.model_dump(), "train": self.cfg.train.model_dump(), **config},
                "split_hash": self.plan.hash, "seed": seed, "code_version": code_version("train")}

    def original_expect(self) -> dict[str, Any]:
        return self.trained_expect(self._original_role(), self.cfg.seed)

    def _original_role(self) -> dict[str, Any]:
        inc = self.cfg.data.incremental
        role: dict[str, Any] = {"role": "original"}
        if inc is not None:  # warm-started and trained on the new positions: never the plain original
            role["incremental"] = {**inc.model_dump(), "trained_on": "new",
                                   "warm_start": "model.weights" if self.cfg.model.weights else "incremental-base"}
        if self.cfg.model.weights is not None:
            role["imported_sha256"] = self.imported_weights[1]
        return role

    def incremental_base(self) -> dict[str, torch.Tensor]:
        """The weights the incremental original starts from: ``model.weights`` (a model trained on the
        split's ``old`` positions elsewhere), or else a model trained here from a fresh init on them
        (``models/incremental-base``, the old phase of the reference's CIFAR-10 → CINIC-10 run)."""
        if self.cfg.model.weights is not None:
            return self.imported_weights[0]
        art = self.trained("incremental-base", self.plan.indices["old"], self.cfg.seed, {"role": "incremental-base"},
                           "incremental base", log_epochs=True)
        return art.read(WEIGHTS)

    @cached_property
    def imported_weights(self) -> tuple[dict[str, torch.Tensor], str]:
        """The user's original weights (``model.weights``), checked against the configured model, and
        the file's sha256."""
        return self.read_model_file(self.cfg.model.weights)

    def read_model_file(self, path: str, flag: str = "model.weights") -> tuple[dict[str, torch.Tensor], str]:
        """Weights from ``path`` (safetensors or a weights-only torch file) checked against the configured
        model, keys and shapes (so the head's class count), and the file's sha256; a problem is one
        :class:`ConfigError` line naming ``flag``, the option that gave the file."""
        try:
            state = read_weights(path)
            load_into(self.model_factory(), state, path, self.dataset.num_classes)
        except ConfigError as exc:
            if flag == "model.weights":
                raise
            raise ConfigError(f"{flag}: {str(exc).removeprefix('model.weights: ')}") from None
        return state, file_sha256(path)

    def imported_expect(self, config: dict[str, Any]) -> dict[str, Any]:
        """What a model imported from a file must say to be reused: the configured model, ``config`` (its
        role, the source file's sha256, the original it belongs to), split and seed."""
        m = self.cfg.model
        return {"config": {**config, "model": {"name": m.name, "kwargs": m.kwargs}}, "split_hash": self.plan.hash,
                "seed": self.cfg.seed, "code_version": code_version("train")}

    def imported(self, key: str, path: str, config: dict[str, Any], label: str, flag: str,
                 members: np.ndarray | None = None, own_members: bool = False) -> Artifact:
        """A model trained outside expunge (an unlearned, retrained or shadow model), stored as
        ``models/<key>`` with the source file's sha256 in its manifest (or the stored one when it
        matches: a changed file is refused as stale unless ``rebuild``), its outputs cached like a
        trained model's. ``members``: the dataset positions it trained on (a shadow's); with
        ``own_members`` they are positions of ``audit.shadow_data`` and the shadow's logits on them are
        stored beside its weights (:meth:`shadow_own_files`, IAM-Off's anchor)."""
        state, sha = self.read_model_file(path, flag)

        def build():
            model = self.model_factory()
            model.load_state_dict(state)
            built["model"] = model.to(self.device)
            files = {WEIGHTS: state_tensors(model), **({} if members is None else {"members.npy": members})}
            if own_members:
                files.update(self.shadow_own_files(built["model"], members))
            return files, {"run_time_s": None, "method": label}  # its run time is unknown

        built: dict[str, nn.Module] = {}
        art = self._fetch("models", key, self.imported_expect({**config, "imported_sha256": sha}), build)
        self._ensure_outputs(art, built.get("model"))
        return art

    def original(self, fit: Callable[[nn.Module], list[dict[str, Any]]] | None = None) -> Artifact:
        """Train the original model on the train split (or reuse the stored one); with
        ``model.weights`` the user's trained model is imported instead (it must have been trained on
        this config's train split for the audit to mean anything)."""
        if self.cfg.data.incremental is not None:
            return self._incremental_original()
        if self.cfg.model.weights is not None:
            state, _ = self.imported_weights

            def imported(model: nn.Module) -> list[dict[str, Any]]:
                model.load_state_dict(state)
                return []  # no training history: the model was trained elsewhere

            return self.trained("original", self.plan.train, self.cfg.seed, self._original_role(),
                                "original (imported)", fit=imported)
        return self.trained("original", self.plan.train, self.cfg.seed, {"role": "original"}, "original",
                            log_epochs=True, fit=fit)

    def _incremental_original(self) -> Artifact:
        """IAM Table 4's original: the warm-start weights (:meth:`incremental_base`) trained ``train.epochs``
        more on the new positions only (the split's ``train``), as the reference trains its CIFAR-10
        model further on the new CINIC-10 samples alone."""
        seed = self.cfg.seed

        def warm_started(model: nn.Module) -> list[dict[str, Any]]:
            # the base only when the original is (re)built; reseeded after it, so a stored base and a
            # freshly trained one give the same original
            model.load_state_dict(self.incremental_base())
            seed_everything(seed)
            return train(model, self.data, self.plan.train, self.cfg.train, seed=seed,
                         callback=self._epoch_logger("original", self.cfg.train.epochs))

        return self.trained("original", self.plan.train, seed, self._original_role(), "original",
                            fit=warm_started)

    def unlearned_key(self, spec: MethodSpec) -> str:
        cfg = METHODS.get(spec.name).parse_config(spec.params)
        return f"{spec.name}-{short_hash(cfg.model_dump())}"

    def unlearn(self, spec: MethodSpec, callback: Callable[[dict], None] | None = None,
                original: Artifact | None = None, key: str | None = None, seed: int | None = None) -> Artifact:
        """Apply one unlearning method to the stored original (or reuse its stored result).

        ``original``/``key``/``seed`` let a fleet apply the method to each of its own originals."""
        method_cls = METHODS.get(spec.name)
        mcfg = method_cls.parse_config(spec.params)
        method_cls.check(self.plan, mcfg)
        if original is None:
            # the stage's input, not its output: the original stage already said whether it reused it
            # (in another Ray worker, which this process's set of models already said cannot know)
            self._reading_input = True
            try:
                original = self.original()
            finally:
                self._reading_input = False
        seed = self.cfg.seed if seed is None else seed
        expect = {**self.unlearn_expect(spec, original), "seed": seed}
        key = key or self.unlearned_key(spec)

        def build():
            result = self.apply_method(spec, original.key, seed, callback or self._epoch_logger(spec.name, None))
            built["model"] = result.model
            if self.verbose:
                log(f"{spec.name}: done in {result.seconds:.1f}s")
            return {WEIGHTS: state_tensors(result.model)}, {"run_time_s": result.seconds, "method": spec.name}

        built: dict[str, nn.Module] = {}
        art = self._fetch("models", key, expect, build)
        self._ensure_outputs(art, built.get("model"))
        return art

    def apply_method(self, spec: MethodSpec, original_key: str = "original", seed: int | None = None,
                     callback: Callable[[dict], None] | None = None, plan: SplitPlan | None = None) -> UnlearnResult:
        """Run one method on a stored original and return the model, without storing it.

        The one code path of every unlearning run: :meth:`unlearn` stores its result, a sweep trial
        (``expunge.sweep``) audits it in memory; both seed the same way, so a trial's configuration
        re-run with ``expunge unlearn`` gives the same model. ``plan``: other forget and retain sets
        than the run's own (a later request of a sequential ledger, :meth:`unlearned_from`).
        """
        seed = self.cfg.seed if seed is None else seed
        seed_everything(seeds.offset(seed, seeds.Salt.UNLEARN))
        ctx = UnlearnContext(self.load_model(original_key), self.data, self.plan if plan is None else plan,
                             self.cfg.train, self._seeded_factory, seed=seed, callback=callback)
        return unlearn(spec.name, spec.params, ctx)

    def unlearned_from(self, key: str, spec: MethodSpec, previous: Artifact, plan: SplitPlan,
                       config: dict[str, Any], extra_files: dict[str, Any] | None = None) -> Artifact:
        """``spec`` applied to the stored model ``previous`` with the forget and retain sets of ``plan``
        (not the run's own split), stored as ``models/<key>`` (or the stored one reused) with its outputs.

        Its manifest's identity is the method and its parameters, ``previous``'s content hash, ``plan``'s
        hash and ``config`` (what the caller's chain adds: a request's spec and number), so a model made
        from another predecessor or other sets is refused as stale, never reused. The sequential ledger
        (``expunge.stages.ledger``) makes each version this way, keyed by the hash of this identity."""
        mcfg = METHODS.get(spec.name).parse_config(spec.params)
        METHODS.get(spec.name).check(plan, mcfg)
        expect = self.unlearned_from_expect(spec, previous, plan, config)

        def build():
            result = self.apply_method(spec, previous.key, self.cfg.seed,
                                       self._epoch_logger(f"{spec.name} ({key})", None), plan=plan)
            built["model"] = result.model
            if self.verbose:
                log(f"{spec.name} ({key}): done in {result.seconds:.1f}s")
            files = {WEIGHTS: state_tensors(result.model), **(extra_files or {})}
            return files, {"run_time_s": result.seconds, "method": spec.name}

        built: dict[str, nn.Module] = {}
        art = self._fetch("models", key, expect, build)
        self._ensure_outputs(art, built.get("model"))
        return art

    def unlearned_from_expect(self, spec: MethodSpec, previous: Artifact, plan: SplitPlan,
                              config: dict[str, Any]) -> dict[str, Any]:
        """The manifest identity of :meth:`unlearned_from`'s model."""
        params = METHODS.get(spec.name).parse_config(spec.params).model_dump()
        return {"config": {"method": spec.name, "params": params, "previous": previous.key,
                           "previous_content_hash": previous.manifest["content_hash"], "plan_hash": plan.hash,
                           **config},
                "split_hash": self.plan.hash, "seed": self.cfg.seed, "code_version": code_version("unlearn")}

    def unlearn_expect(self, spec: MethodSpec, original: Artifact) -> dict[str, Any]:
        """What an unlearned model's manifest must say to be ``spec`` applied to ``original`` on this
        split by this unlearning code."""
        params = METHODS.get(spec.name).parse_config(spec.params).model_dump()
        return {"config": {"method": spec.name, "params": params, "original": original.manifest["content_hash"]},
                "split_hash": self.plan.hash, "seed": self.cfg.seed, "code_version": code_version("unlearn")}

    def _seeded_factory(self) -> nn.Module:
        torch.manual_seed(seeds.offset(self.cfg.seed, seeds.Salt.MODEL_FACTORY))
        return self.model_factory()

    def _epoch_logger(self, what: str, total: int | None) -> Callable[[dict], None]:
        def cb(rec: dict) -> None:
            if not self.verbose:
                return
            e = rec["epoch"]
            every = max(1, (total or 10) // 5)
            if e == 1 or e % every == 0 or e == total:
                acc = f" train_acc {rec['train_acc']:.3f}" if "train_acc" in rec else ""
                log(f"{what}: epoch {e}{'/' + str(total) if total else ''} loss {rec['loss']:.4f}{acc}")

        return cb

    # --- outputs cache -----------------------------------------------------------------------
    def _outputs_expect(self, model_art: Artifact) -> dict[str, Any]:
        return {"config": {"model": model_art.key, "model_content_hash": model_art.manifest["content_hash"],
                           "sets": list(AUDIT_SETS), "augmented_views": self.cfg.audit.augmented_views},
                "split_hash": self.plan.hash, "code_version": code_version("outputs")}

    def _ensure_outputs(self, model_art: Artifact, model: nn.Module | None) -> Artifact:
        """The model's cached outputs; computed once, from ``model`` if given, else from stored weights.

        Outputs record the content hash of the weights they came from, so outputs of a replaced model
        are never reused.
        """
        expect = self._outputs_expect(model_art)
        try:
            art = self.store.get("outputs", model_art.key, expect=expect, verify=True)
        except CorruptArtifactError:
            if not self.rebuild:
                raise
            log(f"rebuilding outputs/{model_art.key}")
            art = None
        except StaleArtifactError:
            # a cache derived from weights that have since been replaced (their content hash differs)
            if self.verbose:
                log(f"outputs/{model_art.key} were computed from other weights or sets; recomputing them")
            art = None
        if art is not None:
            return art
        model = model if model is not None else self.load_model(model_art.key)
        return self._cache_outputs(model_art.key, model, expect)

    def _cache_outputs(self, model_key: str, model: nn.Module, expect: dict[str, Any]) -> Artifact:
        return self.store.put("outputs", model_key, self.output_files(model), seed=self.cfg.seed, replace=True,
                              repair=self.rebuild,
                              **expect)

    def output_files(self, model: nn.Module) -> dict[str, np.ndarray]:
        """A model's per-sample logits (and labels, ids, augmented views) on every audit set.

        Leaves the model in the train/eval mode it was in, so a sweep trial can audit between epochs
        without changing the run."""
        was_training = model.training
        files: dict[str, Any] = {}
        for name in AUDIT_SETS:
            idx = self.plan.indices[name]
            files[f"logits_{name}.npy"] = evaluate(model, self.data, idx, self.cfg.train.eval_batch_size)
            files[f"labels_{name}.npy"] = self.dataset.labels.numpy()[idx]
            files[f"ids_{name}.npy"] = idx
            if self.cfg.audit.augmented_views and name in AUGMENTED_SETS:
                # the same seeded views for every model, so per-view signals are comparable (LiRA)
                files[f"aug_logits_{name}.npy"] = np.stack([
                    evaluate(model, self.data, idx, self.cfg.train.eval_batch_size, augment=True,
                             generator=torch.Generator().manual_seed(seeds.augmented_view(v)))
                    for v in range(self.cfg.audit.augmented_views)])
        model.train(was_training)
        return files

    def outputs_of(self, model: nn.Module) -> dict[str, Outputs]:
        """Per-sample outputs of an in-memory model (not stored), in the form metrics read."""
        return outputs_from_files(self.output_files(model))

    def outputs(self, model_key: str) -> dict[str, Outputs]:
        """Cached per-sample outputs of a stored model; recomputed from its weights only if absent."""
        model_art = self.store.get("models", model_key)
        if model_art is None:
            raise ArtifactError(f"model {model_key} is not in {self.store.uri}; run its stage first")
        art = self._ensure_outputs(model_art, None)
        return outputs_from_files({name: art.read(name) for name in art.files() if name.endswith(".npy")})


def plan_with_train(dataset: ImageDataset, seed: int, forget: str, sizes: SplitSizes, train_file: str) -> SplitPlan:
    """The split of an original trained on the dataset positions in ``train_file`` (``data.train_indices``).

    ``train`` is the file's positions; the held-out sets come from the positions outside it, drawn with
    the seed: where the source has an official test part (CIFAR), calibration and population from its
    positions outside train and ``test`` from the rest of it, and the shadow pool from the official
    train part's other positions; otherwise calibration, population and shadow pool are carved from the
    positions outside train (fractions of their number) and ``test`` holds what is left. The forget
    set and ``forget_heldout`` follow the forget spec as in :meth:`SplitPlan.create`.
    """
    try:
        train = read_indices(train_file)
    except DataError as exc:
        raise DataError(str(exc).replace("forget indices file", "data.train_indices file")) from None
    n = len(dataset)
    if train.min(initial=0) < 0 or train.max(initial=0) >= n:
        raise DataError(f"data.train_indices: positions out of range 0..{n - 1} in {train_file}")
    if len(np.unique(train)) != len(train):
        raise DataError(f"data.train_indices file {train_file} has duplicate indices")
    train = np.sort(train)
    rng = np.random.Generator(np.random.PCG64(seed))
    outside = np.ones(n, bool)
    outside[train] = False
    official = dataset.is_test is not None and bool(dataset.is_test.any())
    if official:
        held = rng.permutation(np.flatnonzero(outside & dataset.is_test))
        rest = rng.permutation(np.flatnonzero(outside & ~dataset.is_test))
    else:
        held = rest = rng.permutation(np.flatnonzero(outside))
    n_cal = set_size(sizes.calibration, len(held), "calibration")
    n_pop = set_size(sizes.population, len(held), "population")
    calibration, population = held[:n_cal], held[n_cal:n_cal + n_pop]
    if official:
        test = held[n_cal + n_pop:]
        shadow_pool = rest[:set_size(sizes.shadow_pool, len(rest), "shadow_pool")]
    else:
        n_sh = set_size(sizes.shadow_pool, len(held), "shadow_pool")
        shadow_pool, test = held[n_cal + n_pop:n_cal + n_pop + n_sh], held[n_cal + n_pop + n_sh:]
    return SplitPlan.assemble(dataset, seed, ForgetSpec.parse(forget), sizes, rng, train, test, calibration,
                              population, shadow_pool, lambda tr, te: (
                                  f"data.train_indices: {len(tr)} train positions and split sizes {sizes.__dict__} "
                                  f"leave {len(te)} test samples; the test set needs at least one"))


def outputs_from_files(files: dict[str, np.ndarray]) -> dict[str, Outputs]:
    return {s: Outputs(files[f"logits_{s}.npy"], files[f"labels_{s}.npy"], files[f"ids_{s}.npy"],
                       files.get(f"aug_logits_{s}.npy")) for s in AUDIT_SETS}
