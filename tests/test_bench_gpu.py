"""`python -m expunge.jobs.bench_gpu --tiny` runs every section on the CPU without Ray and writes the
table as JSON of the documented shape (no timing assertion: the numbers are a report)."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import pytest

from expunge.jobs import bench_gpu

#: Runs the job as `python -m` would, with `ray` made unimportable (None in sys.modules: `import ray`
#: raises ModuleNotFoundError and importlib.util.find_spec("ray") returns None, as on a machine
#: without Ray), then reports any Ray module that got loaded anyway.
NO_RAY = textwrap.dedent("""
    import runpy, sys
    sys.modules["ray"] = None
    sys.argv = ["bench_gpu", *sys.argv[1:]]
    code = 0
    try:
        runpy.run_module("expunge.jobs.bench_gpu", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
    loaded = sorted(m for m, mod in sys.modules.items() if (m == "ray" and mod is not None) or m.startswith("ray."))
    print("RAY MODULES:", loaded)
    sys.exit(code)
""")


def test_bench_gpu_tiny_runs_without_ray_and_writes_the_table(tmp_path):
    out = tmp_path / "bench.json"
    # one intra-op thread: on a machine busy with other work, two threads contending for two cores
    # make this smoke run several times slower, and its numbers are not checked anyway
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", NO_RAY, "--tiny", "--out", str(out)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RAY MODULES: []" in proc.stdout
    assert f"JSON: {out}" in proc.stdout and "| section | measure" in proc.stdout
    res = json.loads(out.read_text())

    sizes = bench_gpu.TINY
    assert res["tiny"] is True and res["device"] == "cpu" and res["sections"] == list(bench_gpu.SECTIONS)
    assert set(res["seconds"]) == {*bench_gpu.SECTIONS, "total"}
    assert res["command"] == "python -m expunge.jobs.bench_gpu --tiny" and res["date"]

    fleet = res["fleet"]
    assert [r["K"] for r in fleet["rows"]] == list(sizes.fleet_ks)
    for row in fleet["rows"]:
        assert row["ensemble"] == sizes.ensemble and row["ensemble_calls"] == -(-row["K"] // sizes.ensemble)
        assert row["complete"] is True
        assert row["models_timed"] == {"loop": sizes.loop_models, "fleet": sizes.fleet_models, "ensemble": row["K"]}
        for path in ("loop", "fleet", "ensemble"):
            assert row[f"{path}_models_per_hour"] > 0
        assert len(row["ensemble_seconds"]) == row["ensemble_calls"]
        for pair in ("fleet_vs_loop", "ensemble_vs_fleet"):
            r = row[pair]
            assert r["ratio_min"] <= r["ratio"] <= r["ratio_max"] and r["ratio"] in r["ratios"]

    llm = res["llm"]
    assert llm["sequences"] == sizes.llm_texts and llm["rounds"] == sizes.llm_rounds
    assert llm["naive_tokens_per_s"] > 0 and llm["batched_tokens_per_s"] > 0
    assert llm["ratio_min"] <= llm["ratio"] <= llm["ratio_max"] and len(llm["ratios"]) == sizes.llm_rounds
    assert llm["max_abs_logp_diff"] < 1e-4  # both paths compute the same numbers
    assert "batched_fraction_of_peak" not in llm and res["peak_bf16_tflops"] is None  # only on CUDA

    audit = res["audit"]
    assert (audit["N"], audit["K"]) == (sizes.audit_n, sizes.audit_k)
    assert set(audit["cpu_seconds"]) == {"lira", "rmia", "iam", "total"}
    assert all(v > 0 for v in audit["cpu_seconds"].values())
    assert audit["gpu_seconds"] is None and audit["gpu_note"].startswith("n/a")

    # one table: [section, measure, value] rows of every section, as printed
    assert {row[0] for row in res["table"]} == set(bench_gpu.SECTIONS)
    assert all(len(row) == 3 for row in res["table"])
    for _, measure, _ in res["table"]:
        assert measure in proc.stdout


def test_ensemble_halves_on_out_of_memory(monkeypatch):
    """An ensemble too large for the device is retried with half the members per call."""
    import expunge.jobs.bench_fleet as bf

    real = bf.fleet_ensemble

    def small_device(data, model_name, idx, cfg, seeds, model_kwargs=None):
        if len(seeds) > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(data, model_name, idx, cfg, seeds, model_kwargs)

    monkeypatch.setattr(bf, "fleet_ensemble", small_device)
    bench_gpu.torch.set_num_threads(1)  # as in the smoke run above; conftest restores the count
    notes = []
    res = bench_gpu.bench_fleet(dataclasses.replace(bench_gpu.TINY, fleet_ks=(2,)), "cpu", notes.append)
    assert [(r["ensemble"], r["ensemble_calls"]) for r in res["rows"]] == [(1, 2)] and res["ensemble_requested"] == 2
    assert any("out of memory" in n for n in notes)


def test_no_gpu_and_full_sizes_is_allowed_but_cuda_without_cuda_is_refused(tmp_path):
    if bench_gpu.torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit):
        bench_gpu.main(["--device", "cuda", "--out", str(tmp_path / "x.json")])
