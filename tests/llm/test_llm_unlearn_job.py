"""``expunge llm-unlearn --local`` end to end on tiny byte-level GPT-2s the tests train: per-epoch
checkpoints and table, the best epoch by the stated rule, reuse, exact continuation, damage, the
report, and every bad input as one line with exit status 2 and nothing written."""
from __future__ import annotations

import json
import re
import shutil
import sys

import numpy as np
import pytest

from expunge.jobs.llm_unlearn import main
from expunge.llm.unlearn_run import KIND, REPORT_KIND, RESULT_KIND, checkpoint_key, load_job_config, run_llm_unlearn
from expunge.store import Store

EPOCHS = 3
METHOD = "grad_diff"


def _write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An original model trained on forget + retain canaries, a retain model trained without the forget
    ones, and the sets as JSON lines (text, and prompt/answer pairs cut from the same canaries)."""
    import torch

    from expunge.llm.corpus import make_corpus
    from expunge.llm.models import tiny_gpt2
    from expunge.llm.train import train_lm

    root = tmp_path_factory.mktemp("llm_unlearn")
    c = make_corpus(n_docs=64, n_members=24, n_nonmembers=8, n_population=2, canary_words=5, seed=1)
    forget, kept, held = c.members[:8], c.members[8:], c.nonmembers
    retain = kept + c.docs[:8]
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, texts in (("original", c.docs + (forget + kept) * 4), ("retain_model", c.docs + kept * 4)):
            model, tok = tiny_gpt2(n_layer=1, n_embd=32, n_head=2, n_positions=96, seed=0)
            train_lm(model, tok, texts, steps=150, batch_size=16, lr=1e-2, seed=0)
            model.save_pretrained(root / name)
            tok.save_pretrained(root / name)
    finally:
        torch.set_num_threads(old)
    files = {}
    for name, texts in (("forget", forget), ("retain", retain), ("heldout", held)):
        files[name] = _write_jsonl(root / f"{name}.jsonl",
                                   [{"id": f"{name}{i}", "text": t} for i, t in enumerate(texts)])

        def qa(t: str) -> dict[str, str]:
            head, tail = t.split(" ", 2)[:2], t.split(" ", 2)[2]
            return {"question": " ".join(head), "answer": " " + tail}

        files[f"{name}_qa"] = _write_jsonl(root / f"{name}_qa.jsonl", [qa(t) for t in texts])
    return {"root": root, "model": str(root / "original"), "retain_model": str(root / "retain_model"), **files}


def _args(world, storage, *extra: str, retain_model: bool = True) -> list[str]:
    args = [f"model={world['model']}", f"forget={world['forget']}", f"retain={world['retain']}",
            f"heldout={world['heldout']}", f"storage={storage}", "name=run", f"unlearn.method={METHOD}",
            f"unlearn.epochs={EPOCHS}", "unlearn.batch_size=4", "unlearn.lr=1e-3", "threads=1", "audit.n_boot=20",
            "audit.n_levels=50", "data.id_column=id", "--local"]
    if retain_model:
        args.append(f"retain_model={world['retain_model']}")
    return ["configs/llm/unlearn_tiny.yaml", *args, *extra]


@pytest.fixture(scope="module")
def first_run(world, tmp_path_factory):
    storage = tmp_path_factory.mktemp("runs")
    argv = _args(world, storage)
    assert main(argv) == 0
    return {"storage": storage, "argv": argv, "store": Store(str(storage / "run"))}


def test_checkpoints_table_best_epoch_and_report(first_run, capsys):
    store = first_run["store"]
    for e in range(1, EPOCHS + 1):
        art = store.get(KIND, checkpoint_key(METHOD, e), verify=True)  # every file's hash checks
        assert art.manifest["epoch"] == e and "model.safetensors" in art.files()
    result = store.get(RESULT_KIND, METHOD, verify=True)
    table = result.read("epochs.parquet")
    assert result.read("epochs.csv")["model"].tolist() == table["model"].tolist()
    assert table["model"].tolist() == ["original", *(f"epoch {e}" for e in range(1, EPOCHS + 1)), "retain model"]
    aucs = [c for c in table.columns if c.endswith("_auc")]
    assert {f"{a}_{t}_auc" for a in ("loss", "zlib", "minkpp", "iam_online", "lira_online", "rmia_online")
            for t in ("binui", "forget_vs_heldout")} == set(aucs)
    assert {"retain_ppl", "heldout_ppl", "utility_drop_pct", "forget_loss"} <= set(table.columns)

    # gradient difference raises the forget loss above the original's, more with every epoch
    loss = table.set_index("model")["forget_loss"]
    epochs = [loss[f"epoch {e}"] for e in range(1, EPOCHS + 1)]
    assert all(x > loss["original"] for x in epochs) and np.all(np.diff(epochs) > 0)
    assert epochs[-1] - loss["original"] > 0.05

    # the stated rule, recomputed: with a retain model, the epoch with the smallest mean
    # |AUC - AUC_retain| over every attack and task
    ref = table.loc[table["model"] == "retain model", aucs].to_numpy(dtype=float)[0]
    rows = table[table["model"].str.startswith("epoch")]
    dist = np.nanmean(np.abs(rows[aucs].to_numpy(dtype=float) - ref), axis=1)
    best = json.loads(result.read_bytes("result.json"))
    assert best["objective"] == "retain" and best["epoch"] == int(rows["epoch"].iloc[int(np.argmin(dist))])
    assert best["value"] == pytest.approx(dist.min()) and "closest to the retain model" in best["why"]
    assert table.loc[table["best"], "epoch"].tolist() == [best["epoch"]]
    assert best["checkpoint"] == f"{KIND}/{checkpoint_key(METHOD, best['epoch'])}"
    import yaml

    assert yaml.safe_load(result.read("best_config.yaml"))["unlearn"]["epochs"] == best["epoch"]

    report = store.get(REPORT_KIND, METHOD, verify=True)
    assert {"report.md", "report.html", "curves.png", "tradeoff.png", "roc_best_binui.png",
            "roc_best_forget_vs_heldout.png"} <= set(report.files())
    md = report.read("report.md")
    assert "Per-epoch table" in md and "![curves.png](curves.png)" in md and best["why"] in md
    assert "<html" in report.read("report.html")


def test_rerun_reuses_every_epoch_and_refuses_a_damaged_checkpoint(world, first_run, tmp_path, capsys):
    storage = tmp_path / "copy"
    shutil.copytree(first_run["storage"], storage)
    store = Store(str(storage / "run"))
    created = {e: store.get(KIND, checkpoint_key(METHOD, e)).manifest["created"] for e in range(1, EPOCHS + 1)}
    cfg = load_job_config("configs/llm/unlearn_tiny.yaml",
                          [a for a in _args(world, storage)[1:] if a != "--local"])
    res = run_llm_unlearn(cfg)
    assert res["trained_epochs"] == 0 and res["passes"]["computed"] == 0  # no training, no model pass
    assert {e: store.get(KIND, checkpoint_key(METHOD, e)).manifest["created"] for e in created} == created
    first = json.loads(first_run["store"].get(RESULT_KIND, METHOD).read_bytes("result.json"))
    assert res["best"]["epoch"] == first["epoch"] and res["best"]["content_hash"] == first["content_hash"]
    capsys.readouterr()

    weights = storage / "run" / KIND / METHOD / "epoch-0002" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert main(_args(world, storage)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("expunge: error: artifact llm_models/grad_diff/epoch-0002: file "
                                               "model.safetensors is corrupt")
    assert "--rebuild" in err[0]
    assert main(_args(world, storage, "--rebuild")) == 0
    art = store.get(KIND, checkpoint_key(METHOD, 2), verify=True)
    before = first_run["store"].get(KIND, checkpoint_key(METHOD, 2))
    assert art.manifest["content_hash"] == before.manifest["content_hash"]  # retrained to the same weights
    capsys.readouterr()
    # other settings in the same run directory: refused by name, not silently mixed with the stored epochs
    assert main(_args(world, storage, "unlearn.lr=2e-3")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "artifact llm_models/grad_diff/epoch-0001 does not match this request" in err[0]
    assert "config.unlearn.lr: stored 0.001, requested 0.002" in err[0]


def test_more_epochs_continue_from_the_stored_state_exactly(world, first_run, tmp_path, capsys):
    """Two epochs, then three: the third starts from the stored loop state (no retraining) and its
    weights equal the uninterrupted three-epoch run's, byte for byte."""
    storage = tmp_path / "grow"
    assert main(_args(world, storage, f"unlearn.epochs={EPOCHS - 1}")) == 0
    capsys.readouterr()
    assert main(_args(world, storage)) == 0
    assert f"continuing from the stored epoch {EPOCHS - 1}" in capsys.readouterr().err
    grown = Store(str(storage / "run")).get(KIND, checkpoint_key(METHOD, EPOCHS), verify=True)
    straight = first_run["store"].get(KIND, checkpoint_key(METHOD, EPOCHS))
    assert grown.manifest["files"]["model.safetensors"] == straight.manifest["files"]["model.safetensors"]


def test_prompt_answer_data_without_a_retain_model_selects_by_forgetting(world, tmp_path, capsys):
    """QA pairs (loss on answer tokens), no retain model: the objective is forgetting under the
    utility-drop constraint, and answer probabilities are reported."""
    storage = tmp_path / "qa"
    argv = [f"model={world['model']}", f"forget={world['forget_qa']}", f"retain={world['retain_qa']}",
            f"heldout={world['heldout_qa']}", f"storage={storage}", "name=qa", "unlearn.method=npo",
            "unlearn.epochs=3", "unlearn.batch_size=4", "unlearn.lr=3e-3", "threads=1", "audit.n_boot=0",
            "select.utility_drop_max=3", "--local"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    result = Store(str(storage / "qa")).get(RESULT_KIND, "npo", verify=True)
    table, best = result.read("epochs.parquet"), json.loads(result.read_bytes("result.json"))
    assert {"forget_answer_prob", "retain_answer_prob", "heldout_answer_prob"} <= set(table.columns)
    assert "retain model" not in set(table["model"]) and "iam_online_binui_auc" not in table.columns
    orig = table.loc[table["model"] == "original"].iloc[0]
    last = table.loc[table["epoch"] == 3].iloc[0]
    assert last["forget_answer_prob"] < orig["forget_answer_prob"]
    # the rule, recomputed: among epochs within the utility limit, |AUC(loss, forget vs held-out) - 0.5|
    # smallest; when none is within it, the smallest utility drop
    rows = table[table["epoch"].astype("Float64").fillna(0) >= 1]
    drop = 100 * (rows["heldout_ppl"] / orig["heldout_ppl"] - 1)
    assert np.allclose(drop, rows["utility_drop_pct"])
    ok = rows[drop <= 3]
    expect = (ok.iloc[int(np.argmin(np.abs(ok["loss_forget_vs_heldout_auc"] - 0.5)))] if len(ok)
              else rows.iloc[int(np.argmin(drop))])
    assert best["objective"] == "forgetting" and best["epoch"] == int(expect["epoch"])
    assert best["constraint_met"] == bool(len(ok))
    assert f"best: {best['why']}" in out and "report: " in out and "per-epoch table: " in out


def test_best_config_reproduces_the_best_checkpoint(first_run, tmp_path):
    """best_config.yaml (the run's settings with unlearn.epochs = the best epoch) retrains, in a fresh
    run directory, the same weights as the stored best checkpoint."""
    result = first_run["store"].get(RESULT_KIND, METHOD)
    best = json.loads(result.read_bytes("result.json"))
    (tmp_path / "best.yaml").write_text(result.read("best_config.yaml"))
    assert main([str(tmp_path / "best.yaml"), f"storage={tmp_path / 'again'}", "--local"]) == 0
    again = Store(str(tmp_path / "again" / "run")).get(KIND, checkpoint_key(METHOD, best["epoch"]), verify=True)
    assert again.manifest["content_hash"] == best["content_hash"]


@pytest.mark.parametrize("method", ["ga", "simnpo", "rmu"])
def test_every_method_runs_per_epoch(world, tmp_path, method):
    """The other methods through the same job (npo: the prompt/answer test; grad_diff: the rest)."""
    storage = tmp_path / "runs"
    assert main(_args(world, storage, f"unlearn.method={method}", "unlearn.epochs=2", "unlearn.batch_size=8",
                      "unlearn.rmu_layer=0", "audit.n_boot=0", retain_model=False)) == 0
    store = Store(str(storage / "run"))
    table = store.get(RESULT_KIND, method, verify=True).read("epochs.parquet")
    assert table["model"].tolist() == ["original", "epoch 1", "epoch 2"]
    assert (table["forget_loss"].iloc[1:] > table["forget_loss"].iloc[0]).all()
    assert store.get(KIND, checkpoint_key(method, 2), verify=True).manifest["method"] == method


def test_the_command_is_registered(world, tmp_path, capsys):
    from expunge.cli import main as cli

    assert cli(["llm-unlearn", *_args(world, tmp_path / "x"), "--dry-run"]) == 0
    assert "the config is valid" in capsys.readouterr().out
    # no YAML: the settings are all overrides
    assert cli(["llm-unlearn", f"model={world['model']}", f"forget={world['forget']}", f"heldout={world['heldout']}",
                f"storage={tmp_path / 'x'}", "unlearn.method=ga", "--dry-run", "--local"]) == 0
    assert "with ga for 1 epoch(s)" in capsys.readouterr().out
    assert not (tmp_path / "x").exists()


def _other_tokenizer_model(path):
    from tokenizers import Tokenizer, models as tm, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from expunge.llm.models import tiny_gpt2

    model, _ = tiny_gpt2(n_layer=1, n_embd=32, n_head=2, n_positions=96)
    model.save_pretrained(path)
    t = Tokenizer(tm.BPE(vocab={chr(i): i for i in range(33, 127)} | {"<unk>": 0}, merges=[], unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<unk>").save_pretrained(path)
    return str(path)


@pytest.mark.parametrize("case, expect", [
    ("no_weights", r"model '.*nothing': the directory has no weights"),
    ("tokenizer_mismatch", r"retain model '.*other' against model .*: tokenizer mismatch"),
    ("overlap", r"the forget and retain sets overlap: 1 item\(s\) in both \(e.g. forget id 'forget3' = retain id "
                r"'dup'\)"),
    ("empty_forget", r"forget set: dataset .*empty.jsonl has no rows"),
    ("qa_without_answer", r"forget set: prompt/answer dataset .* has no answer column 'answer' \(columns: question, "
                          r"reply\)"),
    ("lora_without_peft", r"unlearn.lora=true needs the optional package 'peft'"),
    ("rmu_layer", r"rmu_layer 4 is out of range for a model with 1 layers"),
    ("fractional_epochs", r"unlearn.epochs: a whole number of epochs"),
    ("unknown_method", r"unlearn.method: unknown LLM unlearning method 'nop'; did you mean npo"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(world, tmp_path, capsys, monkeypatch, case, expect):
    storage = tmp_path / "runs"
    extra: list[str] = []
    if case == "no_weights":
        empty = tmp_path / "nothing"
        empty.mkdir()
        shutil.copy(world["root"] / "original" / "config.json", empty / "config.json")
        extra.append(f"model={empty}")
    elif case == "tokenizer_mismatch":
        extra.append(f"retain_model={_other_tokenizer_model(tmp_path / 'other')}")
    elif case == "overlap":
        rows = [json.loads(x) for x in open(world["retain"])]
        rows.append({"id": "dup", "text": [json.loads(x) for x in open(world["forget"])][3]["text"] + " "})
        extra.append(f"retain={_write_jsonl(tmp_path / 'retain.jsonl', rows)}")
    elif case == "empty_forget":
        (tmp_path / "empty.jsonl").write_text("")
        extra.append(f"forget={tmp_path / 'empty.jsonl'}")
    elif case == "qa_without_answer":
        extra.append(f"forget={_write_jsonl(tmp_path / 'q.jsonl', [{'question': 'Who?', 'reply': 'Me.'}])}")
    elif case == "lora_without_peft":
        monkeypatch.setitem(sys.modules, "peft", None)  # import peft -> ImportError
        extra.append("unlearn.lora=true")
    elif case == "rmu_layer":
        extra += ["unlearn.method=rmu", "unlearn.rmu_layer=4"]
    elif case == "fractional_epochs":
        extra.append("unlearn.epochs=2.5")
    elif case == "unknown_method":
        extra.append("unlearn.method=nop")
    assert main(_args(world, storage, *extra)) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("expunge: error: "), captured.err
    assert re.search(expect, err[0]), err[0]
    assert not storage.exists()  # nothing written, not even the run directory
