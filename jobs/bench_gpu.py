"""One GPU benchmark command, without Ray: fleets, batched ensembles, the LM scorer and the audit math.

``python -m expunge.jobs.bench_gpu [--device auto] [--out FILE] [--sections fleet llm audit] [--tiny]``

Written for a machine with torch, timm and transformers but no Ray (nothing here imports it), and
sized for under 8 minutes on one H100 or H200 (the fleet section, the longest, starts no new ensemble
call after 5 minutes). It measures, in one run:

* **fleet**: models per hour of a K = 32 and a K = 128 ``fastnet`` fleet on synthetic CIFAR-shaped
  data (50,000 x 3 x 32 x 32, 10 classes, each model on 40,000 samples, 2 epochs, batch 512, SGD
  lr 0.05, augmentation), three ways, interleaved (one of each per round, the round's ratios
  reported as median and range):

  - *loop*: one model at a time the seed code's way, a ``DataLoader`` over PIL images with per-sample
    torchvision transforms (:func:`expunge.jobs.bench_fleet.baseline_member`);
  - *fleet path*: one model at a time on expunge's path, uint8 data held on the device, batched
    augmentation, :func:`expunge.train.engine.train` (:func:`~expunge.jobs.bench_fleet.fleet_member`,
    what one fleet task runs; without Ray the tasks run one after another in this process);
  - *batched ensemble*: ``fleet.ensemble`` = E models trained together as one vmapped model
    (:func:`~expunge.jobs.bench_fleet.fleet_ensemble`, E = 16; halved on an out-of-memory error).

  The ensemble path trains all K models (K / E calls), unless the fleet section has run for 5 minutes,
  when no further call starts and the rate is that of the calls made (``complete``: false). The two
  sequential paths run at a rate that does not depend on K, so a few of their models are timed per K
  (``models_timed``) and their rate stands for the whole fleet. Times count training only (data and model construction excluded, as
  ``bench_fleet`` does), after a warm-up of each path;
* **llm**: tokens per second of the batched LM scorer (:func:`expunge.llm.scoring.token_logprobs`)
  against the one-sequence-at-a-time loop, and the scorer's fraction of the GPU's peak dense bf16 rate
  (:func:`expunge.jobs.bench_llm.run_bench_llm`): a randomly initialised byte-level GPT-2 with GPT-2
  small's shape (12 layers, 768 wide, 12 heads; bf16) on 512 texts of 4-60 words. FLOPs are estimated
  as 2 · parameters · input tokens (attention's sequence-length term ignored); the peak is read from
  :data:`expunge.jobs.bench_llm.PEAK_TFLOPS` by device name (H100 SXM and H200: 989 TFLOP/s dense
  bf16, from the vendor data sheets);
* **audit**: the audit math of LiRA, RMIA and IAM (the registered metrics of :mod:`expunge.metrics`,
  as the audit stage calls them: signals, scores, AUCs and bootstrap intervals) on N = 50,000 audited
  samples with K = 128 shadow models, 5,000 population and 10,000 shadow-pool samples, from seeded
  random logits. These metrics are NumPy code, so they run on the CPU only; the GPU column is n/a.

Prints one table and writes every number as JSON (``--out``, default ``bench_gpu.json`` in the working
directory; the path is printed). The JSON is rewritten after each section, so an interrupted run keeps
what it finished. ``--tiny`` runs every section at toy sizes on the CPU in seconds (the test suite's
check of this command). Never a timed assertion: a report.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from expunge.jobs.benchtools import describe_ratio, median, ratio_summary


@dataclass(frozen=True)
class Sizes:
    """Every size the benchmark uses; :data:`FULL` on a GPU, :data:`TINY` for ``--tiny``."""

    # fleet
    n_images: int
    image_shape: tuple[int, int, int]
    fastnet_width: float
    fleet_ks: tuple[int, ...]
    ensemble: int
    epochs: int
    batch_size: int
    loop_models: int  # models of the one-at-a-time loop timed per K
    fleet_models: int  # models of the fleet path timed per K
    fleet_budget_s: float  # no new ensemble call once the fleet section has run this long
    # llm
    llm_layers: int
    llm_width: int
    llm_heads: int
    llm_texts: int
    llm_rounds: int
    llm_min_seconds: float
    # audit
    audit_n: int
    audit_k: int
    audit_population: int
    audit_shadow_pool: int
    audit_rounds: int


FULL = Sizes(n_images=50_000, image_shape=(3, 32, 32), fastnet_width=1.0, fleet_ks=(32, 128), ensemble=16,
             epochs=2, batch_size=512, loop_models=2, fleet_models=4, fleet_budget_s=300.0,
             llm_layers=12, llm_width=768, llm_heads=12, llm_texts=512, llm_rounds=3, llm_min_seconds=2.0,
             audit_n=50_000, audit_k=128, audit_population=5_000, audit_shadow_pool=10_000, audit_rounds=2)
TINY = Sizes(n_images=400, image_shape=(3, 16, 16), fastnet_width=0.25, fleet_ks=(2, 4), ensemble=2,
             epochs=1, batch_size=64, loop_models=1, fleet_models=1, fleet_budget_s=600.0,
             llm_layers=1, llm_width=32, llm_heads=2, llm_texts=16, llm_rounds=2, llm_min_seconds=0.05,
             audit_n=2_000, audit_k=8, audit_population=300, audit_shadow_pool=400, audit_rounds=1)

SECTIONS = ("fleet", "llm", "audit")


def log(msg: str) -> None:
    """Progress on stderr, so stdout holds only the table."""
    print(f"[bench_gpu {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_name() -> str:
    """The CPU model (Linux's /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def resolve(device: str) -> str:
    """``auto`` -> ``cuda`` when CUDA is available, else ``cpu``; anything else as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


# --- fleet -----------------------------------------------------------------------------------------
def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def bench_fleet(sizes: Sizes, device: str, progress: Callable[[str], None] = log) -> dict[str, Any]:
    """Models per hour of each K-model fleet on the three paths (module docstring), interleaved."""
    from expunge.config import TrainConfig
    from expunge.data import DeviceData, load_dataset
    from expunge.jobs.bench_fleet import baseline_member, fleet_ensemble, fleet_member

    t_start = time.perf_counter()
    ds = load_dataset("synthetic", n=sizes.n_images, num_classes=10, shape=sizes.image_shape, noise=0.35, seed=0)
    data = DeviceData(ds, device, channels_last=True)
    rng = np.random.default_rng(0)
    idx = np.sort(rng.permutation(len(ds))[: int(0.8 * len(ds))])
    cfg = TrainConfig(epochs=sizes.epochs, batch_size=sizes.batch_size, lr=0.05, augment=True)
    kw = {"width": sizes.fastnet_width}
    # warm-up of every path (CUDA context, cuDNN algorithm choice, allocator) on a small subset
    warm = TrainConfig(**{**cfg.model_dump(), "epochs": 1})
    small = idx[: min(len(idx), 4 * sizes.batch_size)]
    baseline_member(ds, "fastnet", small, warm, 0, device, kw)
    fleet_member(data, "fastnet", small, warm, 0, kw)
    ensemble = sizes.ensemble
    while True:
        try:
            fleet_ensemble(data, "fastnet", small, warm, list(range(ensemble)), kw)
            break
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            if not _is_oom(exc) or ensemble == 1:
                raise
            ensemble //= 2  # the device cannot hold E members' activations at once: fewer per call
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            progress(f"fleet: out of memory with fleet.ensemble={ensemble * 2}, using {ensemble}")
    seed = 1000  # every timed model has its own seed
    rows = []
    for k in sizes.fleet_ks:
        calls = math.ceil(k / ensemble)
        loop_s, fleet_s, ens = [], [], []  # seconds per model / (models, seconds) per call
        for r in range(calls):
            if r and time.perf_counter() - t_start > sizes.fleet_budget_s:
                # keeps the whole command within its time on a slower device: the ensemble's rate is
                # then measured on the calls made (identical calls, so their rate does not depend on K)
                progress(f"fleet K={k}: time budget of {sizes.fleet_budget_s:.0f} s reached after {r} ensemble calls")
                break
            # one round: a loop model, a fleet-path model (while their quota lasts), one ensemble call
            if r < sizes.loop_models:
                loop_s.append(baseline_member(ds, "fastnet", idx, cfg, seed, device, kw))
                seed += 1
            if r < sizes.fleet_models:
                fleet_s.append(fleet_member(data, "fastnet", idx, cfg, seed, kw))
                seed += 1
            members = list(range(seed, seed + min(ensemble, k - r * ensemble)))
            seed += len(members)
            ens.append((len(members), fleet_ensemble(data, "fastnet", idx, cfg, members, kw)))
            progress(f"fleet K={k}: round {r + 1}/{calls} done")
        # a sequential path needs more rounds than the ensemble has calls when its quota exceeds them
        while len(loop_s) < sizes.loop_models:
            loop_s.append(baseline_member(ds, "fastnet", idx, cfg, seed, device, kw))
            seed += 1
        while len(fleet_s) < sizes.fleet_models:
            fleet_s.append(fleet_member(data, "fastnet", idx, cfg, seed, kw))
            seed += 1
        loop_rates = [3600 / s for s in loop_s]
        fleet_rates = [3600 / s for s in fleet_s]
        ens_rates = [3600 * m / s for m, s in ens]
        n_fl = min(len(loop_rates), len(fleet_rates))
        n_ef = min(len(fleet_rates), len(ens_rates))
        ens_models = sum(m for m, _ in ens)
        rows.append({
            "K": k, "ensemble": ensemble, "ensemble_calls": len(ens), "complete": ens_models == k,
            "models_timed": {"loop": len(loop_s), "fleet": len(fleet_s), "ensemble": ens_models},
            # whole-fleet rates: all timed models over all their seconds
            "loop_models_per_hour": round(3600 * len(loop_s) / sum(loop_s), 1),
            "fleet_models_per_hour": round(3600 * len(fleet_s) / sum(fleet_s), 1),
            "ensemble_models_per_hour": round(3600 * ens_models / sum(s for _, s in ens), 1),
            # per-round ratios over the rounds where both paths ran
            "fleet_vs_loop": ratio_summary(fleet_rates[:n_fl], loop_rates[:n_fl]),
            "ensemble_vs_fleet": ratio_summary(ens_rates[:n_ef], fleet_rates[:n_ef]),
            "loop_seconds": [round(s, 3) for s in loop_s], "fleet_seconds": [round(s, 3) for s in fleet_s],
            "ensemble_seconds": [round(s, 3) for _, s in ens],
        })
    out: dict[str, Any] = {"dataset": f"synthetic {sizes.n_images} x {'x'.join(map(str, sizes.image_shape))}",
                           "model": f"fastnet (width {sizes.fastnet_width:g})", "train_samples": len(idx),
                           "train": cfg.model_dump(include={"epochs", "batch_size", "lr", "optimizer", "bf16",
                                                            "channels_last", "augment"}),
                           "ensemble_requested": sizes.ensemble, "rows": rows}
    if device.startswith("cuda"):
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


# --- llm -------------------------------------------------------------------------------------------
def bench_llm(sizes: Sizes, device: str, peak_tflops: float | None = None) -> dict[str, Any]:
    """The LM scorer against the per-sequence loop (:func:`expunge.jobs.bench_llm.run_bench_llm`)."""
    from expunge.jobs.bench_llm import run_bench_llm

    return run_bench_llm(n=sizes.llm_texts, n_layer=sizes.llm_layers, n_embd=sizes.llm_width, n_head=sizes.llm_heads,
                         device=device, peak_tflops=peak_tflops, rounds=sizes.llm_rounds,
                         min_seconds=sizes.llm_min_seconds)


# --- audit -----------------------------------------------------------------------------------------
def audit_inputs(n: int, k: int, population: int, shadow_pool: int, seed: int = 0) -> Any:
    """Seeded random cached outputs of an audit of ``n`` samples (20% test; of the rest, 10% forget and
    90% retain) with ``k`` shadows, each trained on 80% of the shadow pool; a model's own training
    samples get a larger true-class logit, so the scores are not all ties."""
    from expunge.metrics import AuditInputs, Outputs

    rng = np.random.default_rng(seed)
    n_test = n // 5
    n_forget = (n - n_test) // 10
    sizes = {"retain": n - n_test - n_forget, "forget": n_forget, "test": n_test, "population": population,
             "shadow_pool": shadow_pool}
    labels = {s: rng.integers(0, 10, m) for s, m in sizes.items()}
    ids = {}
    start = 0
    for s, m in sizes.items():
        ids[s] = np.arange(start, start + m)
        start += m

    def outputs(member_sets: tuple[str, ...], pool_members: np.ndarray | None = None) -> dict[str, Any]:
        res = {}
        for s, m in sizes.items():
            logits = rng.standard_normal((m, 10), dtype=np.float32)
            boost = np.full(m, 1.0, dtype=np.float32)
            if s in member_sets:
                boost += 2.0
            elif s == "shadow_pool" and pool_members is not None:
                boost[np.isin(ids[s], pool_members)] += 2.0
            logits[np.arange(m), labels[s]] += boost
            res[s] = Outputs(logits, labels[s], ids[s])
        return res

    members = [rng.choice(ids["shadow_pool"], int(0.8 * shadow_pool), replace=False) for _ in range(k)]
    return AuditInputs(target=outputs(("retain",)), original=outputs(("retain", "forget")),
                       shadows=[outputs((), m) for m in members], shadow_members=members)


def bench_audit(sizes: Sizes, progress: Callable[[str], None] = log) -> dict[str, Any]:
    """Seconds of each of LiRA, RMIA and IAM at (N, K), on the CPU (median over rounds)."""
    from expunge.metrics import METRICS

    inputs = audit_inputs(sizes.audit_n, sizes.audit_k, sizes.audit_population, sizes.audit_shadow_pool)
    names = ("lira", "rmia", "iam")
    seconds: dict[str, list[float]] = {m: [] for m in names}
    for r in range(sizes.audit_rounds):
        for m in names:  # interleaved: each round runs the three in turn
            t0 = time.perf_counter()
            METRICS.get(m)(inputs)
            seconds[m].append(time.perf_counter() - t0)
        progress(f"audit: round {r + 1}/{sizes.audit_rounds} done")
    cpu = {m: round(median(v), 3) for m, v in seconds.items()}
    cpu["total"] = round(sum(cpu[m] for m in names), 3)
    return {"N": sizes.audit_n, "K": sizes.audit_k, "population": sizes.audit_population,
            "shadow_pool": sizes.audit_shadow_pool, "rounds": sizes.audit_rounds, "cpu_seconds": cpu,
            "cpu_seconds_per_round": {m: [round(s, 3) for s in v] for m, v in seconds.items()},
            "gpu_seconds": None,
            "gpu_note": "n/a: expunge.metrics (LiRA, RMIA, IAM) is NumPy code with no GPU implementation"}


# --- report ----------------------------------------------------------------------------------------
def table_rows(res: dict[str, Any]) -> list[list[str]]:
    """[section, measure, value] rows of everything measured."""
    rows: list[list[str]] = []
    fleet = res.get("fleet")
    if fleet:
        for r in fleet["rows"]:
            k, e = r["K"], r["ensemble"]
            rows += [
                ["fleet", f"K={k} loop (one at a time, DataLoader + PIL)", f"{r['loop_models_per_hour']:,.0f} models/h"],
                ["fleet", f"K={k} fleet path (one at a time, no Ray)", f"{r['fleet_models_per_hour']:,.0f} models/h"],
                ["fleet", f"K={k} batched ensemble (fleet.ensemble={e})", f"{r['ensemble_models_per_hour']:,.0f} models/h"],
                ["fleet", f"K={k} fleet path / loop", describe_ratio(r["fleet_vs_loop"])],
                ["fleet", f"K={k} batched ensemble / fleet path", describe_ratio(r["ensemble_vs_fleet"])],
            ]
    llm = res.get("llm")
    if llm:
        rows += [
            ["llm", f"{llm['model']} ({llm['dtype']}) naive loop", f"{llm['naive_tokens_per_s']:,.0f} tokens/s"],
            ["llm", f"{llm['model']} ({llm['dtype']}) batched scorer", f"{llm['batched_tokens_per_s']:,.0f} tokens/s"],
            ["llm", "batched / naive", describe_ratio(llm)],
        ]
        if llm.get("batched_tflops") is not None:
            frac = llm.get("batched_fraction_of_peak")
            rows.append(["llm", "batched scorer FLOP rate (2 x params x tokens)",
                         f"{llm['batched_tflops']} TFLOP/s = "
                         + (f"{100 * frac:.2f}% of {llm['peak_tflops']:g} TFLOP/s bf16 peak" if frac is not None
                            else "n/a of peak (device not in the table; pass --peak-tflops)")])
        else:
            rows.append(["llm", "fraction of peak bf16 FLOP rate", "n/a (not on a GPU)"])
    audit = res.get("audit")
    if audit:
        tag = f"N={audit['N']:,}, K={audit['K']}"
        for m, label in (("lira", "LiRA"), ("rmia", "RMIA"), ("iam", "IAM"), ("total", "LiRA + RMIA + IAM")):
            rows.append(["audit", f"{label} ({tag}) CPU / GPU", f"{audit['cpu_seconds'][m]:.2f} s / n/a"])
    return rows


def format_table(rows: list[list[str]]) -> str:
    head = ["section", "measure", "value"]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(3)]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def run(sections: tuple[str, ...], tiny: bool, device: str, out: Path, peak_tflops: float | None = None,
        progress: Callable[[str], None] = log) -> dict[str, Any]:
    """Every requested section in turn; the JSON at ``out`` rewritten after each. Returns the result."""
    from expunge.jobs.bench_llm import detect_peak

    sizes = TINY if tiny else FULL
    device = resolve(device)
    res: dict[str, Any] = {
        "command": "python -m expunge.jobs.bench_gpu" + (" --tiny" if tiny else ""),
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "tiny": tiny, "device": device,
        "device_name": torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else cpu_name(),
        "python": platform.python_version(), "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "sizes": asdict(sizes), "sections": list(sections),
        "peak_bf16_tflops": peak_tflops or (detect_peak(device) if device.startswith("cuda") else None),
        "peak_note": "dense bf16 tensor-core peak of the device from expunge.jobs.bench_llm.PEAK_TFLOPS "
                     "(vendor data sheets; H100 SXM and H200 989 TFLOP/s), or --peak-tflops",
        "seconds": {},
    }
    t_all = time.perf_counter()
    for name in sections:
        progress(f"{name}: start")
        t0 = time.perf_counter()
        if name == "fleet":
            res["fleet"] = bench_fleet(sizes, device, progress)
        elif name == "llm":
            res["llm"] = bench_llm(sizes, device, peak_tflops)
        elif name == "audit":
            res["audit"] = bench_audit(sizes, progress)
        res["seconds"][name] = round(time.perf_counter() - t0, 1)
        res["seconds"]["total"] = round(time.perf_counter() - t_all, 1)
        res["table"] = table_rows(res)
        out.write_text(json.dumps(res, indent=1))
        progress(f"{name}: {res['seconds'][name]:.1f} s")
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m expunge.jobs.bench_gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="toy sizes, on the CPU unless --device says otherwise")
    p.add_argument("--device", default=None, help="auto (default: cuda when present), cpu, cuda, cuda:N")
    p.add_argument("--out", default="bench_gpu.json", help="where the JSON goes (default: ./bench_gpu.json)")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="what to run")
    p.add_argument("--peak-tflops", type=float, help="the device's peak bf16 TFLOP/s when not in the table")
    args = p.parse_args(argv)
    device = args.device or ("cpu" if args.tiny else "auto")
    if resolve(device).startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {device}: CUDA is not available here")
    if not args.tiny and not resolve(device).startswith("cuda"):
        log("no GPU: the full sizes on a CPU take hours; use --tiny for a quick check")
    out = Path(args.out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    res = run(tuple(args.sections), args.tiny, device, out, args.peak_tflops)
    print(f"{res['command']} on {res['device_name']} ({res['device']}), {res['date']}, "
          f"{res['seconds']['total']:.0f} s", flush=True)
    print(format_table(res["table"]), flush=True)
    print(f"JSON: {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
