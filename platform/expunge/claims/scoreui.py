"""ScoreUI's protocol on a stored run: partial-membership checkpoints scored by the online attacks.

After the IAM paper's ``new_records_internal.py`` (Table 2: one shadow): a model initialised from an
OUT shadow (it never saw the target's training set) is trained on the training set; checkpoint b of
B is the model after b / B of that training (:func:`expunge.audit.scoreui.partial_membership_checkpoints`)
and b / B is every training sample's ground-truth degree of membership. Each checkpoint plays the
audited model, with the run's original as the IN reference and one *other* OUT shadow as the OUT
reference (the reference code can pick the initialising shadow as the scorer too; here it never
does). The membership scores of the training samples (retain and forget) over all checkpoints are
compared with b / B by :func:`expunge.metrics.scoreui.scoreui`; its Spearman is the paper's headline.
"""
from __future__ import annotations

import math

import numpy as np

from expunge.audit.scoreui_checkpoints import partial_membership_checkpoints
from expunge.audit.stage import metric_values
from expunge.errors import ConfigError
from expunge.experiment import Experiment
from expunge.fleet.members import audit_shadow_keys
from expunge.metrics import AuditInputs
from expunge.metrics.scoreui import scoreui

ONLINE_ATTACKS = ("lira", "rmia", "iam")


def scoreui_spearman(ex: Experiment, breaks: int = 5, attacks: tuple[str, ...] = ONLINE_ATTACKS
                     ) -> dict[str, float]:
    """ScoreUI Spearman of each attack on ``ex``'s stored run (original and >= 2 audit shadows).

    The checkpoints follow the run's training recipe, with its epochs rounded up to a multiple of
    ``breaks``."""
    keys = audit_shadow_keys(ex)
    if len(keys) < 2:
        raise ConfigError("ScoreUI needs audit.shadows >= 2: one to start the checkpoints from, one to score with")
    train_cfg = ex.cfg.train.model_copy(update={"epochs": breaks * math.ceil(ex.cfg.train.epochs / breaks)})
    init = ex.load_model(keys[0])
    checkpoints = partial_membership_checkpoints(init, ex.data, ex.plan.train, train_cfg, breaks=breaks,
                                                 seed=ex.cfg.seed)
    original = ex.outputs("original")
    scorer = ex.outputs(keys[1])
    members = ex.store.get("models", keys[1]).read("members.npy")
    scores: dict[str, list[np.ndarray]] = {a: [] for a in attacks}
    model = ex.model_factory().to(ex.device)
    for _, state in checkpoints:
        model.load_state_dict(state)
        inputs = AuditInputs(ex.outputs_of(model.eval()), original, [scorer], ex.plan.forget_class, [members])
        _, per_sample = metric_values(inputs, list(attacks), ex.cfg.audit.params)
        for a in attacks:
            scores[a].append(np.concatenate([per_sample[f"{a}__{a}_retain"], per_sample[f"{a}__{a}_forget"]]))
    fractions = np.array([f for f, _ in checkpoints])
    return {a: scoreui(np.stack(s), fractions)["spearman"] for a, s in scores.items()}
