"""Tune's pickled sweep state is loaded only when it is exactly what the sweep saved."""
from __future__ import annotations

import pickle

import pytest

from expunge.errors import CorruptArtifactError
from expunge.sweep.tune_state import SEAL, check_seal, seal


class _Payload:
    """Unpickling this creates a file: the proof that planted code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _state(tmp_path):
    root = tmp_path / "tune" / "finetune"
    (root / "trial_0").mkdir(parents=True)
    (root / "tuner.pkl").write_bytes(pickle.dumps({"state": 1}))
    (root / "experiment_state-0.json").write_text("{}")
    (root / "trial_0" / "params.pkl").write_bytes(pickle.dumps({"lr": 0.1}))
    return root


def test_sealed_state_passes_and_every_change_is_refused(tmp_path):
    root = _state(tmp_path)
    seal(str(root))
    check_seal(str(root))
    assert (root / SEAL).is_file()
    for change in ("edit", "add", "remove"):
        root = _state(tmp_path / change)
        seal(str(root))
        if change == "edit":
            (root / "trial_0" / "params.pkl").write_bytes(pickle.dumps({"lr": 0.2}))
        elif change == "add":
            (root / "trial_0" / "extra.pkl").write_bytes(b"x")
        else:
            (root / "experiment_state-0.json").unlink()
        with pytest.raises(CorruptArtifactError, match="added, removed or changed"):
            check_seal(str(root))


def test_unsealed_or_remote_state_is_refused(tmp_path):
    with pytest.raises(CorruptArtifactError, match="has no seal"):
        check_seal(str(_state(tmp_path)))
    with pytest.raises(CorruptArtifactError, match="remote storage"):
        check_seal("s3://bucket/runs/digits/tune/small/finetune")


def test_planted_tuner_pickle_never_runs(tmp_path):
    """A replaced tuner.pkl whose unpickling runs code is refused before Tune reads it."""
    pytest.importorskip("ray.tune")
    from expunge.config import SweepConfig, SweepMethod
    from expunge.sweep.runner import _tuner

    root = _state(tmp_path)
    seal(str(root))
    marker = tmp_path / "pwned"
    (root / "tuner.pkl").write_bytes(pickle.dumps(_Payload(str(marker))))
    sweep = SweepConfig(methods=[SweepMethod(name="finetune")])
    with pytest.raises(CorruptArtifactError, match="tuner.pkl"):
        _tuner(lambda cfg: None, {}, sweep, sweep.methods[0], str(root), str(tmp_path / "tune"), 0, None, 1)
    assert not marker.exists()
