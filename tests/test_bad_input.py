"""A table of invalid inputs across the CLI, YAML, data and model files: each exits non-zero with one
line naming the problem, before any training, and leaves nothing half-written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from expunge.cli import main

DIGITS = "configs/experiments/digits.yaml"


def _files(tmp: Path) -> dict[str, Path]:
    """Bad user files, written fresh for each case."""
    from PIL import Image

    np.save(tmp / "oob.npy", np.array([1, 2, 99999]))
    np.save(tmp / "dup.npy", np.array([1, 1, 2]))
    np.save(tmp / "nan.npy", np.array([1.0, np.nan]))
    np.save(tmp / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp / "twod.npy", np.array([[1, 2], [3, 4]]))
    (tmp / "empty.npy").write_bytes(b"")
    (tmp / "secret.txt").write_text("1 2 3\nroot:x:0:0:root:/root:/bin/bash\n")
    (tmp / "latin1.txt").write_bytes("1 2 \xe9\n".encode("latin-1"))
    (tmp / "bad.yaml").write_text("name: [unclosed\n")
    (tmp / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    (tmp / "empty.yaml").write_text("")
    (tmp / "comments.yaml").write_text("# nothing here\n")
    (tmp / "afile").write_text("not a directory")
    (tmp / "random.pt").write_bytes(bytes(range(7, 250)))
    (tmp / "list.yaml").write_text("- a\n- b\n")
    imgs = tmp / "imgs"
    for c in "ab":
        (imgs / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(imgs / c / f"{i}.png")
    (imgs / "a" / "fake.png").write_text("this is not an image")
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": Evil()}, tmp / "evil.pt")
    from safetensors.torch import save_file

    from expunge.experiment import state_tensors
    from expunge.models import create_model

    save_file(state_tensors(create_model("cnn", 100, (1, 8, 8))), str(tmp / "c100.safetensors"))
    return {"imgs": imgs}


class Evil:
    def __reduce__(self):
        return (print, ("unpickling ran code",))


#: (argv after `expunge`, substrings the one error line must contain); {tmp} is the case's folder
CASES = [
    (["run", DIGITS, "foo=1"], ["foo"]),
    (["run", DIGITS, "data.dataset=cifar11"], ["data.dataset", "cifar11"]),
    (["run", DIGITS, "model.name=resnet19"], ["model.name", "resnet19"]),
    (["run", DIGITS, "unlearn.methods=[finetunee]"], ["finetunee"]),
    (["run", DIGITS, "train.epochs=abc"], ["train.epochs"]),
    (["run", DIGITS, "train.epochs=0"], ["train.epochs"]),
    (["run", DIGITS, "train.lr=-1"], ["train.lr"]),
    (["run", DIGITS, "train.recipe=turbo"], ["turbo"]),
    (["run", DIGITS, "data.sizes.test=1.5"], ["data.sizes.test"]),
    (["run", DIGITS, "data.forget=random:1.5"], ["data.forget", "random:1.5"]),
    (["run", DIGITS, "data.forget=random:0"], ["data.forget", "random:0"]),
    (["run", DIGITS, "data.forget=class_percentage:3:1.5"], ["data.forget", "ratio"]),
    (["run", DIGITS, "data.forget=class:12"], ["class 12", "out of range"]),
    (["run", DIGITS, "data.forget=indices:{tmp}/absent.npy"], ["absent.npy"]),
    (["run", DIGITS, "data.forget=indices:{tmp}/oob.npy"], ["out of range", "oob.npy"]),
    (["run", DIGITS, "data.forget=indices:{tmp}/dup.npy"], ["duplicate", "dup.npy"]),
    (["run", DIGITS, "data.forget=indices:{tmp}/nan.npy"], ["NaN", "nan.npy"]),
    (["run", DIGITS, "data.forget=indices:{tmp}/objects.npy"], ["objects.npy"]),
    (["run", DIGITS, "data.forget=indices:{tmp}/twod.npy"], ["twod.npy", "2-D", "1-D"]),
    (["run", DIGITS, "data.forget=indices:{tmp}/empty.npy"], ["empty.npy", "is empty"]),
    (["run", DIGITS, "data.forget=indices:{tmp}/secret.txt"], ["secret.txt", "line 2"]),
    (["run", DIGITS, "data.forget=indices:{tmp}/latin1.txt"], ["latin1.txt", "not UTF-8"]),
    (["run", DIGITS, "audit.metrics=[accuracy,lirra]"], ["lirra"]),
    (["run", DIGITS, "audit.shadows=0"], ["audit.shadows"]),
    (["run", DIGITS, "data.sizes.shadow_pool=0"], ["data.sizes.shadow_pool"]),
    (["run", DIGITS, "audit.params={rmia: {gama: 1}}"], ["audit.params.rmia.gama"]),
    (["run", DIGITS, "audit.params={iam: {scoring: bogus}}"], ["audit.params.iam.scoring", "'kde'", "'bogus'"]),
    (["run", DIGITS, "audit.params={rmia: {gamma: abc}}"], ["audit.params.rmia.gamma", "valid number"]),
    (["run", DIGITS, "audit.params={cr: {alphas: [0.0001]}}"], ["alpha=0.0001", "calibration"]),
    (["run", DIGITS, "unlearn.methods=[{name: salun, params: {mask: 0.5}}]"], ["salun", "mask"]),
    (["run", DIGITS, "unlearn.methods=[{name: salun, params: {mask_ratio: 1.5}}]"], ["salun", "mask_ratio"]),
    (["run", DIGITS, "unlearn.methods=[pru]"], ["pru", "class"]),
    (["run", DIGITS, "device=tpu"], ["device"]),
    (["run", DIGITS, "name=../evil"], ["name"]),
    (["run", DIGITS, "storage={tmp}/runs/../../escape", "name=a/b"], ["name"]),
    (["run", "{tmp}/absent.yaml"], ["not found", "absent.yaml"]),
    (["run", "{tmp}/bad.yaml"], ["not valid YAML", "bad.yaml"]),
    (["run", "{tmp}/list.yaml"], ["mapping", "list.yaml"]),
    (["run", "{tmp}/latin1.yaml"], ["latin1.yaml", "not UTF-8"]),
    (["run", "{tmp}/empty.yaml"], ["empty.yaml", "is empty"]),
    (["run", "{tmp}/comments.yaml"], ["comments.yaml", "no settings"]),
    (["run", DIGITS, "storage={tmp}/afile"], ["storage=", "afile is a file"]),
    (["run", DIGITS, "storage={tmp}/afile/runs"], ["storage=", "afile is a file"]),
    (["run", DIGITS, "=5"], ["override", "=5"]),
    (["run", DIGITS, "data.dataset=cifar10", "data.root={tmp}/no-cifar"], ["cifar10", "no-cifar"]),
    (["run", DIGITS, "data.dataset=imagefolder", "data.root={tmp}/imgs"], ["fake.png"]),
    (["run", DIGITS, "model.weights={tmp}/c100.safetensors"], ["model.weights", "10 classes"]),
    (["run", DIGITS, "model.weights={tmp}/evil.pt"], ["model.weights", "pickled objects"]),
    (["run", DIGITS, "model.weights={tmp}/random.pt"], ["model.weights", "random.pt", "not a torch checkpoint"]),
    (["fleet", DIGITS, "fleet.kind=unlearned", "fleet.size=2"], ["fleet.method"]),
    (["fleet", DIGITS, "fleet.size=-1"], ["fleet.size"]),
    (["run", DIGITS, "scaling.num_workers=0"], ["scaling.num_workers"]),
    (["run", DIGITS, "unlearn.methods=[]"], ["unlearn.methods is empty"]),
    (["run", DIGITS, "audit.metrics=[]", "audit.shadows=0"], ["audit.metrics is empty"]),
    (["sweep", DIGITS, "sweep.methods=[{name: ieu, space: {sigma: {loguniform: [-1, 1]}}}]"], ["sigma", "loguniform"]),
    (["sweep", DIGITS, "sweep.methods=[{name: ieu, space: {sigmaa: {uniform: [0, 1]}}}]"], ["sigmaa", "unknown"]),
    (["unlearn", "--method", "nope"], ["nope"]),
    (["report", "{tmp}/no-run"], ["no-run"]),
]
if not torch.cuda.is_available():
    CASES.append((["run", DIGITS, "device=cuda"], ["device=cuda", "CUDA is not available"]))


@pytest.mark.parametrize("argv,needles", CASES, ids=[" ".join(a[:1] + a[2:])[:60] for a, _ in CASES])
def test_invalid_input_is_one_line_and_nothing_is_made(tmp_path, repo_root, monkeypatch, capsys, argv, needles):
    _files(tmp_path)
    monkeypatch.chdir(repo_root)
    storage = tmp_path / "runs"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] in ("run", "fleet", "sweep", "unlearn") and not any(a.startswith("storage=") for a in argv):
        argv.append(f"storage={storage}")
    code = main([*argv, "--local"] if argv[0] not in ("report", "sweep") else argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("expunge: error:"), err
    for needle in [n.replace("{tmp}", str(tmp_path)) for n in needles]:
        assert needle in err[0], (needle, err[0])
    assert "root:x" not in err[0]  # a file's content is never echoed (it may be any file)
    # before any training: no model, no outputs, and no half-written (staging) directory anywhere
    made = [p for p in tmp_path.rglob("*") if "models" in p.parts or "outputs" in p.parts or ".tmp" in p.name
            or "staging" in p.name]
    if any(a.startswith(("device=", "model.weights=")) for a in argv):  # refused before the split is made
        made += [p for p in tmp_path.rglob("*") if "split" in p.parts]
    assert not made, made
    assert not (repo_root / "runs" / "escape").exists()


def test_the_table_is_at_least_thirty_strong():
    assert len(CASES) >= 30


@pytest.mark.parametrize("code", ["ENOSPC", "EROFS", "EACCES"])
def test_a_refused_write_is_one_line_naming_the_artifact_and_keeps_finished_ones(tmp_path, repo_root, monkeypatch,
                                                                                capsys, code):
    """The disk fills up (or turns read-only) while the original's weights are written: one line
    naming that artifact, exit 2, no staging left, and the split written before it still verifies."""
    import errno
    import os

    from expunge.store import Store
    from expunge.store.fs import LocalFS

    real = LocalFS.write_bytes

    def failing(self, path, data):
        if "models" in Path(path).parts:
            raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)), path)
        return real(self, path, data)

    monkeypatch.setattr(LocalFS, "write_bytes", failing)
    monkeypatch.chdir(repo_root)
    storage = tmp_path / "runs"
    rc = main(["run", DIGITS, "--local", f"storage={storage}", "train.epochs=1", "unlearn.methods=[retrain]"])
    lines = capsys.readouterr().err.strip().splitlines()  # progress lines, then the error
    err = [x for x in lines if x.startswith("expunge: error:")]
    assert rc == 2 and len(err) == 1 and err[0] == lines[-1] and "Traceback" not in "".join(lines), lines
    assert "could not write artifact models/original" in err[0] and os.strerror(getattr(errno, code)) in err[0]
    if code == "ENOSPC":
        assert "finished artifacts are intact" in err[0] and "free space" in err[0]
    assert not [p for p in storage.rglob("*") if "staging" in p.name or ".tmp" in p.name]
    assert not (storage / "digits" / "models" / "original").exists()
    assert Store(str(storage / "digits")).get("split", "plan", verify=True) is not None


def test_an_unexpected_os_error_is_not_disguised(tmp_path):
    """Only the file-system classes become one line; anything else stays a bug with its traceback."""
    import errno

    from expunge.errors import StorageError, from_os_error

    assert isinstance(from_os_error(OSError(errno.ENOSPC, "No space left on device", "f")), StorageError)
    assert from_os_error(OSError(errno.ECONNRESET, "Connection reset", "f")) is None
