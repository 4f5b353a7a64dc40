"""The IAM paper's shadow robustness settings: shadows of another dataset (``audit.shadow_data``,
Table 3) and of another architecture (``audit.shadow_model``, Fig. 4).

Target: scikit-learn's digits (1x8x8, 10 classes) with an ``mlp``; OOD shadows train on seeded
synthetic 1x8x8 images of 10 classes; the other architecture is the small ``cnn``. Each option must
change the shadows' store keys and manifests, give IAM / LiRA / RMIA numbers, and a bad value is one
error line (exit code 2) before any model is made.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import save_file

from expunge.cli import main

DIGITS = "configs/experiments/digits.yaml"
SYNTHETIC = "{dataset: synthetic, options: {n: 400, num_classes: 10, shape: [1, 8, 8], seed: 3}}"
#: short training, the membership attacks, one retrained model
BASE = ["model.name=mlp", "train.epochs=3", "unlearn.methods=[retrain]", "audit.shadows=2",
        "audit.metrics=[lira,rmia,iam]"]


def _config(storage: Path, *extra: str):
    from expunge.resolve import load_config

    return load_config(DIGITS, [f"storage={storage}", *BASE, *extra])


def _run(repo_root: Path, storage: Path, monkeypatch, *extra: str) -> int:
    monkeypatch.chdir(repo_root)
    return main(["run", DIGITS, f"storage={storage}", *BASE, *extra, "--local"])


def _manifest(run: Path, kind: str, key: str) -> dict:
    return json.loads((run / kind / key / "manifest.json").read_text())


def _board(run: Path):
    import pandas as pd

    return pd.read_csv(run / "audit" / "results" / "leaderboard.csv").set_index("method")


def test_ood_shadows_train_on_the_other_dataset_and_are_out_for_every_target_sample(repo_root, tmp_path,
                                                                                     monkeypatch):
    from expunge.audit.stage import reference_inputs
    from expunge.data import load_dataset
    from expunge.experiment import Experiment
    from expunge.fleet.members import audit_shadow_keys

    storage = tmp_path / "runs"
    assert _run(repo_root, storage, monkeypatch, f"audit.shadow_data={SYNTHETIC}") == 0
    run = storage / "digits"
    cfg = _config(storage, f"audit.shadow_data={SYNTHETIC}")
    ex = Experiment(cfg, verbose=False)
    keys = audit_shadow_keys(ex)
    in_distribution = audit_shadow_keys(Experiment(_config(storage), verbose=False))
    assert not set(keys) & set(in_distribution)  # never the in-distribution shadows' keys
    # another shadow dataset (other loader options) is another fleet again
    other = audit_shadow_keys(Experiment(_config(storage, "audit.shadow_data={dataset: synthetic, options: "
                                                          "{n: 300, num_classes: 10, shape: [1, 8, 8]}}"),
                                         verbose=False))
    assert not set(other) & set(keys)
    synthetic = load_dataset("synthetic", n=400, num_classes=10, shape=[1, 8, 8], seed=3)
    for key in keys:
        config = _manifest(run, "models", key)["config"]
        assert config["shadow_data"]["dataset"] == "synthetic"
        assert config["shadow_data"]["fingerprint"] == synthetic.fingerprint
        art = ex.store.get("models", key)
        members = art.read("members.npy")
        assert len(members) == round(0.8 * 400) and members.max() < len(synthetic)
        np.testing.assert_array_equal(art.read("own_ids.npy"), members)  # IAM-Off's anchor samples
        np.testing.assert_array_equal(art.read("own_labels.npy"), synthetic.labels.numpy()[members])
    fleet = run / "fleets" / keys[0].split("/")[0].removeprefix("fleet-")
    membership = np.load(fleet / "membership.npy")
    assert membership.shape == (2, len(ex.dataset)) and not membership.any()  # OUT for every target position
    # the audit's references: shadow outputs on the target's sets, the anchor on their own samples
    inputs = reference_inputs(ex)(ex.outputs("original"))
    np.testing.assert_array_equal(inputs.shadows[0]["retain"].ids, ex.plan.retain)
    np.testing.assert_array_equal(inputs.shadow_members[0], ex.store.get("models", keys[0]).read("members.npy"))
    np.testing.assert_array_equal(inputs.shadows[0]["shadow_pool"].ids, inputs.shadow_members[0])
    board = _board(run)
    for column in ("iam_binui_auc", "iam_forget_vs_heldout_auc", "lira_binui_auc", "rmia_binui_auc"):
        assert np.isfinite(board.loc[["original", "retrain"], column]).all(), column


def test_shadows_of_another_architecture(repo_root, tmp_path, monkeypatch):
    from expunge.experiment import Experiment
    from expunge.fleet.members import audit_shadow_keys
    from expunge.models.small import SmallCNN

    storage = tmp_path / "runs"
    assert _run(repo_root, storage, monkeypatch, "audit.shadow_model={name: cnn}") == 0
    run = storage / "digits"
    ex = Experiment(_config(storage, "audit.shadow_model={name: cnn}"), verbose=False)
    keys = audit_shadow_keys(ex)
    assert not set(keys) & set(audit_shadow_keys(Experiment(_config(storage), verbose=False)))
    for key in keys:
        config = _manifest(run, "models", key)["config"]
        assert config["model"]["name"] == "cnn" and config["shadow_model"]["name"] == "cnn"
        assert "shadow_data" not in config
        # in distribution: trained on the target's shadow pool
        assert set(ex.store.get("models", key).read("members.npy")) <= set(ex.plan.shadow_pool)
        assert isinstance(ex.load_model(key), SmallCNN)  # rebuilt as its manifest says, not as the target's mlp
    assert _manifest(run, "models", "original")["config"]["model"]["name"] == "mlp"
    board = _board(run)
    for column in ("iam_binui_auc", "lira_binui_auc", "rmia_binui_auc"):
        assert np.isfinite(board.loc[["original", "retrain"], column]).all(), column


BAD = [
    (["audit.shadow_data={dataset: cifar11}"], ["audit.shadow_data.dataset", "cifar11"]),
    (["audit.shadow_data={dataset: synthetic, options: {num_classes: 5, shape: [1, 8, 8]}}"],
     ["audit.shadow_data", "5 classes", "10"]),
    (["audit.shadow_data={dataset: synthetic, options: {num_classes: 10, shape: [3, 8, 8]}}"],
     ["audit.shadow_data", "shape"]),
    (["audit.shadow_data={dataset: synthetic, colour: red}"], ["audit.shadow_data.colour"]),
    (["audit.shadow_data={dataset: synthetic, options: {num_classes: 10, shape: [1, 8, 8]}}", "audit.shadows=0",
      "audit.metrics=[accuracy]"], ["audit.shadow_data", "audit.shadows"]),
    (["audit.shadow_model={name: resnet19}"], ["audit.shadow_model.name", "resnet19"]),
    (["audit.shadow_model={name: cnn, kwargs: {depth: 9}}"], ["audit.shadow_model", "cnn"]),
]


@pytest.mark.parametrize("extra,needles", BAD, ids=[" ".join(e)[:60] for e, _ in BAD])
def test_bad_shadow_settings_are_one_line_before_any_compute(repo_root, tmp_path, monkeypatch, capsys, extra,
                                                             needles):
    code = _run(repo_root, tmp_path / "runs", monkeypatch, *extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("expunge: error:"), err
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    made = [p for p in tmp_path.rglob("*") if {"models", "outputs", "split"} & set(p.parts)]
    assert not made, made


def _shadow_folder(ex, folder: Path, membership: np.ndarray) -> Path:
    from expunge.experiment import state_tensors

    folder.mkdir()
    save_file(state_tensors(ex.model_factory()), str(folder / "member_0000.safetensors"))
    np.save(folder / "membership.npy", membership)
    return folder


def test_imported_shadows_of_another_dataset_need_a_declared_shadow_data(tmp_path):
    from expunge.errors import ConfigError
    from expunge.experiment import Experiment
    from expunge.stages.audit_model import read_shadows

    ex = Experiment(_config(tmp_path, "audit.shadows=1"), verbose=False)
    plan = ex.create_plan()
    # a shadow trained on another dataset: no target position in its row
    folder = _shadow_folder(ex, tmp_path / "ood", np.zeros((1, len(ex.dataset)), bool))
    with pytest.raises(ConfigError, match="audit.shadow_data") as err:
        read_shadows(ex, plan, str(folder))
    assert "\n" not in str(err.value)
    # declared: membership.npy indexes the shadow dataset's positions, every target position is OUT
    declared = Experiment(_config(tmp_path, "audit.shadows=1", f"audit.shadow_data={SYNTHETIC}"), verbose=False)
    rows = np.zeros((1, 400), bool)
    rows[0, :300] = True
    shadows = read_shadows(declared, plan, str(_shadow_folder(ex, tmp_path / "declared", rows)))
    assert shadows.config(0)["shadow_data"]["dataset"] == "synthetic"
    np.testing.assert_array_equal(shadows.members(0), np.arange(300))
    # ... and then a matrix over the target's positions is the wrong shape
    with pytest.raises(ConfigError, match=r"\[1, 400\]"):
        read_shadows(declared, plan, str(folder))
