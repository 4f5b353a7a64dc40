"""model.weights: importing the user's trained original, safely."""
from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from expunge.resolve import load_config
from expunge.errors import ArtifactError, ConfigError
from expunge.experiment import Experiment, state_tensors
from expunge.models import create_model


def _cfg(tmp_path, weights, *extra):
    return load_config(None, [f"storage={tmp_path}/runs", "train.epochs=2", f"model.weights={weights}", *extra])


def test_imported_original_is_stored_and_audited_not_trained(tmp_path, digits):
    torch.manual_seed(5)
    model = create_model("cnn", digits.num_classes, digits.in_shape)
    state = {f"module.{k}": v for k, v in state_tensors(model).items()}  # as DDP saves it
    save_file(state, str(tmp_path / "mine.safetensors"))
    ex = Experiment(_cfg(tmp_path, tmp_path / "mine.safetensors"), verbose=False)
    ex.preflight([])
    art = ex.original()
    assert art.manifest["config"]["imported_sha256"] and art.manifest["method"] == "original (imported)"
    loaded = ex.load_model("original")
    for k, v in state_tensors(model).items():
        assert torch.equal(loaded.state_dict()[k].cpu(), v), k
    # a different file under the same path is a different original: refused, never silently reused
    torch.manual_seed(6)
    save_file(state_tensors(create_model("cnn", digits.num_classes, digits.in_shape)), str(tmp_path / "mine.safetensors"))
    with pytest.raises(ArtifactError, match="imported_sha256"):
        Experiment(_cfg(tmp_path, tmp_path / "mine.safetensors"), verbose=False).preflight([])


def test_weights_only_torch_checkpoint_is_accepted(tmp_path, digits):
    model = create_model("cnn", digits.num_classes, digits.in_shape)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "ckpt.pt")
    Experiment(_cfg(tmp_path, tmp_path / "ckpt.pt"), verbose=False).preflight([])


class Evil:
    def __reduce__(self):
        return (print, ("this ran at load time",))


@pytest.mark.parametrize("case,message", [
    ("pickle", "holds pickled objects"),
    ("classes", "the data has 10 classes, the checkpoint.s head 100"),
    ("missing", "no such file"),
    ("suffix", "has suffix"),
    ("garbage", "not a readable safetensors file"),
    ("wrong_arch", "does not fit model"),
])
def test_bad_weights_are_refused_before_compute(tmp_path, digits, case, message):
    path = tmp_path / "w.pt"
    if case == "pickle":
        torch.save({"state_dict": Evil()}, path)  # a checkpoint that would run code when unpickled
    elif case == "classes":
        save_file(state_tensors(create_model("cnn", 100, digits.in_shape)), str(tmp_path / "w.safetensors"))
        path = tmp_path / "w.safetensors"
    elif case == "missing":
        path = tmp_path / "absent.safetensors"
    elif case == "suffix":
        path = tmp_path / "w.pkl"
        path.write_bytes(pickle.dumps({"a": 1}))
    elif case == "garbage":
        path = tmp_path / "w.safetensors"
        path.write_bytes(b"not a safetensors file")
    else:
        save_file(state_tensors(create_model("mlp", digits.num_classes, digits.in_shape)), str(tmp_path / "w.safetensors"))
        path = tmp_path / "w.safetensors"
    ex = Experiment(_cfg(tmp_path, path), verbose=False)
    with pytest.raises(ConfigError, match=message) as err:
        ex.preflight([])
    assert "model.weights" in str(err.value)
    assert not (tmp_path / "runs" / "digits" / "models").exists()  # nothing trained or stored
