"""``expunge.jobs.llm_audit`` end to end on tiny saved models, its cache, and every bad-input error."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from expunge.jobs.llm_audit import main, run_llm_audit
from expunge.llm.attacks import ATTACKS
from expunge.llm.models import tiny_gpt2


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    paths = {}
    for seed, name in enumerate(("target", "fit", "reference")):
        model, tok = tiny_gpt2(n_layer=1, n_embd=16, n_head=2, n_positions=96, seed=seed)
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        paths[name] = str(root / name)
    return paths


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    labels = ["retained"] * 4 + ["forget"] * 4 + ["nonmember"] * 4
    rows = [{"text": f"Sample number {i} says {'abc' * (i % 3 + 1)}.", "label": lab} for i, lab in enumerate(labels)]
    (root / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "pop.jsonl").write_text("".join(json.dumps({"text": f"Population line {i}."}) + "\n" for i in range(6)))
    (root / "nolabel.jsonl").write_text("".join(json.dumps({"text": r["text"], "y": 1}) + "\n" for r in rows))
    (root / "empty.jsonl").write_text(json.dumps({"text": "", "label": "member"}) + "\n"
                                      + json.dumps({"text": "x y", "label": "nonmember"}) + "\n")
    return {k: str(root / f"{k}.jsonl") for k in ("q", "pop", "nolabel", "empty")}


def test_audit_writes_every_attack_and_reuses_the_cache(models, data, tmp_path, capsys):
    argv = ["--target", models["target"], "--fit", models["fit"], "--reference", models["reference"],
            "--data", data["q"], "--population", data["pop"], "--out", str(tmp_path), "--n-boot", "20", "--local",
            "--levels", "20", "--checkpoint", f"{models['reference']}@0", "--checkpoint", f"{models['fit']}@1"]
    assert main(argv) == 0
    out = tmp_path / "llm_audit" / "audit"
    for name in ("report.md", "results.csv", "results.parquet", "summary.csv", "scores.parquet", "scoreui.csv",
                 "roc_member_vs_nonmember.png", "roc_retained_vs_unlearned.png", "roc_unlearned_vs_nonmember.png"):
        assert (out / name).is_file(), name
    res = pd.read_csv(out / "results.csv")
    assert set(res["attack"]) == set(ATTACKS.names())
    assert set(res["task"]) == {"member_vs_nonmember", "retained_vs_unlearned", "unlearned_vs_nonmember"}
    assert res["auc"].between(0, 1).all() and (res["auc_low"] <= res["auc_high"]).all()
    assert {"tpr@fpr=0.1", "tpr@fpr=0.01", "tpr@fpr=0.001"} <= set(res.columns)
    assert (res.query("task == 'retained_vs_unlearned'")["n_pos"] == 4).all()
    scores = pd.read_parquet(out / "scores.parquet")
    assert len(scores) == 12 and list(scores["label"][:4]) == ["member"] * 4
    assert "| attack |" in capsys.readouterr().out
    # second run: every per-token pass comes from the cache in the store
    again = run_llm_audit(models["target"], data["q"], str(tmp_path), fit=[models["fit"]],
                          references=[models["reference"]], population=data["pop"], n_boot=0, n_levels=20)
    assert again["passes"]["computed"] == 0 and again["passes"]["store"] > 0


def test_audit_without_fit_skips_online_attacks(models, data, tmp_path):
    res = run_llm_audit(models["target"], data["q"], str(tmp_path), references=[models["reference"]], n_boot=0)
    assert {"lira_online", "rmia_online", "iam_online"} == set(res["skipped"])
    assert "ratio" in set(res["results"]["attack"])


@pytest.mark.parametrize("case, expect", [
    ("missing_model", "target '.*absent': no such local directory"),
    ("missing_reference", "reference model '.*nowhere': no such local directory"),
    ("no_label", "no label column 'label' \\(columns: text, y\\)"),
    ("empty_text", "empty text in column 'text' at row 0"),
    ("missing_data", "no such file or directory"),
    ("unknown_attack", "unknown LLM attack 'losss'; did you mean loss"),
    ("needs_population", "attack 'rmia_online' needs a population set"),
    ("prefix_mismatch", "tokenizer mismatch"),
    ("bad_name", "--name '../x': must be"),
])
def test_bad_input_exits_2_with_one_line(models, data, tmp_path, capsys, case, expect):
    base = {"--target": models["target"], "--data": data["q"], "--out": str(tmp_path), "--reference": models["reference"]}
    if case == "missing_model":
        base["--target"] = str(tmp_path / "absent")
    elif case == "missing_reference":
        base["--reference"] = str(tmp_path / "nowhere")
    elif case == "no_label":
        base["--data"] = data["nolabel"]
    elif case == "empty_text":
        base["--data"] = data["empty"]
    elif case == "missing_data":
        base["--data"] = str(tmp_path / "none.jsonl")
    elif case == "unknown_attack":
        base["--attacks"] = "losss"
    elif case == "needs_population":
        base["--attacks"] = "rmia_online"
        base["--fit"] = models["fit"]
    elif case == "bad_name":
        base["--name"] = "../x"
    elif case == "prefix_mismatch":
        # a reference whose tokenizer differs: "the first 2 tokens" would mean different text
        from tokenizers import Tokenizer, models as tm, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        other = tmp_path / "other"
        model, _ = tiny_gpt2(n_layer=1, n_embd=16, n_head=2, n_positions=96)
        model.save_pretrained(other)
        t = Tokenizer(tm.BPE(vocab={chr(i): i for i in range(33, 127)} | {"<unk>": 0}, merges=[], unk_token="<unk>"))
        t.pre_tokenizer = pre_tokenizers.Whitespace()
        PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<unk>").save_pretrained(other)
        base["--reference"] = str(other)
        base["--prefix-tokens"] = "2"
    argv = [x for kv in base.items() for x in kv] + ["--local", "--n-boot", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("expunge: error: ")
    import re

    assert re.search(expect, err[-1]), err[-1]
    assert not (tmp_path / "llm_audit").exists()  # nothing written
    if case == "bad_name":  # refused before any model was scored (no log-prob cache either)
        assert not [p for p in tmp_path.rglob("manifest.json")]
