"""``expunge ledger``: the sequential-unlearning ledger.

The regression arithmetic on hand-made scores (a planted regression is flagged; a sample never scored
as unlearned, a low score before a sample's own request and a sample that stays unlearned are not);
request draws (disjoint, from the retained samples, refused when they cannot be satisfied); and one
ledger end to end on digits with a small MLP: every forgotten sample at every later version, versions
chained by their predecessor's content hash, a rerun that reuses every version, an edited request
that rebuilds from its version on, and bad inputs refused with exit code 2 before anything is stored.
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from expunge.audit.ledger import (MEMBER_THRESHOLD, draw_requests, flag_regressions, ledger_table, parse_requests,
                                  regressions, version_summary)
from expunge.cli import main
from expunge.config.forget import ForgetSpec
from expunge.errors import DataError
from expunge.store import Store

DIGITS = "configs/experiments/digits.yaml"
SMALL = ["model.name=mlp", "train.epochs=8", "audit.shadows=4", "name=ledger", "method.epochs=2"]
REQUESTS = ["random:0.05", "random:0.05", "class:3"]


# --- the arithmetic, on hand-made scores ----------------------------------------------------------
#: S_v for 4 ledger samples at versions 0..3; columns: A (r1), B (r1), C (r2), D (r1)
SCORES = np.array([
    # A     B     C     D
    [0.90, 0.90, 0.90, 0.90],  # v0, the original: everything a member
    [0.20, 0.80, 0.10, 0.30],  # v1: A and D unlearned; C is low but not yet forgotten (its request is r2)
    [0.70, 0.90, 0.80, 0.40],  # v2: A is a member again -> regressed; C at its own version is a member
    [0.50, 0.95, 0.60, 0.10],  # v3: A still a member (S = τ counts as member) -> regressed again
])
REQUEST_OF = np.array([1, 1, 2, 1])


def test_a_planted_regression_is_flagged_and_nothing_else():
    flags = flag_regressions(SCORES, REQUEST_OF, MEMBER_THRESHOLD)
    expected = np.zeros_like(flags)
    expected[2, 0] = expected[3, 0] = True  # A: unlearned at v1, a member at v2 and v3
    assert (flags == expected).all(), flags
    # B was never scored as unlearned (under-unlearning, not a regression); C's low score at v1 came
    # before its own request; D stays unlearned
    assert not flags[:, 1].any() and not flags[:, 2].any() and not flags[:, 3].any()
    # a higher threshold turns A's v3 score of 0.5 into "unlearned": only v2 stays regressed
    assert flag_regressions(SCORES, REQUEST_OF, 0.55)[:, 0].tolist() == [False, False, True, False]


def test_ledger_table_rows_and_summary():
    positions = np.array([11, 12, 20, 13])
    correct = SCORES > 0.5
    table = ledger_table(positions, REQUEST_OF, SCORES, correct)
    # one row per sample and version from its request on: 3 + 3 + 2 + 3
    assert len(table) == 11
    assert set(map(tuple, table[["position", "version"]].to_numpy())) == {
        (11, 1), (11, 2), (11, 3), (12, 1), (12, 2), (12, 3), (20, 2), (20, 3), (13, 1), (13, 2), (13, 3)}
    a = table[table["position"] == 11].set_index("version")
    assert a["regressed"].tolist() == [False, True, True]
    assert np.allclose(a["unlearning"], 1 - SCORES[1:, 0]) and np.allclose(a["membership_before"], 0.9)
    c = table[table["position"] == 20].set_index("version")
    assert np.allclose(c["membership_before"], SCORES[1, 2])  # the score of v1, the model r2 was applied to
    summary = version_summary(table).set_index(["version", "request"])
    assert summary.loc[(2, 1), "n_regressed"] == 1 and summary.loc[(3, 1), "n_regressed"] == 1
    assert summary.loc[(2, 2), "n_regressed"] == 0 and summary.loc[(1, 1), "n"] == 3
    assert np.isclose(summary.loc[(1, 1), "unlearned_frac"], 2 / 3)
    assert np.isclose(summary.loc[(1, 1), "mean_unlearning"], np.mean(1 - SCORES[1, [0, 1, 3]]))
    reg = regressions(table)
    assert reg["position"].tolist() == [11, 11] and reg["first_unlearned"].tolist() == [1, 1]


def test_requests_are_drawn_from_what_is_retained():
    labels = np.repeat(np.arange(4), 25)
    train = np.arange(0, 100, 1)
    specs = parse_requests(["random:0.1", "class:2", "random:20", "class_percentage:1:0.4"])
    reqs = draw_requests(specs, train, labels, seed=0)
    assert [len(r.forget) for r in reqs[:3]] == [10, len(reqs[1].forget), 20]
    gone = np.concatenate([r.forget for r in reqs])
    assert len(np.unique(gone)) == len(gone)  # never re-forgetting
    assert set(reqs[1].forget) == set(train[labels == 2]) - set(reqs[0].forget)  # class: every retained one
    assert len(reqs[3].forget) == 10 and (labels[reqs[3].forget] == 1).all()  # 0.4 of the 25 train ones
    again = draw_requests(specs, train, labels, seed=0)
    assert all((x.forget == y.forget).all() for x, y in zip(reqs, again))  # seeded
    with pytest.raises(DataError, match="only 90 are still retained"):
        draw_requests(parse_requests(["random:10", "random:95"]), train, labels, seed=0)
    with pytest.raises(DataError, match="no retained sample of class 2"):
        draw_requests(parse_requests(["class:2", "class:2"]), train, labels, seed=0)
    with pytest.raises(DataError, match="request 2"):
        parse_requests(["random:0.1", "random:1.5"])
    with pytest.raises(DataError, match="unknown kind"):
        parse_requests(["everything"])


def test_indices_requests_refuse_forgotten_positions(tmp_path):
    labels = np.zeros(50, np.int64)
    train = np.arange(40)
    first = draw_requests([ForgetSpec.parse("random:5")], train, labels, seed=0)[0].forget
    np.save(tmp_path / "again.npy", first[:2])
    with pytest.raises(DataError, match="already forgotten"):
        draw_requests([ForgetSpec.parse("random:5"), ForgetSpec.parse(f"indices:{tmp_path / 'again.npy'}")],
                      train, labels, seed=0)
    np.save(tmp_path / "outside.npy", np.array([45]))
    with pytest.raises(DataError, match="not training samples"):
        draw_requests([ForgetSpec.parse(f"indices:{tmp_path / 'outside.npy'}")], train, labels, seed=0)


# --- end to end on digits -------------------------------------------------------------------------
@contextlib.contextmanager
def one_thread():
    """Torch on one intra-op thread for the ledger runs: a small MLP on 8x8 digits gains nothing from a
    second one, and on a machine whose cores are busy with other work two spinning threads are many
    times slower. Nothing here compares numbers across thread counts."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _ledger(storage: Path, requests: list[str], capsys, *extra: str) -> tuple[int, str]:
    with one_thread():
        code = main(["ledger", DIGITS, *SMALL, f"storage={storage}", "--method", "finetune", "--requests", *requests,
                     "--local", *extra])
    return code, capsys.readouterr().err


def _stored_ledger(run: Path, versions: list[str]) -> Path:
    """The ledger artifact whose versions are ``versions``."""
    for art in (run / "ledger").iterdir():
        info = pd.read_json(art / "summary.json", typ="series")
        if list(info["versions"]) == versions:
            return art
    raise AssertionError(f"no ledger over {versions}")


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """One ledger of three requests, stored fresh: ``(storage, run dir, version keys, stderr)``."""
    storage = tmp_path_factory.mktemp("ledger")
    err = io.StringIO()
    with one_thread(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["ledger", DIGITS, *SMALL, f"storage={storage}", "--method", "finetune", "--requests", *REQUESTS,
                     "--local"])
    assert code == 0, err.getvalue()[-3000:]
    run = storage / "ledger"
    keys = sorted(k.name for k in (run / "models" / "ledger").iterdir())
    return storage, run, [f"ledger/{k}" for k in keys], err.getvalue()


def test_every_forgotten_sample_at_every_later_version(first):
    _, run, keys, err = first
    assert len(keys) == 3 and [k.split("/")[1][:3] for k in keys] == ["v01", "v02", "v03"]
    art = _stored_ledger(run, ["original", *keys])
    table = pd.read_parquet(art / "ledger.parquet")
    store = Store(str(run))
    seen = set(map(tuple, table[["position", "request", "version"]].to_numpy()))
    expected = set()
    for k, key in enumerate(keys, 1):
        forget = store.get("models", key).read("forget.npy")
        expected |= {(int(p), k, v) for p in forget for v in range(k, len(keys) + 1)}
    assert seen == expected and len(table) == len(expected)
    assert table["membership"].between(0, 1).all()
    assert np.allclose(table["unlearning"], 1 - table["membership"])
    # the requests are disjoint: none forgets a sample an earlier one forgot
    gone = [set(store.get("models", key).read("forget.npy").tolist()) for key in keys]
    assert not (gone[0] & gone[1]) and not (gone[2] & (gone[0] | gone[1]))
    assert {"ledger.md", "completeness.png", "summary.csv", "versions.csv"} <= {p.name for p in art.iterdir()}
    report = (run / "reports" / "report" / "report.md").read_text()
    assert "Sequential-unlearning ledger" in report and "regressed" in report
    assert f"ledger tables: {art}" in err


def test_versions_chain_their_predecessors_hash(first):
    _, run, keys, _ = first
    store = Store(str(run))
    previous = store.get("models", "original")
    for k, key in enumerate(keys, 1):
        made = store.get("models", key, verify=True)
        config = made.manifest["config"]
        assert config["previous"] == previous.key
        assert config["previous_content_hash"] == previous.manifest["content_hash"]
        assert config["version"] == k and config["request"] == REQUESTS[k - 1] and config["method"] == "finetune"
        previous = made


def test_rerun_reuses_and_an_edited_request_rebuilds_from_its_version(first, tmp_path, capsys):
    import shutil

    storage, run, keys, _ = first
    copy = tmp_path / "runs"
    shutil.copytree(storage, copy)  # the other tests read the first run as it was
    run = copy / "ledger"

    def stamps() -> dict[str, int]:
        return {p.parent.name: p.stat().st_mtime_ns for p in (run / "models" / "ledger").glob("*/manifest.json")}

    before = stamps()
    code, err = _ledger(copy, REQUESTS, capsys)
    assert code == 0, err[-2000:]
    assert stamps() == before and "done in" not in err  # no version trained again, none rewritten
    assert "ledger: reused ledger/" in err
    edited = [REQUESTS[0], "random:0.08", REQUESTS[2]]
    code, err = _ledger(copy, edited, capsys)
    assert code == 0, err[-2000:]
    now = stamps()
    new = sorted(set(now) - set(before))
    assert [k[:3] for k in new] == ["v02", "v03"]  # v2 and v3 made again under new keys
    assert now[keys[0].split("/")[1]] == before[keys[0].split("/")[1]]  # v1 reused as it was
    assert all(now[k] == t for k, t in before.items())  # the first ledger's versions are kept, not overwritten
    store = Store(str(run))
    v2 = store.get("models", f"ledger/{new[0]}").manifest["config"]
    assert v2["previous"] == keys[0] and v2["request"] == "random:0.08"
    v3 = store.get("models", f"ledger/{new[1]}").manifest["config"]
    assert v3["previous"] == f"ledger/{new[0]}" and v3["request"] == "class:3"
    table = pd.read_parquet(_stored_ledger(run, ["original", keys[0], *[f"ledger/{k}" for k in new]]) / "ledger.parquet")
    assert (table["request"] == 2).sum() == 2 * round(0.08 * len(store.get("split", "plan").read("train.npy")))


@pytest.mark.parametrize("argv, message", [
    (["--method", "no_such_method", "--requests", "random:0.05"], "no_such_method"),
    (["--method", "finetune", "--requests", "random:0.05", "random;0.05"], "request 2"),
    (["--method", "finetune", "--requests", "random:0.5", "random:0.6"], "still retained"),
    (["--method", "finetune", "--requests", "class:3", "class:3"], "no retained sample of class 3"),
    (["--method", "finetune", "--requests", "random:0.05", "audit.shadows=0"], "audit.shadows"),
    (["--method", "pru", "--requests", "random:0.05"], "request 1"),
    (["--method", "finetune", "--requests", "random:0.05", "method.no_such_param=1"], "no_such_param"),
    (["--method", "finetune"], "--requests"),
])
def test_bad_input_exits_2_and_stores_nothing(tmp_path, capsys, argv, message):
    code = main(["ledger", DIGITS, "model.name=mlp", f"storage={tmp_path}", "--local", *argv])
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.rglob("manifest.json")) and not any(os.scandir(tmp_path))
