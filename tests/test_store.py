from __future__ import annotations

import json
import multiprocessing as mp
import os

import numpy as np
import pandas as pd
import pytest
import torch

from expunge.errors import ArtifactError
from expunge.store import Store


def _files():
    return {"weights.safetensors": {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)},
            "logits.npy": np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32),
            "table.parquet": pd.DataFrame({"m": ["a", "b"], "UA": [0.1, 0.2]}),
            "table.csv": pd.DataFrame({"m": ["a", "b"], "UA": [0.1, 0.2]}),
            "meta.json": {"x": 1}}


def test_round_trip(tmp_path):
    store = Store(str(tmp_path / "run"))
    files = _files()
    store.put("models", "m1", files, config={"lr": 0.1}, split_hash="abc", seed=3)
    art = store.get("models", "m1", expect={"config": {"lr": 0.1}, "split_hash": "abc", "seed": 3}, verify=True)
    assert torch.equal(art.read("weights.safetensors")["w"], files["weights.safetensors"]["w"])
    np.testing.assert_array_equal(art.read("logits.npy"), files["logits.npy"])
    pd.testing.assert_frame_equal(art.read("table.parquet"), files["table.parquet"])
    assert art.read("meta.json") == {"x": 1}
    m = art.manifest
    for field in ("kind", "key", "config", "split_hash", "seed", "code_version", "created", "content_hash"):
        assert field in m
    assert store.keys("models") == ["m1"]
    assert store.get("models", "absent") is None


def test_mismatch_names_every_difference(tmp_path):
    store = Store(str(tmp_path))
    store.put("models", "m", {"a.npy": np.zeros(2)}, config={"lr": 0.1, "epochs": 3}, split_hash="h1", seed=0)
    with pytest.raises(ArtifactError) as err:
        store.get("models", "m", expect={"config": {"lr": 0.2, "epochs": 3}, "split_hash": "h2"})
    msg = str(err.value)
    assert "config.lr: stored 0.1, requested 0.2" in msg and "split_hash" in msg and "epochs" not in msg


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest"])
def test_corruption_is_detected_by_name(tmp_path, damage):
    store = Store(str(tmp_path))
    art = store.put("models", "m", _files())
    path = os.path.join(art.path, "logits.npy")
    if damage == "truncate":
        data = open(path, "rb").read()
        open(path, "wb").write(data[:-7])
    elif damage == "flip":
        data = bytearray(open(path, "rb").read())
        data[-3] ^= 0xFF
        open(path, "wb").write(bytes(data))
    elif damage == "delete":
        os.remove(path)
    else:
        man = json.load(open(os.path.join(art.path, "manifest.json")))
        man["files"]["logits.npy"]["sha256"] = "0" * 64
        json.dump(man, open(os.path.join(art.path, "manifest.json"), "w"))
    with pytest.raises(ArtifactError) as err:
        store.get("models", "m", verify=True)
    # a damaged file is named; an edited manifest entry is caught by the manifest's own hash
    named = "manifest was edited" if damage == "manifest" else "logits.npy"
    assert named in str(err.value) and "models/m" in str(err.value)


def test_unreadable_manifest(tmp_path):
    store = Store(str(tmp_path))
    art = store.put("models", "m", {"a.npy": np.zeros(2)})
    open(os.path.join(art.path, "manifest.json"), "w").write("{not json")
    with pytest.raises(ArtifactError, match="manifest is unreadable"):
        store.get("models", "m")


def test_existing_artifact_needs_replace(tmp_path):
    store = Store(str(tmp_path))
    store.put("models", "m", {"a.npy": np.zeros(2)})
    with pytest.raises(ArtifactError, match="already exists"):
        store.put("models", "m", {"a.npy": np.ones(2)})
    store.put("models", "m", {"a.npy": np.ones(2)}, replace=True)
    np.testing.assert_array_equal(store.get("models", "m").read("a.npy"), np.ones(2))


@pytest.mark.parametrize("key", ["../escape", "/abs", "a/../../b", "", "a//b", "x y"])
def test_path_traversal_rejected(tmp_path, key):
    with pytest.raises(ArtifactError, match="invalid artifact"):
        Store(str(tmp_path)).put("models", key, {"a.npy": np.zeros(1)})


def test_failed_write_leaves_nothing(tmp_path):
    store = Store(str(tmp_path))
    with pytest.raises(TypeError):
        store.put("models", "m", {"a.npy": np.zeros(2), "b.npy": np.array([object()], dtype=object)})
    assert store.get("models", "m") is None
    assert not [p for p in (tmp_path / "models").glob("*")] if (tmp_path / "models").exists() else True


def test_pickle_free_npy(tmp_path):
    store = Store(str(tmp_path))
    with pytest.raises(TypeError, match="pickle"):
        store.put("outputs", "x", {"a.npy": np.array([{"a": 1}], dtype=object)})


def _writer(root: str, value: float) -> None:
    store = Store(root)
    for _ in range(20):
        try:
            store.put("models", "race", {f"p{i}.npy": np.full(1000, value) for i in range(4)}, replace=True)
        except ArtifactError:
            pass


def test_concurrent_writers_leave_one_valid_artifact(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), float(v))) for v in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    art = Store(str(tmp_path)).get("models", "race", verify=True)
    values = {float(art.read(f"p{i}.npy")[0]) for i in range(4)}
    assert len(values) == 1  # never a mix of two writers
    leftovers = [p.name for p in (tmp_path / "models").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_remote_uri_through_pyarrow(tmp_path):
    """The pyarrow path (used for s3:// / gs://) round-trips too; exercised here on a mock filesystem."""
    import pyarrow.fs as pafs

    from expunge.store.fs import ArrowFS

    fs = ArrowFS.__new__(ArrowFS)
    fs.fs, fs.root, fs._pafs = pafs.LocalFileSystem(), str(tmp_path / "remote"), pafs
    store = Store(str(tmp_path))
    store.fs = fs
    store.put("tables", "t", {"x.npy": np.arange(3)}, seed=1)
    art = store.get("tables", "t", expect={"seed": 1}, verify=True)
    np.testing.assert_array_equal(art.read("x.npy"), np.arange(3))
    assert store.keys("tables") == ["t"]


def test_altered_manifest_content_hash_is_detected(tmp_path):
    from expunge.errors import CorruptArtifactError

    store = Store(str(tmp_path))
    art = store.put("models", "m", _files())
    man = json.load(open(os.path.join(art.path, "manifest.json")))
    man["content_hash"] = "1" * 64  # the files are intact, but the manifest no longer describes them
    json.dump(man, open(os.path.join(art.path, "manifest.json"), "w"))
    with pytest.raises(CorruptArtifactError, match="models/m: manifest was edited"):
        store.get("models", "m")
    # even with its manifest hash recomputed to match, the content hash no longer matches the files
    from expunge.store.store import manifest_hash

    man["manifest_hash"] = manifest_hash(man)
    json.dump(man, open(os.path.join(art.path, "manifest.json"), "w"))
    with pytest.raises(CorruptArtifactError, match="models/m: its manifest's content hash"):
        store.get("models", "m", verify=True)


@pytest.mark.parametrize("edit", [
    lambda m: m.update(run_time_s=0.0),            # an extra field (it reached the leaderboard as RTE)
    lambda m: m.update(seed=7),                    # an identity field
    lambda m: m["config"].update(lr=0.5),          # nested config
    lambda m: m.pop("created"),                    # a field removed
    lambda m: m.pop("manifest_hash"),              # a manifest without its hash (older or hand-made)
])
def test_every_manifest_field_is_covered(tmp_path, edit):
    from expunge.errors import CorruptArtifactError

    store = Store(str(tmp_path))
    art = store.put("models", "m", _files(), config={"lr": 0.1}, seed=0, run_time_s=12.5)
    assert store.get("models", "m", verify=True).manifest["run_time_s"] == 12.5
    path = os.path.join(art.path, "manifest.json")
    man = json.load(open(path))
    edit(man)
    json.dump(man, open(path, "w"))
    with pytest.raises(CorruptArtifactError, match="models/m: manifest"):
        store.get("models", "m")
    with pytest.raises(CorruptArtifactError, match="models/m: manifest"):  # not papered over by a later write
        store.put("models", "m", _files(), config={"lr": 0.1}, seed=0, run_time_s=12.5, replace=True)
    store.put("models", "m", _files(), config={"lr": 0.1}, seed=0, run_time_s=12.5, replace=True,
              repair=True)  # --rebuild
    assert store.get("models", "m", verify=True).manifest["run_time_s"] == 12.5


def test_stale_and_corrupt_are_distinct_errors(tmp_path):
    from expunge.errors import CorruptArtifactError, StaleArtifactError

    store = Store(str(tmp_path))
    art = store.put("models", "m", _files(), config={"lr": 0.1})
    with pytest.raises(StaleArtifactError):
        store.get("models", "m", expect={"config": {"lr": 0.2}})
    os.remove(os.path.join(art.path, "logits.npy"))
    with pytest.raises(CorruptArtifactError, match="file logits.npy is missing"):
        store.get("models", "m", verify=True)


def test_secrets_never_reach_a_manifest(tmp_path):
    from expunge.store.serialize import redact

    store = Store(str(tmp_path))
    cfg = {"storage": "s3://AKIAEXAMPLE:s3cr3tValue@bucket/runs", "hf_token": "hf_abcdefSECRET",
           "nested": {"api_key": "sk-SECRET", "lr": 0.1}, "remote": "https://user:pa55word@host/x"}
    art = store.put("models", "m", {"a.npy": np.zeros(2)}, config=cfg)
    text = open(os.path.join(art.path, "manifest.json")).read()
    for secret in ("s3cr3tValue", "AKIAEXAMPLE", "hf_abcdefSECRET", "sk-SECRET", "pa55word"):
        assert secret not in text, secret
    assert "s3://***:***@bucket/runs" in text and '"lr": 0.1' in text
    assert store.get("models", "m", expect={"config": cfg}) is not None  # the same request still matches
    assert redact({"token": None, "x": ["a://u:p@h"]}) == {"token": None, "x": ["a://***:***@h"]}


def test_redaction_spares_file_entries_and_numbers(tmp_path):
    store = Store(str(tmp_path))
    art = store.put("llm", "m", {"tokenizer.json": {"v": 1}, "a.npy": np.zeros(2)},
                    config={"max_new_tokens": 50, "n_tokens": 7, "hf_token": "hf_SECRET"})
    assert art.read("tokenizer.json") == {"v": 1}
    got = store.get("llm", "m", verify=True).manifest
    assert got["config"] == {"max_new_tokens": 50, "n_tokens": 7, "hf_token": "***"}
