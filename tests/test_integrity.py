"""Every kind of artifact a run stores, damaged: refused by name, recomputed only under --rebuild, repaired by it.

One small run is made once; each case damages a copy of it (a truncated or flipped file, a deleted
file, an edited manifest field), runs the same command again, and checks that it stops with one line
naming the artifact and ``--rebuild`` (derived artifacts and fleet members are checked
before any compute; a model's cached outputs when its stage reads them), that the damage is still there (nothing was silently
recomputed or overwritten), and that the command with ``--rebuild`` succeeds and leaves the artifact
intact (a rebuilt model equal to the undamaged one: training is seeded).
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from expunge.cli import main
from expunge.store import Store

pytestmark = pytest.mark.slow

SMALL = ["train.epochs=4", "audit.shadows=1", "unlearn.min_steps=0", "audit.metrics=[accuracy,iam]",
         "unlearn.methods=[retrain,{name: finetune, params: {epochs: 1}}]"]


def command(repo_root: Path, storage: Path, *extra: str) -> list[str]:
    return ["run", str(repo_root / "configs/experiments/digits.yaml"), "--local", f"storage={storage}", *SMALL, *extra]


def quiet(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


@pytest.fixture(scope="module")
def made(tmp_path_factory, repo_root):
    storage = tmp_path_factory.mktemp("integrity") / "runs"
    code, err = quiet(command(repo_root, storage))
    assert code == 0, err[-3000:]
    return storage


def only(run: Path, pattern: str) -> Path:
    (path,) = run.glob(pattern)
    return path


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-64])


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def delete(path: Path) -> None:
    path.unlink()


def edit(field: str, value):
    def do(path: Path) -> None:
        manifest = json.loads(path.read_text())
        manifest[field] = value
        path.write_text(json.dumps(manifest))
    return do


CASES = [  # (file, damage, kind of damage named)  -- one or more cases per artifact kind
    ("split/plan/forget.npy", delete, "missing"),
    ("models/original/weights.safetensors", truncate, "corrupt"),
    ("models/original/manifest.json", edit("run_time_s", 0.0), "edited"),  # it reached the leaderboard as RTE
    ("models/retrain-*/weights.safetensors", flip, "corrupt"),
    ("models/finetune-*/manifest.json", edit("seed", 7), "edited"),
    ("models/fleet-shadow-out_only/0000/members.npy", delete, "missing"),
    ("fleets/shadow-out_only/membership.npy", delete, "missing"),
    ("fleets/shadow-out_only/manifest.json", edit("seed", 3), "edited"),
    ("outputs/original/logits_forget.npy", flip, "corrupt"),
    ("outputs/finetune-*/labels_test.npy", delete, "missing"),
    ("audit/results/leaderboard.csv", delete, "missing"),
    ("audit/kept-*/metrics_long.parquet", truncate, "corrupt"),
    ("reports/summary/summary.md", flip, "corrupt"),
    ("reports/report/report.html", delete, "missing"),
    ("timings/audit/records.json", truncate, "corrupt"),
]


@pytest.mark.parametrize("pattern,damage,why", CASES, ids=[c[0].split("/")[0] + ":" + c[0].rsplit("/", 1)[-1] + ":"
                                                         + c[1].__name__ for c in CASES])
def test_damaged_artifact_is_refused_then_repaired_by_rebuild(made, tmp_path, repo_root, pattern, damage, why):
    storage = tmp_path / "runs"
    shutil.copytree(made, storage)
    run = storage / "digits"
    target = only(run, pattern)
    artifact = str(target.parent.relative_to(run))
    clean = {p.name: p.read_bytes() for p in target.parent.glob("*.safetensors")}
    damage(target)
    damaged = target.read_bytes() if target.exists() else None

    code, err = quiet(command(repo_root, storage))
    assert code == 2, err[-2000:]
    # progress lines of stages that reused intact artifacts may precede it; the error is one line
    line = err.strip().splitlines()[-1]
    assert line.startswith("expunge: error:") and err.count("error") == 1, err[-2000:]
    assert f"artifact {artifact}" in line and why in line and "--rebuild" in line, line
    # nothing recomputed or overwritten: the damage is as it was left
    assert (target.read_bytes() if target.exists() else None) == damaged

    code, err = quiet(command(repo_root, storage, "--rebuild"))
    assert code == 0, err[-3000:]
    kind, key = artifact.split("/", 1)
    assert Store(str(run)).get(kind, key, verify=True) is not None
    for name, data in clean.items():  # a rebuilt model is the model it was
        assert (target.parent / name).read_bytes() == data
    code, err = quiet(command(repo_root, storage))  # and the run is whole again
    assert code == 0, err[-3000:]


def test_a_repeated_audit_is_read_back_and_a_changed_one_kept_beside_it(made, tmp_path, repo_root):
    """The same audit again is not recomputed; an audit with other settings becomes the current one and
    the earlier audit stays in the run, named by the report."""
    storage = tmp_path / "runs"
    shutil.copytree(made, storage)
    run = storage / "digits"
    store = Store(str(run))
    first = store.get("audit", "results", verify=True)
    code, err = quiet(command(repo_root, storage))
    assert code == 0 and f"reused audit/{first.manifest['kept']}" in err, err[-2000:]
    assert store.get("audit", "results").manifest["created"] == first.manifest["created"]

    code, err = quiet(command(repo_root, storage, "audit.params={iam: {weighting: reference}}"))
    assert code == 0, err[-2000:]
    current = store.get("audit", "results", verify=True)
    assert current.manifest["kept"] != first.manifest["kept"]
    assert current.manifest["config"]["audit"]["params"] == {"iam": {"weighting": "reference"}}
    kept = sorted(k for k in store.keys("audit") if k.startswith("kept-"))
    assert kept == sorted([first.manifest["kept"], current.manifest["kept"]])
    assert store.get("audit", first.manifest["kept"], verify=True).read("leaderboard.csv").equals(
        first.read("leaderboard.csv"))
    html = (run / "reports/report/report.html").read_text()
    assert f"audit/{current.manifest['kept']}" in html and f"audit/{first.manifest['kept']}" in html


def test_a_damaged_language_model_is_refused_and_repaired(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from expunge.errors import CorruptArtifactError
    from expunge.llm.artifacts import load_lm, save_lm

    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=16, n_embd=8, n_layer=1, n_head=2))
    store = Store(str(tmp_path))
    art = save_lm(store, "m", model, config={"n": 1})
    weights = Path(art.path) / "model.safetensors"
    flip(weights)
    with pytest.raises(CorruptArtifactError, match="llm_models/m: file model.safetensors is corrupt"):
        load_lm(store, "m")
    with pytest.raises(CorruptArtifactError, match="llm_models/m"):  # a later write does not paper over it
        save_lm(store, "m", model, config={"n": 1}, replace=True)
    save_lm(store, "m", model, config={"n": 1}, replace=True, repair=True)  # --rebuild
    assert store.get("llm_models", "m", verify=True) is not None
    load_lm(store, "m")
