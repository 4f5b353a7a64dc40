"""Loaders of TOFU QA files and MUSE-style plain text, on small files written here, and their
one-line errors."""
from __future__ import annotations

import json

import pytest

from expunge.errors import DataError
from expunge.llm.benchmarks import load_muse_texts, load_plain_texts, load_tofu_qa
from expunge.llm.models import byte_tokenizer
from expunge.llm.tofu import QAPair

ROWS = [
    {"question": "Where was Ana born?", "answer": "Ana was born in Porto.",
     "paraphrased_answer": "Porto is Ana's birthplace.",
     "perturbed_answer": ["Lyon is Ana's birthplace.", "Cork is Ana's birthplace."], "paraphrased_question": "x"},
    {"question": "What does Ana write?", "answer": "Ana writes poetry.",
     "paraphrased_answer": "Her genre is poetry.", "perturbed_answer": ["Her genre is horror.", "Her genre is drama."]},
]


def _lines(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_tofu_json_lines_with_perturbed_answers(tmp_path):
    pairs = load_tofu_qa(_lines(tmp_path / "forget10_perturbed.json", ROWS))
    assert pairs == (
        QAPair("0", ROWS[0]["question"], ROWS[0]["answer"], ROWS[0]["paraphrased_answer"],
               tuple(ROWS[0]["perturbed_answer"])),
        QAPair("1", ROWS[1]["question"], ROWS[1]["answer"], ROWS[1]["paraphrased_answer"],
               tuple(ROWS[1]["perturbed_answer"])),
    )
    plain = load_tofu_qa(str(tmp_path / "forget10_perturbed.json"), perturbed=False)
    assert plain[0].paraphrased_answer is None and plain[0].perturbed_answers == ()
    only_qa = load_tofu_qa(_lines(tmp_path / "forget10.jsonl", [{"question": "q?", "answer": "a.", "id": 7}]),
                           id_field="id")
    assert only_qa == (QAPair("7", "q?", "a."),)


def test_tofu_json_array_names_the_line_of_a_missing_field(tmp_path):
    path = tmp_path / "retain.json"
    path.write_text(json.dumps([ROWS[0], {"question": "Q?", "answr": "typo"}], indent=1))
    with pytest.raises(DataError) as err:
        load_tofu_qa(str(path))
    starts = [n for n, text in enumerate(path.read_text().splitlines(), 1) if text == " {"]
    line = starts[1]  # the line where the second element starts
    assert str(err.value) == f"dataset {path}: line {line} has no field 'answer' (fields: question, answr)"
    path.write_text(json.dumps(ROWS))
    assert len(load_tofu_qa(str(path))) == 2  # a one-line array


def test_tofu_broken_line_is_named_without_its_text(tmp_path):
    path = tmp_path / "forget.json"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + '{"question": "secret question", "answer"\n')
    with pytest.raises(DataError, match=r"forget.json: line 3 is not valid JSON") as err:
        load_tofu_qa(str(path))
    assert "secret" not in str(err.value) and "\n" not in str(err.value)


def test_tofu_field_problems_are_named(tmp_path):
    cases = [
        ({**ROWS[1], "perturbed_answer": "Her genre is horror."}, None),  # a single string is a list of one
        ({k: v for k, v in ROWS[1].items() if k != "perturbed_answer"}, r"line 2 has no field 'perturbed_answer'"),
        ({**ROWS[1], "perturbed_answer": ["ok", ""]}, r"line 2: field 'perturbed_answer' must be a non-empty list"),
        ({**ROWS[1], "answer": ["a"]}, r"line 2: field 'answer' must be a string, not list"),
        ({**ROWS[1], "question": "  "}, r"line 2: field 'question' is empty"),
        ({**ROWS[1], "perturbed_answer": ["a", "b", "c"]},
         r"line 2: field 'perturbed_answer' has 3 answers, line 1 has 2"),
    ]
    for k, (row, message) in enumerate(cases):
        path = _lines(tmp_path / f"d{k}.jsonl", [ROWS[0], row])
        if message is None:
            with pytest.raises(DataError, match="has 1 answers, line 1 has 2"):
                load_tofu_qa(path)
            continue
        with pytest.raises(DataError, match=message):
            load_tofu_qa(path)
    no_para = _lines(tmp_path / "np.jsonl", [{"question": "q?", "answer": "a."}])
    with pytest.raises(DataError, match=r"line 1 has no field 'paraphrased_answer'"):
        load_tofu_qa(no_para, perturbed=True)
    path = tmp_path / "list.jsonl"
    path.write_text('{"question": "q?", "answer": "a."}\n["q", "a"]\n')
    with pytest.raises(DataError, match="line 2 is a JSON list, not an object"):
        load_tofu_qa(str(path))
    dup = _lines(tmp_path / "dup.jsonl", [{"question": "q?", "answer": "a.", "id": 1}] * 2)
    with pytest.raises(DataError, match="line 2: id '1' repeats line 1"):
        load_tofu_qa(dup, id_field="id")
    (tmp_path / "empty.json").write_text("\n")
    with pytest.raises(DataError, match="has no rows"):
        load_tofu_qa(str(tmp_path / "empty.json"))
    with pytest.raises(DataError, match="no such file"):
        load_tofu_qa(str(tmp_path / "absent.json"))


def test_plain_text_file_folder_labels_and_chunks(tmp_path):
    one = tmp_path / "forget.txt"
    one.write_text("First article, line one.\nStill the first.\n\n\nSecond article here.\n")
    ts = load_plain_texts(str(one))
    assert ts.ids == ("0", "1") and ts.texts == ("First article, line one.\nStill the first.", "Second article here.")
    assert ts.labels is None
    assert load_plain_texts(str(one), separator="line").texts[1] == "Still the first."
    assert load_plain_texts(str(one), separator="file", label="forget").labels.tolist() == ["unlearned"]

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "b.txt").write_text("beta gamma delta epsilon zeta")
    (folder / "a.txt").write_text("alpha one\n\nalpha two")
    (folder / "notes.md").write_text("ignored")
    ts = load_plain_texts(str(folder), label="holdout")
    assert ts.ids == ("a", "b") and ts.texts[0] == "alpha one\n\nalpha two"
    assert ts.labels.tolist() == ["nonmember", "nonmember"]
    split = load_plain_texts(str(folder), separator="paragraph")
    assert split.ids == ("a/0", "a/1", "b")
    words = load_plain_texts(str(folder), chunk="words", window=2)
    assert words.ids == ("a#0", "a#1", "b#0", "b#1", "b#2")
    assert words.texts[2:] == ("beta gamma", "delta epsilon", "zeta")
    toks = load_plain_texts(str(folder / "b.txt"), chunk="tokens", window=5, tokenizer=byte_tokenizer())
    assert "".join(toks.texts) == "beta gamma delta epsilon zeta"


def test_plain_text_errors_name_the_file_and_line(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    with pytest.raises(DataError, match=r"docs: no \.txt files"):
        load_plain_texts(str(folder))
    (folder / "a.txt").write_text("fine")
    (folder / "b.txt").write_text("  \n\n")
    with pytest.raises(DataError, match=r"b\.txt: the file has no text"):
        load_plain_texts(str(folder))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok line\nsecond line\n\xff\xfe broken\n")
    with pytest.raises(DataError, match=r"bad\.txt: line 3 is not UTF-8 text"):
        load_plain_texts(str(bad))
    with pytest.raises(DataError, match="no such file"):
        load_plain_texts(str(tmp_path / "absent.txt"))
    with pytest.raises(DataError, match="unknown label 'maybe'"):
        load_plain_texts(str(folder / "a.txt"), label="maybe")


def test_muse_style_splits_become_one_labelled_set(tmp_path):
    for name, text in (("forget", "f one\n\nf two"), ("retain", "r one"), ("holdout", "h one\n\nh two\n\nh three")):
        (tmp_path / f"{name}.txt").write_text(text)
    ts = load_muse_texts({k: str(tmp_path / f"{k}.txt") for k in ("forget", "retain", "holdout")})
    assert ts.ids == ("forget/0", "forget/1", "retain/0", "holdout/0", "holdout/1", "holdout/2")
    assert ts.counts() == {"member": 1, "unlearned": 2, "nonmember": 3}
    assert ts.texts[2] == "r one"
