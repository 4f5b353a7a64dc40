"""The run report: sections on real digits runs (random and class forgetting), the sweep section,
best-per-column marks, stage timings, errors that write nothing, and rendering in headless Chromium."""
from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from expunge.resolve import load_config
from expunge.jobs.report import main as report_main
from expunge.jobs.report import run_report
from expunge.report.blocks import Bullets, Details, Figure, Paragraph, Section, Table
from expunge.report.build import SECTIONS
from expunge.report.collect import load_run
from expunge.report.cr_alpha import cr_against_alpha
from expunge.report.html import render_html
from expunge.report.leaderboard import best_marks
from expunge.report.markdown import render_markdown
from expunge.report.sections import leaderboard_section, roc_section
from expunge.report.timings import recorded_config, run_timings, stage_timer
from expunge.store import Store

SECTION_IDS = [sid for sid, _, _ in SECTIONS]
SMALL = ["train.epochs=8", "audit.shadows=2"]


def _tiny_png(color: str = "tab:blue") -> bytes:
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(2, 1.5))
    fig.subplots().plot([0, 1], [0, 1], color=color)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    return buf.getvalue()


def _images(html: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', html)


def _self_contained(html: str) -> None:
    """No script, no stylesheet link, no network reference; every image a PNG data URI."""
    assert "<script" not in html and "<link" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    for src in _images(html):
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")


# --- real runs (built once per module) ------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, repo_root):
    """Random forgetting through the pipeline, which times its stages and writes the report."""
    from expunge.stages.pipeline import run_pipeline

    tmp = tmp_path_factory.mktemp("report_digits")
    cfg = load_config(repo_root / "configs/experiments/digits.yaml",
                      [f"storage={tmp}", *SMALL, "unlearn.methods=[retrain, finetune]"])
    res = run_pipeline(cfg, use_ray=False, print_table=False)
    return res, cfg


@pytest.fixture(scope="module")
def class_run(tmp_path_factory, repo_root):
    """Class forgetting (PRU's relearn protocol); no attacks, so no shadows to train."""
    from expunge.stages.pipeline import run_pipeline

    tmp = tmp_path_factory.mktemp("report_class")
    cfg = load_config(repo_root / "configs/experiments/digits_class.yaml",
                      [f"storage={tmp}", "train.epochs=8", "audit.shadows=0", "audit.metrics=[accuracy,cr,relearn]"])
    return run_pipeline(cfg, use_ray=False, print_table=False), cfg


@pytest.mark.slow
def test_digits_report_has_every_section(digits_run, capsys, tmp_path):
    res, cfg = digits_run
    assert res["html_report"].endswith("reports/report/report.html")  # the pipeline wrote it
    out = run_report(res["run_dir"], out=str(tmp_path / "copy"))
    printed = capsys.readouterr().out
    assert f"report: {out['html']}" in printed and f"summary: {out['markdown']}" in printed
    html = open(out["html"]).read()
    md = open(out["markdown"]).read()
    for sid, title, _ in SECTIONS:
        assert f'<section id="{sid}"><h2>' in html and f"## {title}" in md
    assert out["figures"] == ["cr_alpha.png", "relearn_rcd.png", "roc.png", "scores_iam.png"]
    assert len(_images(html)) == 4
    _self_contained(html)
    # leaderboard: both headline tables, the gap columns, the best mark, and the rule explained
    assert "gap_UA" in html and "avg_gap" in html and "\u2605" in html and "smallest gap to retrain" in html
    assert "**" in md and "| method |" in md
    # each BinUI AUC with its bootstrap interval, in both renderings
    interval = r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]"
    assert re.search(rf"<td>{interval}</td>", html) and re.search(rf"\| {interval} \|", md)
    # ROC over LiRA, RMIA and IAM; histograms of IAM scores; CR; RCD
    for text in ("LiRA", "RMIA", "IAM", "BinUI", "IAM score histograms", "CR against alpha per model", "RCD"):
        assert text in html, text
    # manifest: split hash, seeds, versions, per-stage wall time recorded by the pipeline, whole config
    store = Store(res["run_dir"])
    plan = store.get("split", "plan").read("plan.json")
    assert plan["hash"] in html and "torch" in html
    stages = [r["stage"] for r in run_timings(store)]
    assert stages == ["original", "unlearn", "shadows", "audit"]
    assert all(re.search(f"<td[^>]*>{s}</td>", html) for s in stages) and "as recorded by the pipeline" in html
    assert recorded_config(store)["name"] == "digits"
    # the Markdown summary's figures are files next to it; --out copied everything
    art = store.get("reports", "report")
    assert set(out["figures"]) <= set(art.files()) and "![roc.png](roc.png)" in md
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == sorted(art.files())
    # the summary written before the report is still there
    assert store.exists("reports", "summary")


@pytest.mark.slow
def test_cr_against_alpha_matches_the_audit_at_its_alpha(digits_run):
    res, _ = digits_run
    run = load_run(res["run_dir"])
    table = run.leaderboard.set_index("model")
    for key in run.audited:
        outs = {s: run.outputs(key, s) for s in ("calibration", "forget", "retain", "test")}
        curve = cr_against_alpha(outs, None, [0.05, 0.2]).set_index(["set", "alpha"])
        for s in ("forget", "retain", "test"):
            assert curve.loc[(s, 0.05), "CR"] == pytest.approx(table.loc[key, f"CR_{s}"], abs=1e-3)


@pytest.mark.slow
def test_class_forgetting_report_shows_relearn_curves(class_run):
    res, _ = class_run
    out = run_report(res["run_dir"])
    html = open(out["html"]).read()
    assert "relearn_pru.png" in out["figures"] and "relearn_rcd.png" not in out["figures"]
    assert "PRU protocol" in html and "forgotten class" in html and "relearn_acc@10" in html
    assert "test_forget" in html  # CR's class-wise protocol
    # relearn_acc@k is a percentage, like UA and forget_class_TA: 100 x the stored curve's accuracy
    run = load_run(res["run_dir"])
    board = run.leaderboard.set_index("model")
    checked = 0
    for key, curve in run.relearn_curves.items():
        for epoch, acc in zip(curve["epoch"], curve["acc"]["forget_class_test"]):
            if epoch > 0:
                assert board.loc[key, f"relearn_acc@{round(epoch)}"] == pytest.approx(100 * acc, abs=1e-3)
                checked += 1
    assert checked >= 3 * len(run.relearn_curves) > 0
    # no attack metrics in this audit: the ROC and histogram sections say so instead of vanishing
    assert "No LiRA, RMIA or IAM scores" in html and "No IAM or RMIA per-sample scores" in html
    assert len(_images(html)) == len(out["figures"]) == 2
    _self_contained(html)


# --- a synthetic run with a sweep (fast) ----------------------------------------------------------
@pytest.fixture
def sweep_run(tmp_path):
    """A run directory holding only a sweep artifact, as ``expunge sweep`` writes it."""
    run = tmp_path / "runs" / "digits"
    results = pd.DataFrame({"method": ["finetune"] * 3, "trial_id": ["a_1", "a_2", "a_3"],
                            "status": ["completed", "completed", "stopped"], "param.lr": [0.01, 0.1, 0.03],
                            "objective": [3.2, 4.1, np.nan], "TA": [98.8, 97.0, np.nan],
                            "gap_UA": [1.6, 0.5, np.nan], "pareto": [True, True, False]})
    leaderboard = pd.DataFrame({"method": ["finetune"], "objective": [3.2], "UA": [3.1], "trials": [3],
                                "params": ["lr=0.01, epochs=4"]})
    summary = {"objective": "avg_gap", "mode": "min", "constraints": ["TA_drop <= 5"], "trials": 3,
               "pareto": {"TA": "max", "gap_UA": "min"}, "status": {"completed": 2, "stopped": 1},
               "best": {"objective": {"file": "best_objective.yaml", "method": "finetune", "trial_id": "a_1",
                                      "value": 3.2}}}
    Store(str(run)).put("sweeps", "small", {
        "results.csv": results, "pareto.csv": results[results["pareto"]], "leaderboard.csv": leaderboard,
        "summary.json": summary, "best_objective.yaml": "name: digits\n", "objective_finetune.png": _tiny_png(),
        "pareto.png": _tiny_png("tab:red")})
    return run


def test_sweep_section_and_partial_run(sweep_run):
    out = run_report(str(sweep_run))
    html = open(out["html"]).read()
    assert out["figures"] == ["sweep_small_objective_finetune.png", "sweep_small_pareto.png"]
    assert "Sweep small: objective avg_gap (min), 3 trials (2 completed, 1 stopped)" in html
    assert "lr=0.01, epochs=4" in html and "best by objective: finetune = 3.2" in html
    assert "Pareto front (2 trials)" in html and "param.lr" in html
    # what the run lacks is said, not left out
    assert html.count("This run has no audit results") >= 4
    assert "No stage timings recorded" in html
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in html
    _self_contained(html)


# --- errors write nothing -------------------------------------------------------------------------
def test_missing_run_dir_is_one_line_error_and_writes_nothing(tmp_path, capsys):
    missing, out = tmp_path / "runs" / "nope", tmp_path / "out"
    assert report_main(["--run", str(missing), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("expunge: error: no run directory") and str(missing) in err
    assert not missing.exists() and not out.exists() and not (tmp_path / "runs").exists()
    # a directory that is not a run: refused, left empty
    empty = tmp_path / "empty"
    empty.mkdir()
    assert report_main([str(empty)]) == 2
    assert "not an expunge run directory" in capsys.readouterr().err and list(empty.iterdir()) == []


@pytest.mark.parametrize("argv, needle", [
    ([], "which run?"),
    (["runs/a", "--run", "runs/b"], "give one run"),
    (["runs/a", "--config", "configs/experiments/digits.yaml"], "give one run"),
    (["train.epochs=3"], "need --config"),
])
def test_argument_errors(argv, needle, capsys):
    assert report_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and needle in err


def test_config_locates_the_run_dir(tmp_path, capsys):
    missing = tmp_path / "elsewhere"
    assert report_main(["--config", "configs/experiments/digits.yaml", f"storage={missing}"]) == 2
    assert str(missing / "digits") in capsys.readouterr().err and not missing.exists()


def test_job_module_entrypoint(tmp_path):
    missing = tmp_path / "nope"
    proc = subprocess.run([sys.executable, "-m", "expunge.jobs.report", "--run", str(missing)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "no run directory" in proc.stderr
    assert not missing.exists()


# --- pieces -------------------------------------------------------------------------------------
def test_best_marks_smallest_gap_among_methods_only():
    table = pd.DataFrame({"method": ["original", "retrain", "a", "b", "c"], "UA": [1.0, 5.0, 4.0, 6.0, 9.0],
                          "gap_UA": [4.0, 0.0, 1.0, 1.0, 4.0], "avg_gap": [3.0, 0.0, 2.0, np.nan, 1.5],
                          "RTE_s": [30.0, 20.0, 3.0, 2.0, 5.0]})
    marks = best_marks(table)
    assert marks == {"gap_UA": frozenset({2, 3}), "avg_gap": frozenset({4}), "RTE_s": frozenset({3})}
    assert "UA" not in marks  # a metric value is judged through its gap column


def test_stage_timer_appends_records_and_marks_failures(tmp_path):
    store = Store(str(tmp_path / "run"))
    with stage_timer(store, "original", device="cpu", config={"name": "x"}):
        pass
    with pytest.raises(RuntimeError):
        with stage_timer(store, "audit", device="cpu"):
            raise RuntimeError("boom")
    with stage_timer(store, "original", device="cpu", config={"name": "x"}):
        pass
    records = run_timings(store)
    assert [(r["stage"], r["status"]) for r in records] == [("original", "ok"), ("audit", "failed"), ("original", "ok")]
    assert all(r["seconds"] >= 0 and r["host"] and r["device"] == "cpu" and "versions" in r["env"] for r in records)
    assert json.loads(json.dumps(records)) == records
    assert recorded_config(store) == {"name": "x"}


def test_renderers_escape_text_and_embed_figures():
    frame = pd.DataFrame({"method": ["<b>a</b>", "b|c"], "gap_UA": [0.5, np.nan]})
    sections = [Section("one", "One <&>", (Paragraph("x < y & <script>alert(1)</script>"), Bullets(("i",)),
                                           Table(frame, {"gap_UA": frozenset({0})}),
                                           Details("more", (Figure("f.png", _tiny_png(), "cap"),))))]
    html = render_html("T", "S", sections)
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;a&lt;/b&gt;" in html
    assert 'class="best"' in html and html.count("<img ") == 1
    _self_contained(html)
    md = render_markdown("T", "S", sections)
    assert "**0.500**" in md and "b\\|c" in md and "![f.png](f.png)" in md


# --- a real browser ---------------------------------------------------------------------------------
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const res = {total: imgs.length, broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0))
                                            .map(i => i.dataset.name || i.alt),
               sections: Array.from(document.querySelectorAll("section h2")).map(h => h.textContent)};
  const pre = document.createElement("pre"); pre.id = "probe-result"; pre.textContent = JSON.stringify(res);
  document.body.appendChild(pre);
});
</script>"""
BROKEN = '<img src="data:image/png;base64,iVBORw0KGgoAAAA=" data-name="deliberately-broken">'


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium on this machine (.ci/run installs it with `apt-get install -y chromium`; "
                "it could not be installed here)")


def browser_probe(report_html: str, tmp_path) -> dict:
    """Open a copy of the report plus a probe script (and one deliberately broken image, to prove the
    probe sees failures) in headless Chromium; returns which images decoded and the section titles."""
    page = tmp_path / "probe.html"
    page.write_text(report_html.replace("</body>", BROKEN + PROBE + "</body>"))
    proc = subprocess.run([chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
                           "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}",
                           "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"chromium printed no probe result (rc {proc.returncode}): {proc.stderr[-2000:]}"
    import html as html_lib

    res = json.loads(html_lib.unescape(found.group(1)))
    assert res["broken"][-1] == "deliberately-broken", res  # the probe detects a broken image
    res["broken"] = res["broken"][:-1]
    res["total"] -= 1
    return res


def test_sweep_report_renders_in_chromium(sweep_run, tmp_path):
    out = run_report(str(sweep_run))
    res = browser_probe(open(out["html"]).read(), tmp_path)
    assert res["total"] == 2 and res["broken"] == []
    assert res["sections"] == [title for _, title, _ in SECTIONS]


@pytest.mark.slow
def test_digits_report_renders_in_chromium(digits_run, tmp_path):
    res_run, _ = digits_run
    html = Store(res_run["run_dir"]).get("reports", "report").read("report.html")
    res = browser_probe(html, tmp_path)
    assert res["total"] == 4 and res["broken"] == []
    assert res["sections"] == [title for _, title, _ in SECTIONS]


# --- a synthetic audit with many methods (fast) ---------------------------------------------------
N_METHODS = 17  # 19 models with the original and retrain, as `expunge demo` audits


@pytest.fixture
def crowded_run(tmp_path):
    """An audited run of the original, retrain and 17 methods: leaderboard with AUC intervals and
    per-sample LiRA scores; ``m00`` left the model unchanged (UA, RA, TA, MIA-efficacy = original's)."""
    rng = np.random.default_rng(0)
    store = Store(str(tmp_path / "crowded"))
    keys = ["original", "retrain", *[f"m{i:02d}" for i in range(N_METHODS)]]
    for key in keys:
        store.put("models", key, {"history.json": []}, method=key)
    rows = []
    for i, key in enumerate(keys):
        auc = 0.5 + 0.01 * i
        row = {"model": key, "method": key, "UA": 2.0 + i, "RA": 99.0 - 0.1 * i, "TA": 97.0 - 0.1 * i,
               "MIA_efficacy": 5.0 + i, "RTE_s": 10.0 - 0.5 * i, "lira_binui_auc": auc,
               "lira_binui_auc_ci_low": auc - 0.05, "lira_binui_auc_ci_high": auc + 0.04}
        if key == "m00":  # did not change the model: fastest and "closest" to retrain, but not a winner
            row.update({c: rows[0][c] for c in ("UA", "RA", "TA", "MIA_efficacy")}, RTE_s=0.01)
        rows.append(row)
    board = pd.DataFrame(rows)
    ref = board.set_index("method").loc["retrain"]
    for c in ("UA", "RA", "TA", "MIA_efficacy", "lira_binui_auc"):
        board[f"gap_{c}"] = (board[c] - ref[c]).abs()
    board["avg_gap"] = board[[f"gap_{c}" for c in ("UA", "RA", "TA", "MIA_efficacy")]].mean(axis=1)
    scores = {}
    for i, key in enumerate(keys):
        scores[f"{key}__lira__lira_retain.npy"] = rng.normal(0.05 * i, 1, 60)
        scores[f"{key}__lira__lira_forget.npy"] = rng.normal(0, 1, 30)
    store.put("audit", "results", {"leaderboard.parquet": board, **scores},
              config={"models": keys, "audit": {"metrics": ["accuracy", "lira"], "shadows": 1}})
    return load_run(str(tmp_path / "crowded")), board


def test_unchanged_method_is_never_marked_best(crowded_run):
    from expunge.report.leaderboard import unchanged

    run, board = crowded_run
    assert board.loc[unchanged(board), "method"].tolist() == ["m00"]
    marks = best_marks(board)
    row = board.index[board["method"] == "m00"][0]
    assert all(row not in rows for rows in marks.values()), marks
    # m00 is the fastest and has the original's gaps, smaller than any other method's: the marks go to the
    # next best instead
    assert marks["avg_gap"] == frozenset({3})
    assert marks["RTE_s"] == frozenset({int(board["RTE_s"].where(board["method"] != "m00").idxmin())})
    # the headline tables mark a subset of columns: the check still reads the full rows
    section = leaderboard_section(run)
    tables = [b for b in section.blocks if isinstance(b, Table)]
    assert tables and all(row not in rows for t in tables for rows in t.marks.values())
    notes = " ".join(b.text for b in section.blocks if isinstance(b, Paragraph))
    assert "unchanged from the original" in notes and "m00" in notes
    # no original row: nothing to compare with, so nothing is excluded
    assert not unchanged(board[board["method"] != "original"]).any()


def test_leaderboard_shows_auc_with_its_interval(crowded_run):
    from expunge.report.leaderboard import with_intervals

    run, board = crowded_run
    cell = with_intervals(board[["method", "lira_binui_auc"]], board).loc[2, "lira_binui_auc"]
    assert cell == "0.520 [0.470, 0.560]"
    no_ci = board.assign(lira_binui_auc_ci_low=np.nan)
    assert with_intervals(board[["lira_binui_auc"]], no_ci).loc[2, "lira_binui_auc"] == "0.520"
    sections = [leaderboard_section(run)]
    md, html = render_markdown("T", "S", sections), render_html("T", "S", sections)
    headline = next(b for b in sections[0].blocks if isinstance(b, Table) and "lira_binui_auc" in b.frame)
    assert headline.frame["lira_binui_auc"].tolist()[:2] == ["0.500 [0.450, 0.540]", "0.510 [0.460, 0.550]"]
    assert "| 0.520 [0.470, 0.560] |" in md and "<td>0.520 [0.470, 0.560]</td>" in html  # aligned as a number


def test_roc_of_19_models_draws_the_best_few_and_lists_the_rest(crowded_run):
    from expunge.report.sections import ROC_METHODS, drawn_models

    run, board = crowded_run
    section = roc_section(run)
    rest = next(b for b in section.blocks if isinstance(b, Table) and "Not drawn" in b.caption)
    drawn = drawn_models(run.audited, {k: run.method(k) for k in run.audited},
                         dict(zip(board["model"], board["avg_gap"])))
    best = board[~board["method"].isin(["original", "retrain"])].nsmallest(ROC_METHODS, "avg_gap")["model"]
    assert drawn == [k for k in run.audited if k in {"original", "retrain", *best}]
    assert sorted(rest.frame["method"]) == sorted(set(run.audited) - set(drawn))
    assert len(rest.frame) == N_METHODS - ROC_METHODS and "lira_binui_auc" in rest.frame
    fig = next(b for b in section.blocks if isinstance(b, Figure))
    assert "others are in the table below" in fig.caption


def test_drawn_models_order_and_missing_gaps():
    from expunge.report.sections import drawn_models

    keys = ["original", "retrain", "a", "b", "c", "d"]
    methods = {k: k for k in keys}
    assert drawn_models(keys, methods, {"a": 3.0, "b": np.nan, "c": 1.0, "d": 2.0}, k=2) == ["original", "retrain",
                                                                                           "c", "d"]
    assert drawn_models(keys, methods, {}, k=3) == ["original", "retrain", "a", "b", "c"]  # audit order
    assert drawn_models(keys, methods, {}, k=10) == keys


def test_roc_legend_is_outside_every_axes():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from expunge.report import figures

    labels = ["original", "retrain", *[f"boundary_expanding_{i}" for i in range(5)]]  # long names
    x = np.linspace(0.01, 1, 50)
    curves = {a: {label: (x, np.sqrt(x), 0.6) for label in labels} for a in ("LiRA", "RMIA", "IAM")}
    fig = figures.roc_plot(curves, figures.styles(labels, labels), 100, 100)
    FigureCanvasAgg(fig).draw()
    legends = [ax.get_legend() for ax in fig.axes]
    assert all(leg is not None and len(leg.get_texts()) == len(labels) + 1 for leg in legends)  # + chance
    boxes = [leg.get_window_extent() for leg in legends]
    for i, box in enumerate(boxes):
        for ax in fig.axes:  # neither over any panel nor over its axis label
            assert not box.overlaps(ax.get_window_extent()) and not box.overlaps(ax.xaxis.label.get_window_extent())
        assert not any(box.overlaps(other) for other in boxes[i + 1:])
    assert figures.roc_figure(curves, figures.styles(labels, labels), 100, 100).startswith(b"\x89PNG")


def test_relearn_accuracy_is_a_percentage_like_the_other_accuracies():
    from expunge.audit.leaderboard import is_percent, to_percent
    from expunge.sweep.objective import trial_row

    raw = {"UA": 0.25, "relearn_acc@1": 0.125, "relearn_acc@10": 0.5, "rcd_steps": 40.0}
    table = to_percent(pd.DataFrame([raw]))
    assert table.loc[0, "relearn_acc@10"] == 50.0 and table.loc[0, "UA"] == 25.0 and table.loc[0, "rcd_steps"] == 40
    # a sweep trial reads the same units as the leaderboard (so gaps to retrain's row are consistent)
    row = trial_row(raw, {"relearn_acc@10": 40.0}, {"relearn_acc@10": 90.0})
    assert row["relearn_acc@10"] == 50.0 and row["gap_relearn_acc@10"] == 10.0 and row["relearn_acc@10_drop"] == 40.0
    assert is_percent("relearn_acc@5") and not is_percent("rcd_steps") and not is_percent("rcd_reached")


def test_terminal_selection_puts_forget_vs_heldout_after_the_binui_aucs():
    from expunge.report.leaderboard import SHOWN, shown_columns

    attacks = ("lira", "rmia", "iam")
    binui = [SHOWN.index(f"{a}_binui_auc") for a in attacks]
    fvh = [SHOWN.index(f"{a}_forget_vs_heldout_auc") for a in attacks]
    assert fvh == list(range(max(binui) + 1, max(binui) + 4)), SHOWN
    table = pd.DataFrame(columns=["gap_UA", "iam_forget_vs_heldout_auc", "method", "lira_binui_auc_ci_low", "UA"])
    assert shown_columns(table) == ["method", "UA", "iam_forget_vs_heldout_auc"]
