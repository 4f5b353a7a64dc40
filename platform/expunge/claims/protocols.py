"""The protocols behind ``expunge reproduce``: which experiment measures which seed claim.

A protocol is a repository config plus overrides, run once per seed by the pipeline (every model
stored, every table kept). Four protocols cover the vision claims:

* ``mislabeled``: the memorising benchmark (``digits_mislabeled.yaml``: 10% corrupted labels, the
  forget set = the corrupted training samples) with retrain, IEU, fine-tuning and GA; claims (a),
  (e) and (f) (the ScoreUI checkpoints start from its shadows);
* ``random``: the well-generalising case (``digits.yaml``, a random 10% forget set) with
  fine-tuning, random labels and SalUn, each with and without the CPU hinge; claims (a) and (c);
* ``one_shadow`` and ``one_shadow_memorising``: retraining audited with a single OUT shadow, on the
  random case and on random forgetting from the corrupted dataset; claim (b);
* ``class``: class 3 forgotten with PRU and the forget-data-only baselines (GA, boundary shrink,
  boundary expanding); claim (d).

``--quick`` trains 15 epochs and 2 audit shadows instead of 30 and 4: for smoke runs, not for the
README's table.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Protocol:
    name: str
    config: str                  # relative to the repository's configs/ folder
    overrides: tuple[str, ...]
    purpose: str

    def arguments(self, storage: str, seeds: list[int], quick: bool) -> list[str]:
        """The config overrides that run this protocol under ``storage`` for ``seeds``."""
        extra = [f"storage={storage}", f"name={self.name}", f"seeds=[{', '.join(map(str, seeds))}]"]
        if quick:
            extra.append("train.epochs=15")
            if not any(o.startswith("audit.shadows=") for o in self.overrides):
                extra.append("audit.shadows=2")
        return [*self.overrides, *extra]


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("mislabeled", "experiments/digits_mislabeled.yaml",
             ("unlearn.methods=[retrain, ieu, finetune, ga]",),
             "memorising benchmark: retrain vs original (a), IEU's RCD (e), ScoreUI checkpoints (f)"),
    Protocol("random", "experiments/digits.yaml",
             ("unlearn.methods=[retrain, finetune, rl, salun, finetune+cpu, rl+cpu, salun+cpu]",
              "audit.metrics=[accuracy, cr, lira, rmia, iam]"),
             "well-generalising random forgetting: retrain vs original (a), CPU (c)"),
    Protocol("one_shadow", "experiments/digits.yaml",
             ("unlearn.methods=[retrain]", "audit.shadows=1", "audit.metrics=[accuracy, lira, rmia, iam]"),
             "IAM vs LiRA vs RMIA with one shadow, random forgetting (b)"),
    Protocol("one_shadow_memorising", "experiments/digits_mislabeled.yaml",
             ("data.forget=random:0.1", "unlearn.methods=[retrain]", "audit.shadows=1",
              "audit.metrics=[accuracy, lira, rmia, iam]"),
             "IAM vs LiRA vs RMIA with one shadow, random forgetting from the corrupted dataset (b)"),
    Protocol("class", "experiments/digits_class.yaml",
             ("unlearn.methods=[retrain, pru, ga, boundary_shrink, boundary_expanding]",
              "audit.metrics=[accuracy, relearn]", "audit.shadows=0"),
             "class forgetting under the relearning test: PRU vs forget-data-only baselines (d)"),
)}
