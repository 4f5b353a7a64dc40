"""Read what a report needs from a run directory, without a config and without running anything.

:func:`load_run` checks that the directory is an expunge run and gathers the manifests, the audit
tables, the relearning curves, sweeps and stage timings; per-sample scores and cached model outputs
are read on demand (hash-checked by the store) through :class:`RunData`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from expunge.errors import ArtifactError
from expunge.report.timings import recorded_config, run_timings
from expunge.store import Artifact, Store

#: what marks a directory as an expunge run
RUN_KINDS = ("split", "models", "audit", "sweeps")


@dataclass
class RunData:
    """One run's stored results; the audited models in the audit's order (original, retrain, methods)."""

    store: Store
    plan: dict[str, Any] | None
    split: Artifact | None
    audit: Artifact | None
    model_manifests: dict[str, dict[str, Any]]

    @property
    def uri(self) -> str:
        """The run's location: the URI for remote storage, the absolute path for a local one."""
        return self.store.uri if "://" in self.store.uri else self.store.fs.root

    @cached_property
    def leaderboard(self) -> pd.DataFrame | None:
        return self.audit.read("leaderboard.parquet") if self.audit is not None else None

    @cached_property
    def audited(self) -> list[str]:
        """Model keys in the audit, in its order."""
        if self.audit is None:
            return []
        return list((self.audit.manifest.get("config") or {}).get("models") or self.leaderboard["model"])

    @cached_property
    def kept_audits(self) -> list[tuple[str, str]]:
        """Every audit kept in the run, ``(key, created)``, oldest first (``audit/kept-<hash>``: one per
        distinct set of models and settings; ``audit/results`` is a copy of the current one)."""
        kept = [(k, _manifest(self.store, "audit", k).get("created", "")) for k in self.store.keys("audit")
                if k.startswith("kept-")]
        return sorted(kept, key=lambda kc: kc[1])

    @cached_property
    def audit_config(self) -> dict[str, Any]:
        return (self.audit.manifest.get("config") or {}).get("audit", {}) if self.audit is not None else {}

    @cached_property
    def relearn_curves(self) -> dict[str, Any]:
        if self.audit is None or "relearn_curves.json" not in self.audit.manifest["files"]:
            return {}
        return self.audit.read("relearn_curves.json")

    @property
    def forget_class(self) -> int | None:
        return (self.plan or {}).get("forget_class")

    def method(self, key: str) -> str:
        """A model's method name (``retrain``, ``salun``, ...; the key itself when not recorded)."""
        return self.model_manifests.get(key, {}).get("method") or key

    def scores(self, key: str, metric: str, name: str) -> np.ndarray | None:
        """Per-sample audit scores ``<key>__<metric>__<name>.npy``, or None when not stored."""
        file = f"{key}__{metric}__{name}.npy"
        if self.audit is None or file not in self.audit.manifest["files"]:
            return None
        return self.audit.read(file)

    def outputs(self, key: str, split: str) -> tuple[np.ndarray, np.ndarray] | None:
        """A model's cached (logits, labels) on ``split`` (calibration, forget, retain, test...)."""
        art = self._outputs(key)
        names = (f"logits_{split}.npy", f"labels_{split}.npy")
        if art is None or any(n not in art.manifest["files"] for n in names):
            return None
        return art.read(names[0]), art.read(names[1])

    def _outputs(self, key: str) -> Artifact | None:
        return self.store.get("outputs", key)

    @cached_property
    def sweeps(self) -> dict[str, Artifact]:
        return {name: self.store.get("sweeps", name) for name in self.store.keys("sweeps")}

    @cached_property
    def timings(self) -> list[dict[str, Any]]:
        return run_timings(self.store)

    @cached_property
    def config(self) -> dict[str, Any] | None:
        """The whole experiment config, when the pipeline recorded it with its stage timings."""
        return recorded_config(self.store)

    @cached_property
    def fleets(self) -> dict[str, dict[str, Any]]:
        """Fleet manifests with their member models' manifests (``members``)."""
        out = {}
        for name in self.store.keys("fleets"):
            art = self.store.get("fleets", name)
            members = art.read("members.json") if "members.json" in art.manifest["files"] else []
            out[name] = {**art.manifest, "members": {k: _manifest(self.store, "models", k) for k in members}}
        return out


def _manifest(store: Store, kind: str, key: str) -> dict[str, Any]:
    try:
        art = store.get(kind, key)
    except ArtifactError:
        return {}
    return art.manifest if art is not None else {}


def check_run_dir(store: Store) -> None:
    """Refuse a directory that does not exist or holds no expunge artifacts (one-line error)."""
    fs = store.fs
    if not fs.isdir(fs.root):
        raise ArtifactError(f"no run directory {store.uri}: it does not exist (run `expunge run CONFIG` first)")
    if not any(fs.isdir(fs.join(kind)) for kind in RUN_KINDS):
        raise ArtifactError(f"{store.uri} is not an expunge run directory (it has none of "
                            f"{', '.join(k + '/' for k in RUN_KINDS)})")


def load_run(run_dir: str) -> RunData:
    """The run at ``run_dir`` (a local path or a pyarrow URI), checked to exist."""
    store = Store(run_dir)
    check_run_dir(store)
    split = store.get("split", "plan")
    models = {k: _manifest(store, "models", k) for k in store.keys("models")}
    return RunData(store=store, plan=split.read("plan.json") if split is not None else None, split=split,
                   audit=store.get("audit", "results"), model_manifests=models)
