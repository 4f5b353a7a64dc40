"""Text datasets: every supported source, labels and their aliases, chunking, and the bad-input errors."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from expunge.errors import DataError, ExpungeError
from expunge.llm.data import load_population, load_text_dataset, parse_label_map, text_set
from expunge.llm.models import byte_tokenizer

ROWS = [{"text": "alpha beta gamma delta epsilon", "label": "retained", "doc": "d1"},
        {"text": "zeta eta", "label": "forget", "doc": "d2"},
        {"text": "theta iota kappa", "label": "Non-Member", "doc": "d3"}]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_jsonl_labels_are_canonical_and_ids_from_column(tmp_path):
    ts = load_text_dataset(_jsonl(tmp_path / "d.jsonl", ROWS), id_column="doc")
    assert ts.ids == ("d1", "d2", "d3")
    assert ts.labels.tolist() == ["member", "unlearned", "nonmember"]
    assert ts.counts() == {"member": 1, "unlearned": 1, "nonmember": 1}
    assert ts.mask("member", "unlearned").tolist() == [True, True, False]


def test_csv_parquet_and_saved_dataset_dir_agree(tmp_path):
    df = pd.DataFrame(ROWS)
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.parquet", index=False)
    import datasets

    datasets.Dataset.from_pandas(df).save_to_disk(str(tmp_path / "saved"))
    loaded = [load_text_dataset(str(tmp_path / n)) for n in ("d.csv", "d.parquet", "saved")]
    for ts in loaded:
        assert ts.texts == tuple(df["text"]) and ts.labels.tolist() == ["member", "unlearned", "nonmember"]
    assert len({ts.hash for ts in loaded}) == 1


def test_missing_file_is_one_line_error(tmp_path):
    with pytest.raises(ExpungeError, match="no such file or directory"):
        load_text_dataset(str(tmp_path / "absent.jsonl"))


def test_broken_jsonl_line_is_named_by_number(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1]) + "\n" + '{"text": "secret words", "label"\n')
    with pytest.raises(DataError, match=r"d.jsonl: line 3 is not a JSON object") as err:
        load_text_dataset(str(path))
    assert "secret" not in str(err.value)


def test_missing_label_column_is_named(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "a b", "split": "x"}])
    with pytest.raises(DataError, match=r"no label column 'label' \(columns: text, split\)"):
        load_text_dataset(path)
    with pytest.raises(DataError, match="no label column 'membership'"):
        load_text_dataset(path, label_column="membership")
    assert len(load_population(path)) == 1  # a population set needs no labels


def test_empty_text_names_the_row(tmp_path):
    rows = [ROWS[0], {**ROWS[1], "text": "   "}, ROWS[2]]
    with pytest.raises(DataError, match="empty text in column 'text' at row 1"):
        load_text_dataset(_jsonl(tmp_path / "d.jsonl", rows))


def test_numeric_labels_need_a_map(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "a b", "label": 1}, {"text": "c d", "label": 0}])
    with pytest.raises(DataError, match="numeric labels"):
        load_text_dataset(path)
    ts = load_text_dataset(path, label_map=parse_label_map("1=member,0=unlearned"))
    assert ts.labels.tolist() == ["member", "unlearned"]
    with pytest.raises(DataError, match="unknown label 'maybe'"):
        text_set(["x"], ["maybe"])
    with pytest.raises(DataError, match="not a label"):
        parse_label_map("1=kept")


def test_duplicate_ids_are_refused():
    with pytest.raises(DataError, match="not unique"):
        text_set(["a", "b"], ["member", "member"], ids=["x", "x"])


def test_word_and_token_chunking(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", ROWS)
    ts = load_text_dataset(path, chunk="words", window=2)
    assert ts.ids == ("0#0", "0#1", "0#2", "1#0", "2#0", "2#1")
    assert ts.texts[:3] == ("alpha beta", "gamma delta", "epsilon")
    assert ts.labels.tolist() == ["member"] * 3 + ["unlearned"] + ["nonmember"] * 2
    tok = load_text_dataset(path, chunk="tokens", window=4, tokenizer=byte_tokenizer())
    assert tok.texts[:2] == ("alph", "a be") and "".join(t for i, t in zip(tok.ids, tok.texts) if i.startswith("0#")) \
        == ROWS[0]["text"]
    with pytest.raises(DataError, match="needs a tokenizer"):
        load_text_dataset(path, chunk="tokens", window=4)


def test_lowercased_and_subset_keep_ids():
    ts = text_set(["Ab", "Cd"], ["member", "nonmember"], ids=["a", "b"])
    low = ts.lowercased()
    assert low.texts == ("ab", "cd") and low.ids == ts.ids and low.hash != ts.hash
    sub = ts.subset([1])
    assert sub.ids == ("b",) and np.array_equal(sub.labels, ["nonmember"])
