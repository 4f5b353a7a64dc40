"""``expunge audit-model``: models trained outside expunge, audited exactly as a run audits its own.

A plain PyTorch loop (no expunge training code) trains the original on a train set of its choosing and
"unlearns" by fine-tuning on the retain set; a pipeline run imports the same original
(``model.weights``) and unlearns it with ``finetune`` and ``retrain``. Auditing the pipeline's
finetune and retrain weights, exported to files, with ``audit-model`` gives the pipeline's
leaderboard and tidy table value for value, with the audit's own trained shadows and with the
pipeline's shadows imported from a folder.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from expunge.cli import main

DIGITS = "configs/experiments/digits.yaml"
#: what both the pipeline and audit-model run with: short training, the membership attacks
COMMON = ["train.epochs=4", "audit.shadows=2", "audit.metrics=[accuracy,svc_mia,cr,lira,rmia,iam]", "--local"]


def _plain_fit(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, idx: np.ndarray, epochs: int,
               lr: float) -> None:
    """A textbook training loop: SGD with momentum over shuffled mini-batches, no augmentation."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for _ in range(epochs):
        for b in torch.as_tensor(idx)[torch.randperm(len(idx))].split(128):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()


@pytest.fixture(scope="module")
def user(tmp_path_factory, digits):
    """A user's files: a train set (60% of digits, .npy), a forget set (10% of it, text), an original
    trained on the train set with a plain loop (safetensors) and their own unlearned model (the
    original fine-tuned on the retain set, a weights-only torch file)."""
    from expunge.models import create_model

    d = tmp_path_factory.mktemp("user")
    rng = np.random.default_rng(1)
    train = np.sort(rng.choice(len(digits), size=int(0.6 * len(digits)), replace=False))
    forget = np.sort(rng.choice(train, size=len(train) // 10, replace=False))
    np.save(d / "train.npy", train)
    np.savetxt(d / "forget.txt", forget, fmt="%d")
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (digits.mean, digits.std))
    x, y = (digits.images.float() / 255 - mean) / std, digits.labels
    torch.manual_seed(0)
    model = create_model("cnn", digits.num_classes, digits.in_shape)
    _plain_fit(model, x, y, train, epochs=8, lr=0.05)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "original.safetensors"))
    _plain_fit(model, x, y, np.setdiff1d(train, forget), epochs=1, lr=0.01)
    torch.save(model.state_dict(), d / "mine.pt")
    return d


def _board(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "audit" / "results" / "leaderboard.csv").set_index("method")


def _long(run: Path) -> pd.DataFrame:
    long = pd.read_parquet(run / "audit" / "results" / "metrics_long.parquet")
    return long.set_index(["method", "metric"])["value"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, user, digits):
    """The pipeline on the user's original and split, and its finetune / retrain / shadow weights
    exported the way a user would hand them over (files, and a shadow folder with membership.npy)."""
    from expunge.store import Store

    storage = tmp_path_factory.mktemp("runs")
    rc = main(["run", DIGITS, f"storage={storage}", "name=pipeline", f"model.weights={user / 'original.safetensors'}",
               f"data.forget=indices:{user / 'forget.txt'}", f"data.train_indices={user / 'train.npy'}",
               "unlearn.methods=[retrain,{name: finetune, params: {epochs: 2}}]", "unlearn.min_steps=0", *COMMON])
    assert rc == 0
    run = storage / "pipeline"
    out = tmp_path_factory.mktemp("exported")
    store = Store(str(run))
    for key in store.keys("models"):
        if key.startswith(("finetune-", "retrain-")):
            shutil.copy(Path(store.path("models", key)) / "weights.safetensors", out / f"{key.split('-')[0]}.safetensors")
    (out / "shadows").mkdir()
    rows = []
    for i in range(2):
        art = store.get("models", f"fleet-shadow-out_only/{i:04d}")
        shutil.copy(Path(art.path) / "weights.safetensors", out / "shadows" / f"member_{i:04d}.safetensors")
        row = np.zeros(len(digits), bool)
        row[art.read("members.npy")] = True
        rows.append(row)
    np.save(out / "shadows" / "membership.npy", np.stack(rows))
    return {"run": run, "storage": storage, "files": out}


def _audit_model(user: Path, storage: Path, name: str, *args: str) -> int:
    return main(["audit-model", DIGITS, f"storage={storage}", f"name={name}", "--original",
                 str(user / "original.safetensors"), "--forget-indices", str(user / "forget.txt"),
                 "--train-indices", str(user / "train.npy"), *COMMON, *args])


def _assert_rows_equal(got: pd.DataFrame, want: pd.DataFrame, rows: list[str]) -> None:
    cols = [c for c in want.columns if c not in ("model", "RTE_s")]  # a key and a run time: not audit values
    assert set(got.columns) == set(want.columns)
    for row in rows:
        pd.testing.assert_series_equal(got.loc[row, cols], want.loc[row, cols], check_exact=True, obj=row)


def test_audit_model_gives_the_pipelines_numbers(user, pipeline, capsys):
    files, storage = pipeline["files"], pipeline["storage"]
    rc = _audit_model(user, storage, "imported", "--unlearned", f"finetune={files / 'finetune.safetensors'}",
                      "--unlearned", f"mine (plain loop)={user / 'mine.pt'}",
                      "--retrained", str(files / "retrain.safetensors"))
    assert rc == 0, capsys.readouterr().err
    want, got = _board(pipeline["run"]), _board(storage / "imported")
    assert list(got.index) == ["original (imported)", "finetune", "mine (plain loop)", "retrain"]
    assert len(want.columns) > 100
    _assert_rows_equal(got, want, ["original (imported)", "finetune", "retrain"])
    # the unrounded tidy table too, every metric of every shared row
    long_want, long_got = _long(pipeline["run"]), _long(storage / "imported")
    shared = long_want.index
    assert len(shared) == 3 * len(long_want.loc["retrain"])
    np.testing.assert_array_equal(long_got.loc[shared].to_numpy(), long_want.to_numpy())
    # the user's own unlearned model is a row with gaps to the imported retrain
    mine = got.loc["mine (plain loop)"]
    assert mine["gap_TA"] == pytest.approx(abs(mine["TA"] - got.loc["retrain", "TA"]), abs=2e-3)
    # stored as artifacts with the source file's sha256; the report is written like a run's
    from expunge.models.checkpoint import file_sha256
    from expunge.stages.audit_model import imported_key
    from expunge.store import Store

    store = Store(str(storage / "imported"))
    for label, path in (("finetune", files / "finetune.safetensors"), ("mine (plain loop)", user / "mine.pt")):
        config = store.get("models", imported_key(label), verify=True).manifest["config"]
        assert config["imported_sha256"] == file_sha256(path) and config["role"] == "imported-unlearned"
    assert (storage / "imported" / "reports" / "report" / "report.html").is_file()

    # a changed file under the same name is refused as stale, before anything is recomputed ...
    changed = user / "mine_changed.pt"
    state = torch.load(user / "mine.pt", weights_only=True)
    state["fc.weight"] = state["fc.weight"] * 0.5  # other confidences on every sample
    torch.save(state, changed)
    capsys.readouterr()
    assert _audit_model(user, storage, "imported", "--unlearned", f"mine (plain loop)={changed}") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--unlearned mine (plain loop)" in err[0] and "imported_sha256" in err[0], err
    assert _board(storage / "imported").loc["mine (plain loop)", "TA"] == mine["TA"]
    # ... and replaced under --rebuild, which reuses the unchanged import; the command without
    # --retrained keeps the run's retrain row
    stored = store.get("models", imported_key("finetune")).manifest["manifest_hash"]
    assert _audit_model(user, storage, "imported", "--unlearned", f"finetune={files / 'finetune.safetensors'}",
                        "--unlearned", f"mine (plain loop)={changed}", "--rebuild") == 0
    assert store.get("models", imported_key("finetune")).manifest["manifest_hash"] == stored
    assert store.get("models", imported_key("mine (plain loop)")).manifest["config"]["imported_sha256"] == \
        file_sha256(changed)
    again = _board(storage / "imported")
    assert set(again.index) == set(got.index)
    _assert_rows_equal(again, got, ["original (imported)", "finetune", "retrain"])
    assert again.loc["mine (plain loop)", "lira_forget_score_mean"] != mine["lira_forget_score_mean"]


def test_imported_shadows_and_train_retrain_give_the_pipelines_numbers(user, pipeline, capsys):
    """The pipeline's shadows imported from a folder, and the retrained model trained by audit-model
    (``--train-retrain``, the run's ``retrain`` method): again the pipeline's numbers."""
    files, storage = pipeline["files"], pipeline["storage"]
    rc = _audit_model(user, storage, "imported-shadows", "--unlearned", f"finetune={files / 'finetune.safetensors'}",
                      "--train-retrain", "--shadows", str(files / "shadows"))
    assert rc == 0, capsys.readouterr().err
    want, got = _board(pipeline["run"]), _board(storage / "imported-shadows")
    _assert_rows_equal(got, want, ["original (imported)", "finetune", "retrain"])
    assert not (storage / "imported-shadows" / "models" / "fleet-shadow-out_only").exists()  # none trained
    assert sorted(p.name for p in (storage / "imported-shadows" / "models" / "imported-shadows").iterdir()) == [
        "0000", "0001"]


# --- bad input: one line, exit code 2, before anything is stored --------------------------------------


@pytest.fixture
def files(tmp_path, digits):
    """Valid inputs (untrained weights suffice: nothing is computed) that each case spoils once."""
    from expunge.experiment import state_tensors
    from expunge.models import create_model

    torch.manual_seed(0)
    cnn = state_tensors(create_model("cnn", digits.num_classes, digits.in_shape))
    save_file(cnn, str(tmp_path / "original.safetensors"))
    save_file(cnn, str(tmp_path / "unlearned.safetensors"))
    save_file(state_tensors(create_model("cnn", 100, digits.in_shape)), str(tmp_path / "c100.safetensors"))
    save_file(state_tensors(create_model("mlp", digits.num_classes, digits.in_shape)), str(tmp_path / "mlp.safetensors"))
    torch.save({"state_dict": cnn, "extra": Evil()}, tmp_path / "evil.pt")
    np.save(tmp_path / "train.npy", np.arange(1000))
    np.save(tmp_path / "forget.npy", np.arange(100))
    from expunge.data.splits import SplitSizes
    from expunge.experiment import plan_with_train

    plan = plan_with_train(digits, 0, f"indices:{tmp_path / 'forget.npy'}", SplitSizes(0.2, 0.1, 0.1, 0.25),
                           str(tmp_path / "train.npy"))  # digits.yaml's split: shadows on its shadow pool
    np.save(tmp_path / "oob.npy", np.array([1, 2, 5000]))
    np.save(tmp_path / "dup.npy", np.array([1, 1, 2]))
    np.save(tmp_path / "outside.npy", np.array([1, 2, 1500]))
    np.save(tmp_path / "train_dup.npy", np.r_[np.arange(1000), 3])
    shadows = tmp_path / "shadows"
    shadows.mkdir()
    for i in range(2):
        save_file(cnn, str(shadows / f"member_{i:04d}.safetensors"))
    membership = np.zeros((2, len(digits)), bool)
    for i, half in enumerate(np.array_split(plan.shadow_pool, 2)):
        membership[i, half] = True
    np.save(shadows / "membership.npy", membership)
    return tmp_path


class Evil:
    def __reduce__(self):
        return (print, ("unpickling ran code",))


def _spoil_shadows(tmp: Path, case: str) -> None:
    s = tmp / "shadows"
    m = np.load(s / "membership.npy")
    if case == "shape":
        np.save(s / "membership.npy", m[:1])
    elif case == "dtype":
        np.save(s / "membership.npy", m.astype(np.int64))
    elif case == "forget":
        m[1, 5] = True  # position 5 is in the forget set
        np.save(s / "membership.npy", m)
    elif case == "weights":
        shutil.copy(tmp / "c100.safetensors", s / "member_0001.safetensors")
    elif case == "gap":
        (s / "member_0001.safetensors").rename(s / "member_0002.safetensors")
    elif case == "no-membership":
        (s / "membership.npy").unlink()


#: (arguments that replace the valid ones, shadow damage, substrings of the one error line)
BAD = [
    ({"--original": "{tmp}/absent.safetensors"}, None, ["--original", "no such file"]),
    ({"--unlearned": "u={tmp}/absent.safetensors"}, None, ["--unlearned u", "no such file"]),
    ({"--unlearned": "u={tmp}/c100.safetensors"}, None, ["--unlearned u", "10 classes", "head 100"]),
    ({"--unlearned": "u={tmp}/mlp.safetensors"}, None, ["--unlearned u", "does not fit model"]),
    ({"--unlearned": "u={tmp}/evil.pt"}, None, ["--unlearned u", "pickled objects"]),
    ({"--original": "{tmp}/c100.safetensors"}, None, ["--original", "10 classes"]),
    ({"--retrained": "{tmp}/mlp.safetensors"}, None, ["--retrained", "does not fit model"]),
    ({"--unlearned": "u"}, None, ["NAME=FILE"]),
    ({"--unlearned": "retrain={tmp}/unlearned.safetensors"}, None, ["'retrain'", "--retrained"]),
    ({"--forget-indices": "{tmp}/absent.npy"}, None, ["absent.npy", "not found"]),
    ({"--forget-indices": "{tmp}/oob.npy"}, None, ["out of range", "oob.npy"]),
    ({"--forget-indices": "{tmp}/dup.npy"}, None, ["duplicate", "dup.npy"]),
    ({"--forget-indices": "{tmp}/outside.npy"}, None, ["not in the train split", "1500"]),
    ({"--train-indices": "{tmp}/oob.npy"}, None, ["data.train_indices", "out of range"]),
    ({"--train-indices": "{tmp}/train_dup.npy"}, None, ["data.train_indices", "duplicate"]),
    ({"--shadows": "{tmp}/absent"}, None, ["--shadows", "no such folder"]),
    ({}, "shape", ["--shadows", "shape [1, 1797]", "[2, 1797]"]),
    ({}, "dtype", ["--shadows", "dtype int64"]),
    ({}, "forget", ["member 1", "forget positions", "first: 5", "OUT"]),
    ({}, "weights", ["--shadows member 1", "10 classes"]),
    ({}, "gap", ["no member_0001"]),
    ({}, "no-membership", ["no membership.npy"]),
    ({"extra": "data.dataset=cifar11"}, None, ["data.dataset", "cifar11"]),
    ({"extra": "model.name=resnet19"}, None, ["model.name", "resnet19"]),
    ({"extra": "--train-retrain"}, None, ["--train-retrain", "--retrained"]),
    ({"--original": None}, None, ["--original"]),
    ({"--unlearned": None}, None, ["at least one --unlearned NAME=FILE"]),
]


@pytest.mark.parametrize("change,shadow_case,needles", BAD,
                         ids=[" ".join(f"{k}={v}" for k, v in c.items()) + (s or "") for c, s, _ in BAD])
def test_bad_input_is_one_line_and_nothing_is_stored(files, capsys, change, shadow_case, needles):
    tmp = files
    args = {"--original": "{tmp}/original.safetensors", "--unlearned": "u={tmp}/unlearned.safetensors",
            "--forget-indices": "{tmp}/forget.npy", "--train-indices": "{tmp}/train.npy",
            "--retrained": "{tmp}/unlearned.safetensors", "--shadows": "{tmp}/shadows", **change}
    if shadow_case:
        _spoil_shadows(tmp, shadow_case)
    extra = args.pop("extra", None)
    argv = ["audit-model", DIGITS, f"storage={tmp}/runs", "--local"]
    for flag, value in args.items():
        if value is not None:
            argv += [flag, value.replace("{tmp}", str(tmp))]
    if extra:
        argv.append(extra)
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("expunge: error:"), err
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    assert "unpickling ran code" not in err[0]
    assert not (tmp / "runs").exists()  # no run directory, no split, no lock: nothing at all


def test_dry_run_checks_everything_and_stores_nothing(files, capsys):
    """The valid inputs of the bad-input table pass every check (so each case fails for its own reason)."""
    base = ["audit-model", DIGITS, f"storage={files}/runs", "--dry-run", "--original", str(files / "original.safetensors"),
            "--unlearned", f"u={files / 'unlearned.safetensors'}", "--forget-indices", str(files / "forget.npy"),
            "--train-indices", str(files / "train.npy")]
    assert main([*base, "--train-retrain"]) == 0
    out = capsys.readouterr().out
    assert "split: 1000 train (100 forget, 900 retain)" in out and "train retrain" in out, out
    assert "train 4 OUT shadow models" in out
    assert main([*base, "--retrained", str(files / "unlearned.safetensors"), "--shadows", str(files / "shadows")]) == 0
    assert "import 2 shadow models" in capsys.readouterr().out
    assert not (files / "runs").exists()


def test_a_given_train_set_is_the_splits_train_set_and_its_file_is_part_of_its_identity(tmp_path, digits):
    """``data.train_indices``: train is the file's positions, every other set is drawn from the rest
    (disjoint, reproducible), and an edited file under the same name is another split, refused."""
    from expunge.errors import StaleArtifactError
    from expunge.experiment import Experiment
    from expunge.resolve import load_config

    train = np.arange(0, len(digits), 2)  # every other position
    np.save(tmp_path / "train.npy", train)
    np.savetxt(tmp_path / "forget.txt", train[:30], fmt="%d")
    cfg = load_config(DIGITS, [f"storage={tmp_path}/runs", f"data.train_indices={tmp_path / 'train.npy'}",
                               f"data.forget=indices:{tmp_path / 'forget.txt'}"])
    plan = Experiment(cfg, verbose=False).plan
    np.testing.assert_array_equal(plan.train, train)
    np.testing.assert_array_equal(plan.forget, train[:30])
    held = [plan.indices[s] for s in ("test", "calibration", "population", "shadow_pool")]
    everything = np.concatenate([plan.train, *held])
    assert len(np.unique(everything)) == len(everything) == len(digits)  # disjoint; test takes the rest
    assert len(plan.calibration) == round(0.1 * (len(digits) - len(train)))
    assert Experiment(cfg, verbose=False).create_plan().hash == plan.hash
    np.save(tmp_path / "train.npy", train[1:])
    with pytest.raises(StaleArtifactError, match="indices_sha256"):
        Experiment(cfg, verbose=False).plan
