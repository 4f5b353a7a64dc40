"""SplitPlan: every index set an experiment uses, derived deterministically and hashed.

From (dataset fingerprint, seed, forget spec, sizes) the plan derives, as positions into the dataset:

* ``test`` - held out for TA and as the non-member set of MIAs;
* ``calibration`` - held out for conformal metrics (CR, MIACR), never trained on;
* ``population`` - held out reference samples for RMIA, never trained on;
* ``shadow_pool`` - samples only shadow models train on (IAM's OUT-only shadows);
* ``train`` - what the original model trains on, split into ``forget`` and ``retain``;
* ``forget_heldout`` - held-out non-members drawn the way the forget set was drawn, for a fair
  forget-vs-held-out audit: for ``mislabeled`` the corrupted held-out samples (moved out of test,
  calibration and population, which then hold clean labels only), for ``class``/``class_percentage``
  the test samples of the forgotten class (they also stay in ``test``); empty for ``random`` and
  ``indices``, whose forget sets are drawn like ``test`` itself.

When the source has an official test part (CIFAR), ``test``, ``calibration`` and ``population`` are
carved from it (as the CPU reference code carves its 2,000 calibration samples from CIFAR's test
set) and ``shadow_pool`` from the official train part; otherwise everything is carved from the pool.

Forget specs: ``random:<fraction or count>``, ``class:<c>``, ``class_percentage:<c>:<ratio>``,
``indices:<file>`` (a ``.npy`` or whitespace-separated ``.txt`` of dataset positions, all in train),
``mislabeled`` (every training sample whose label ``data.label_noise`` corrupted; see
:mod:`expunge.data.noise`).

``plan.hash`` covers the dataset fingerprint, seed, spec, sizes and every index. It is an identity
field (``split_hash``) of every model and output artifact's manifest, so the store refuses an input
built on another plan as stale (:mod:`expunge.store.store`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from expunge.config.forget import ForgetSpec
from expunge.data.base import ImageDataset
from expunge.errors import ArtifactError, DataError

SETS = ("train", "test", "calibration", "population", "shadow_pool", "forget", "retain", "forget_heldout")
#: sets a plan holds only in some settings: ``old``, the train positions the warm-start model of
#: incremental training saw (``data.incremental``; ``train`` then holds the new positions). Hashed and
#: stored only when present, so plans without them keep their hash
OPTIONAL_SETS = ("old",)


@dataclass(frozen=True)
class SplitSizes:
    """Held-out set sizes: a float in [0, 1) is a fraction of the part it is carved from, an int a count."""

    test: float | int = 0.2
    calibration: float | int = 0.1
    population: float | int = 0.1
    shadow_pool: float | int = 0.0


def set_size(size: float | int, n: int, name: str) -> int:
    if isinstance(size, float) and not isinstance(size, bool):
        if not 0.0 <= size < 1.0:
            raise DataError(f"split size {name}={size}: a fraction must be in [0, 1)")
        return int(round(size * n))
    if size < 0 or size > n:
        raise DataError(f"split size {name}={size}: a count must be in [0, {n}]")
    return int(size)


def read_indices(path: str) -> np.ndarray:
    """A 1-D integer array from a ``.npy`` file or a whitespace-separated text file. Errors name the
    file and the position of the first bad entry, never the file's content (it may be any file)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"forget indices file not found: {path}")
    try:
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        else:
            lines = p.read_bytes().decode("utf-8").splitlines()
            for number, line in enumerate(lines, 1):
                if not all(_is_number(t) for t in line.split()):
                    raise DataError(f"forget indices file {path}: line {number} holds something other than numbers")
            arr = np.array([t for line in lines for t in line.split()], dtype=np.float64)
    except DataError:
        raise
    except UnicodeDecodeError:
        raise DataError(f"forget indices file {path} is not UTF-8 text (give a .npy or a text file of integers)") from None
    except (ValueError, EOFError, OSError) as exc:
        kind = "empty" if p.stat().st_size == 0 else f"unreadable ({type(exc).__name__})"
        raise DataError(f"forget indices file {path} is {kind}") from None
    arr = np.asarray(arr)
    if arr.ndim != 1:
        raise DataError(f"forget indices file {path} holds a {arr.ndim}-D array of shape {arr.shape}; give a 1-D list")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError(f"forget indices file {path} holds non-integer or NaN values")
    elif arr.dtype.kind not in "iu":
        raise DataError(f"forget indices file {path} must hold integers, got {arr.dtype}")
    return arr.astype(np.int64)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


@dataclass
class SplitPlan:
    """Index arrays (dataset positions) for every set, plus what they were derived from."""

    dataset: str
    dataset_fingerprint: str
    seed: int
    forget_spec: str
    sizes: SplitSizes
    num_classes: int
    indices: dict[str, np.ndarray]
    forget_class: int | None = None
    hash: str = field(default="")
    #: incremental training (``data.incremental``): ``{"old_fraction": f}``; None otherwise
    incremental: dict | None = None

    def __post_init__(self) -> None:
        self.indices = {k: np.asarray(v, dtype=np.int64) for k, v in self.indices.items()}
        computed = self._compute_hash()
        if self.hash and self.hash != computed:
            raise ArtifactError(f"split plan hash mismatch: stored {self.hash[:12]}, content {computed[:12]}")
        self.hash = computed

    @property
    def spec(self) -> ForgetSpec:
        """The parsed forget spec (its ``kind``, ``cls``, ``classwise``): read here, never re-parsed."""
        return ForgetSpec.parse(self.forget_spec)

    def __getattr__(self, name: str) -> np.ndarray:
        if name in (*SETS, *OPTIONAL_SETS) and name in self.__dict__.get("indices", {}):
            return self.__dict__["indices"][name]
        raise AttributeError(name)

    def _compute_hash(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(self.meta(with_hash=False), sort_keys=True).encode())
        for name in (*SETS, *(k for k in OPTIONAL_SETS if k in self.indices)):
            h.update(name.encode())
            h.update(self.indices[name].astype("<i8").tobytes())
        return h.hexdigest()

    def meta(self, with_hash: bool = True) -> dict:
        m = {"dataset": self.dataset, "dataset_fingerprint": self.dataset_fingerprint, "seed": self.seed,
             "forget_spec": self.forget_spec, "sizes": self.sizes.__dict__, "num_classes": self.num_classes,
             "forget_class": self.forget_class, "counts": {k: int(len(v)) for k, v in self.indices.items()}}
        if self.incremental is not None:  # only when set: every other plan keeps its hash
            m["incremental"] = self.incremental
        if with_hash:
            m["hash"] = self.hash
        return m

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def create(cls, dataset: ImageDataset, seed: int, forget_spec: str,
               sizes: SplitSizes | None = None, old_fraction: float | None = None) -> "SplitPlan":
        """Derive the plan; the same (dataset content, seed, spec, sizes) always gives the same plan.

        ``old_fraction`` (incremental training, ``data.incremental``): that fraction of the carved train
        part becomes the ``old`` set, drawn with the seed, and ``train`` (so forget and retain) is the
        rest, the new positions."""
        sizes = sizes or SplitSizes()
        spec = ForgetSpec.parse(forget_spec)
        rng = np.random.Generator(np.random.PCG64(seed))
        n = len(dataset)
        if dataset.is_test is not None and dataset.is_test.any():
            held_pool = rng.permutation(np.flatnonzero(dataset.is_test))
            train_pool = rng.permutation(np.flatnonzero(~dataset.is_test))
            n_cal = set_size(sizes.calibration, len(held_pool), "calibration")
            n_pop = set_size(sizes.population, len(held_pool), "population")
            calibration, population = held_pool[:n_cal], held_pool[n_cal:n_cal + n_pop]
            test = held_pool[n_cal + n_pop:]
            n_sh = set_size(sizes.shadow_pool, len(train_pool), "shadow_pool")
            shadow_pool, train = train_pool[:n_sh], train_pool[n_sh:]
        else:
            perm = rng.permutation(n)
            counts = [set_size(getattr(sizes, k), n, k) for k in ("test", "calibration", "population", "shadow_pool")]
            cuts = np.cumsum(counts)
            test, calibration, population, shadow_pool = (perm[a:b] for a, b in zip([0, *cuts[:-1]], cuts))
            train = perm[cuts[-1]:]
        old = None
        if old_fraction is not None:
            train = rng.permutation(train)
            n_old = int(round(old_fraction * len(train)))
            if not 1 <= n_old <= len(train) - 2:
                raise DataError(f"data.incremental.old_fraction={old_fraction}: {n_old} old of {len(train)} train "
                                "positions; need at least 1 old and 2 new")
            old, train = np.sort(train[:n_old]), train[n_old:]
        return cls.assemble(dataset, seed, spec, sizes, rng, train, test, calibration, population, shadow_pool,
                            lambda tr, te: f"split sizes {sizes.__dict__} leave {len(tr)} train and {len(te)} test samples",
                            old=old, incremental=None if old is None else {"old_fraction": float(old_fraction)})

    @classmethod
    def assemble(cls, dataset: ImageDataset, seed: int, spec: ForgetSpec, sizes: SplitSizes, rng: np.random.Generator,
                 train: np.ndarray, test: np.ndarray, calibration: np.ndarray, population: np.ndarray,
                 shadow_pool: np.ndarray, too_small: Callable[[np.ndarray, np.ndarray], str],
                 old: np.ndarray | None = None, incremental: dict | None = None) -> "SplitPlan":
        """The plan from its carved parts: mislabeled samples moved out of the held-out sets (into
        ``forget_heldout``), the forget set drawn from ``train``, the retain set, and the forgotten
        class's test samples as ``forget_heldout`` for class forgetting. ``too_small(train, test)`` is the
        message when no test sample or fewer than two train samples are left. ``old``: the incremental
        setting's old positions (kept apart from ``train``; the forget set never comes from them)."""
        forget_heldout = np.zeros(0, dtype=np.int64)
        if spec.kind == "mislabeled":
            if dataset.noisy is None:
                raise DataError("forget spec mislabeled needs corrupted labels: set data.label_noise > 0")
            noisy = dataset.noisy
            forget_heldout = np.concatenate([s[noisy[s]] for s in (test, calibration, population)])
            test, calibration, population = (s[~noisy[s]] for s in (test, calibration, population))
        if len(test) == 0 or len(train) < 2:
            raise DataError(too_small(train, test))
        train = np.sort(train)
        forget = cls._forget(dataset, spec, train, rng)
        retain = np.setdiff1d(train, forget, assume_unique=True)
        if len(retain) == 0:
            raise DataError(f"forget spec {str(spec)!r} leaves an empty retain set")
        if spec.kind in ("class", "class_percentage"):
            forget_heldout = test[dataset.labels.numpy()[test] == spec.cls]
        indices = {"train": train, "test": np.sort(test), "calibration": np.sort(calibration),
                   "population": np.sort(population), "shadow_pool": np.sort(shadow_pool),
                   "forget": np.sort(forget), "retain": retain, "forget_heldout": np.sort(forget_heldout)}
        if old is not None:
            indices["old"] = np.sort(old)
        return cls(dataset.name, dataset.fingerprint, int(seed), str(spec), sizes, dataset.num_classes,
                   indices, forget_class=spec.cls, incremental=incremental)

    @staticmethod
    def _forget(dataset: ImageDataset, spec: ForgetSpec, train: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
        labels = dataset.labels.numpy()
        if spec.cls is not None and not 0 <= spec.cls < dataset.num_classes:
            raise DataError(f"forget spec {spec}: class {spec.cls} out of range 0..{dataset.num_classes - 1}")
        if spec.kind == "random":
            k = int(round(spec.value * len(train))) if isinstance(spec.value, float) else int(spec.value)
            if not 1 <= k < len(train):
                raise DataError(f"forget spec {spec}: selects {k} of {len(train)} train samples; "
                                "need at least 1 and fewer than all")
            forget = rng.choice(train, size=k, replace=False)
        elif spec.kind in ("class", "class_percentage"):
            members = train[labels[train] == spec.cls]
            ratio = 1.0 if spec.kind == "class" else float(spec.value)
            k = int(round(ratio * len(members)))
            forget = rng.choice(members, size=k, replace=False) if k < len(members) else members
        elif spec.kind == "mislabeled":
            forget = train[dataset.noisy[train]]
        else:
            forget = read_indices(str(spec.value))
            if forget.min(initial=0) < 0 or forget.max(initial=0) >= len(dataset):
                raise DataError(f"forget indices out of range 0..{len(dataset) - 1} in {spec.value}")
            if len(np.unique(forget)) != len(forget):
                raise DataError(f"forget indices file {spec.value} has duplicate indices")
            outside = np.setdiff1d(forget, train)
            if len(outside):
                raise DataError(f"{len(outside)} forget indices are not in the train split "
                                f"(first: {int(outside[0])}); forget samples must be training samples")
        if len(forget) == 0:
            raise DataError(f"forget spec {spec} selects an empty forget set")
        return np.sort(np.asarray(forget, dtype=np.int64))

    # --- persistence and checks --------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self.indices)

    @classmethod
    def from_arrays(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "SplitPlan":
        missing = [k for k in SETS if k not in arrays]
        if missing:
            raise ArtifactError(f"split plan is missing index sets {missing}")
        optional = {k: arrays[k] for k in OPTIONAL_SETS if k in arrays}
        return cls(meta["dataset"], meta["dataset_fingerprint"], int(meta["seed"]), meta["forget_spec"],
                   SplitSizes(**meta["sizes"]), int(meta["num_classes"]), {**{k: arrays[k] for k in SETS}, **optional},
                   forget_class=meta.get("forget_class"), hash=meta["hash"], incremental=meta.get("incremental"))

    def check_dataset(self, dataset: ImageDataset) -> None:
        if dataset.fingerprint != self.dataset_fingerprint:
            raise ArtifactError(f"split plan was made for dataset {self.dataset} with fingerprint "
                                f"{self.dataset_fingerprint[:12]}, but the loaded data has {dataset.fingerprint[:12]}")
