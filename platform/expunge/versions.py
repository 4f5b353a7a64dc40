"""Code versions of the stages that produce artifacts.

Every stored artifact records the version of the stage that made it, and a stage reuses an artifact
only when that version is the current one: bump a stage's number in the same change that alters
what the stage produces (a new training loop, a fixed method, another output layout), and every
artifact it made before is refused with the two versions named (``--rebuild`` recomputes them).
The package version is recorded beside it for the reader, but does not invalidate anything: a release
that changes no stage keeps every run reusable.
"""
from __future__ import annotations

STAGE_VERSIONS: dict[str, int] = {
    "split": 2,     # SplitPlan.create (2: forget_heldout, mislabeled)
    "train": 1,     # train/engine.py (originals, retrains, shadows, fleet members)
    "unlearn": 1,   # unlearn/ (the shared loop and every method)
    "outputs": 2,   # per-sample logits on the audit sets (2: forget_heldout)
    "fleet": 1,     # membership matrices
    "audit": 3,     # audit/stage.py: the metric tables of audited models (2: IAM Table 8 means and verdict;
                    # 3: bootstrap intervals by vectorised resampling)
    "ledger": 1,    # audit/ledger.py + stages/ledger.py: the sequential-unlearning ledger's tables
}


def code_version(stage: str) -> str:
    """``"<stage>/<n>"``, the value a stage writes to and expects in ``manifest.code_version``."""
    return f"{stage}/{STAGE_VERSIONS[stage]}"
