"""Scoring benchmark: the batched per-token log-prob pass against a naive Hugging Face loop.

``python -m expunge.jobs.bench_llm [--n 256] [--n-layer 2 --n-embd 64 --n-head 2 | --model PATH]
[--device auto] [--peak-tflops X] [--rounds 5] [--min-seconds 1] [--threads N]``; with
``--sweep-trial``, the cost of one ``llm-sweep`` trial with shared vs recomputed fixed-model log-probs.

Both paths compute the same arrays (per-token log-probabilities and the Min-K%++ moments) for the
same texts with the same model, in the same run:

* **naive**: one sequence at a time (``model(input_ids)`` per text), as a plain HF loop does
  (:func:`expunge.llm.scoring.naive_token_logprobs`);
* **batched**: :func:`expunge.llm.scoring.token_logprobs`, length-sorted batches without padding waste.

Timing: after a warm-up of both, ``--rounds`` interleaved rounds (naive, batched, naive, batched,
...), each timed section repeating its whole pass until ``--min-seconds`` have passed. Prints one JSON
line (tokens/second of each in the median round, that round's ratio with the range and every
round's ratio, the largest difference between the two results) and a one-line summary. On CUDA it
also reports the achieved fraction of the device's peak forward rate, counting 2 · n_params FLOPs per
input token (the matmul FLOPs of a forward pass, attention's sequence-length term ignored) against
``--peak-tflops`` or, when not given, :data:`PEAK_TFLOPS` (dense bf16 peaks; H100 / H200 SXM 989,
A100 312 TFLOP/s). Never a timed assertion: a report.

What to expect on a CPU: the arithmetic of the forward pass is the same on both paths; the batched
pass saves the loop's per-call overhead (Python and dispatch around each of 256 small forward
passes, about 1 ms each), its per-sequence tokenisation and statistics, and, with 2 threads, the
thread synchronisation of many tiny operations. With the default 2x64 model and 256 texts of 4-60
words on the project's shared 2-core machine (2026-12-07), the ratio was 2.5-2.9x with torch's 2
threads and 1.7-2.0x with ``--threads 1``, where the forward pass, which batching cannot shrink, is
about 70% of the batched time. On a machine busy with other work, 2 threads run both
paths several times slower than 1 thread and the ratio swings widely from round to round.
"""
from __future__ import annotations

import argparse
import datetime
import json
import random
from typing import Any

import numpy as np
import torch

from expunge.jobs.benchtools import describe_ratio, interleaved, rates, ratio_summary
from expunge.jobs.common import main_wrapper

#: dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from the vendor data sheets, by a fragment of
#: ``torch.cuda.get_device_name``; the first match wins, so the PCIe / NVL parts precede their SXM parts
#: (H100 and H200 SXM: 989; V100 has no bf16 and is listed at its fp16 peak)
PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H200 NVL": 835.0, "H200": 989.0, "H100": 989.0,
               "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0, "V100": 125.0}


def bench_texts(n: int, seed: int = 0, min_words: int = 4, max_words: int = 60) -> list[str]:
    """``n`` texts of random lengths (the corpus vocabulary of the demo)."""
    from expunge.llm.corpus import make_corpus

    c = make_corpus(n_docs=max(n, 50), n_members=0, n_nonmembers=0, n_population=0, seed=seed, max_sentences=3)
    words = " ".join(c.docs).split()
    r = random.Random(seed)
    out = []
    for _ in range(n):
        k = r.randint(min_words, max_words)
        s = r.randrange(0, len(words) - k)
        out.append(" ".join(words[s:s + k]))
    return out


def detect_peak(device: str) -> float | None:
    """The :data:`PEAK_TFLOPS` entry of a CUDA device's name; None on a CPU or an unlisted GPU."""
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    for frag, peak in PEAK_TFLOPS.items():
        if frag in name:
            return peak
    return None


def run_bench_llm(n: int = 256, n_layer: int = 2, n_embd: int = 64, n_head: int = 2, model_path: str | None = None,
                  device: str = "auto", batch_tokens: int | None = None, peak_tflops: float | None = None,
                  rounds: int = 5, min_seconds: float = 1.0, seed: int = 0, bf16: bool = True) -> dict[str, Any]:
    """Tokens per second of the naive loop and of the batched pass over the same texts and model.

    Both passes are warmed up, then timed in ``rounds`` interleaved rounds (naive, batched, naive,
    batched, ...); each timed section repeats its pass until ``min_seconds`` have passed. Rates are
    scored tokens per second; ``ratio`` is the median round's batched/naive rate ratio, with the
    range over rounds. On CUDA the tiny model runs in bf16 (``bf16``) and the achieved FLOP rate is
    2 · n_params FLOPs per input token over the median round's batched time.
    """
    from expunge.llm.models import load_causal_lm, tiny_gpt2
    from expunge.llm.scoring import default_batch_tokens, naive_token_logprobs, token_logprobs

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    texts = bench_texts(n, seed)
    if model_path:
        model, tok = load_causal_lm(model_path, device=device)
        name = model_path
    else:
        model, tok = tiny_gpt2(n_layer, n_embd, n_head, n_positions=1024, seed=seed)
        model = model.to(device)
        if device.startswith("cuda") and bf16:
            model = model.to(torch.bfloat16)
        name = f"tiny-gpt2-{n_layer}x{n_embd}"
    n_params = sum(p.numel() for p in model.parameters())

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    # warm-up both paths (allocator, kernels), and the results compared
    a = naive_token_logprobs(model, tok, texts)
    b = token_logprobs(model, tok, texts, batch_tokens=batch_tokens)
    sync()
    scored = b.n_tokens
    # input tokens through the forward pass: each sequence's scored tokens plus its unscored first one
    fed = int(b.lengths.sum() + len(texts))

    def naive_pass() -> float:
        naive_token_logprobs(model, tok, texts)
        return 1.0

    def batched_pass() -> float:
        token_logprobs(model, tok, texts, batch_tokens=batch_tokens)
        return 1.0

    times = interleaved([("naive", naive_pass), ("batched", batched_pass)], rounds, min_seconds, sync)
    naive_rates, batched_rates = rates(times["naive"], scored), rates(times["batched"], scored)
    summary = ratio_summary(batched_rates, naive_rates)
    i = summary["median_round"]
    tn = times["naive"][i][1] / times["naive"][i][0]  # seconds per pass in the median round
    tb = times["batched"][i][1] / times["batched"][i][0]
    out: dict[str, Any] = {
        "model": name, "device": device, "n_params": n_params, "sequences": len(texts), "scored_tokens": scored,
        "input_tokens": fed, "naive_tokens_per_s": round(naive_rates[i], 1),
        "batched_tokens_per_s": round(batched_rates[i], 1), **summary, "rounds": rounds,
        "min_seconds": min_seconds, "naive_s": round(tn, 6), "batched_s": round(tb, 6),
        "passes": {"naive": [int(c) for c, _ in times["naive"]], "batched": [int(c) for c, _ in times["batched"]]},
        "max_abs_logp_diff": float(np.abs(a.logp - b.logp).max()),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "batch_tokens": batch_tokens or default_batch_tokens(device),
        "date": datetime.date.today().isoformat(),
    }
    if device.startswith("cuda"):
        peak = peak_tflops or detect_peak(device)
        flops = 2.0 * n_params * fed
        out["device_name"] = torch.cuda.get_device_name(torch.device(device))
        out["batched_tflops"] = round(flops / tb / 1e12, 3)
        out["naive_tflops"] = round(flops / tn / 1e12, 3)
        out["peak_tflops"] = peak
        out["batched_fraction_of_peak"] = round(flops / tb / 1e12 / peak, 4) if peak else None
    return out


def summary_line(res: dict[str, Any]) -> str:
    """The benchmark's one-line result (what the README records)."""
    threads = f"{res['threads']} thread{'s' if res['threads'] != 1 else ''}"
    line = (f"{res['model']} on {res['device']} ({threads}): batched {res['batched_tokens_per_s']:.0f} "
            f"tok/s vs naive {res['naive_tokens_per_s']:.0f} tok/s = {describe_ratio(res)} "
            f"(max |logp diff| {res['max_abs_logp_diff']:.1e})")
    if res.get("batched_fraction_of_peak") is not None:
        line += (f"; {res['batched_tflops']} TFLOP/s = {100 * res['batched_fraction_of_peak']:.2f}% of "
                 f"{res['peak_tflops']} peak")
    return line


def bench_sweep_trial(rounds: int = 3, n_layer: int = 2, n_embd: int = 32, n_texts: int = 48,
                      seed: int = 0) -> dict[str, Any]:
    """One ``llm-sweep`` trial with the fixed models' log-probs shared through the run's cache against
    the same trial recomputing them (:func:`expunge.llm.sweep_run.bench_trial_cost`), on a tiny world
    built here: an original trained on canaries of which 8 are then forgotten, a retain model trained
    without them, and the forget / retain / held-out sets as JSON lines, in a temporary folder."""
    import tempfile
    from pathlib import Path

    from expunge.llm.corpus import make_corpus
    from expunge.llm.models import tiny_gpt2
    from expunge.llm.sweep_run import bench_trial_cost, load_sweep_config
    from expunge.llm.train import torch_threads, train_lm

    c = make_corpus(n_docs=n_texts, n_members=20, n_nonmembers=8, n_population=2, canary_words=5, seed=seed + 1)
    forget, kept = c.members[:8], c.members[8:]
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        with torch_threads(1):
            for name, texts in (("original", c.docs + (forget + kept) * 4), ("retain_model", c.docs + kept * 4)):
                model, tok = tiny_gpt2(n_layer=n_layer, n_embd=n_embd, n_head=2, n_positions=96, seed=seed)
                train_lm(model, tok, texts, steps=60, batch_size=16, lr=1e-2, seed=seed)
                model.save_pretrained(root / name)
                tok.save_pretrained(root / name)
        sets = {"forget": forget, "retain": kept + c.docs[:8], "heldout": c.nonmembers}
        for name, texts in sets.items():
            (root / f"{name}.jsonl").write_text("".join(json.dumps({"id": f"{name}{i}", "text": t}) + "\n"
                                                        for i, t in enumerate(texts)))
        cfg = load_sweep_config("configs/llm/sweep_tiny.yaml", [
            f"model={root / 'original'}", f"retain_model={root / 'retain_model'}", f"storage={root / 'runs'}",
            *[f"{name}={root / f'{name}.jsonl'}" for name in sets], "data.id_column=id", "threads=1",
            "unlearn.batch_size=4", "audit.n_boot=0",
            "sweep.methods=[{name: npo, space: {lr: {choice: [1.0e-3]}, epochs: {choice: [2]}}}]"])
        return bench_trial_cost(cfg, rounds=rounds)


@main_wrapper
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m expunge.jobs.bench_llm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=256, help="sequences")
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--n-embd", type=int, default=64)
    p.add_argument("--n-head", type=int, default=2)
    p.add_argument("--model", help="a Hugging Face model directory instead of the tiny GPT-2")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-tokens", type=int, help="default: 16384 on GPU, 2048 on CPU")
    p.add_argument("--peak-tflops", type=float, help="device peak for the FLOP fraction (default: detected)")
    p.add_argument("--rounds", "--repeats", type=int, default=5, dest="rounds",
                   help="interleaved rounds of (naive, batched); the median round's ratio is reported (default 5)")
    p.add_argument("--min-seconds", type=float, default=1.0,
                   help="each timed section repeats its pass for at least this long (default 1.0)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's setting)")
    p.add_argument("--sweep-trial", action="store_true",
                   help="instead: one llm-sweep trial with the fixed models' log-probs shared vs recomputed "
                        "(--rounds rounds, --n-layer x --n-embd model)")
    args = p.parse_args(argv)
    if args.sweep_trial:
        res = bench_sweep_trial(args.rounds, args.n_layer, args.n_embd)
        print(json.dumps(res), flush=True)
        print(f"llm-sweep trial ({res['method']}, {res['epochs']} epochs, {res['threads']} thread): "
              f"shared caches {res['median_trial_s']['shared']:.2f} s, recomputed {res['median_trial_s']['recompute']:.2f} s "
              f"(median of {args.rounds}) = {res['ratio_recompute_over_shared']:.2f}x; fixed models' part "
              f"{res['median_fixed_s']['shared']:.2f} s vs {res['median_fixed_s']['recompute']:.2f} s; "
              f"same objective: {res['same_objective']}", flush=True)
        return 0
    if args.rounds < 1 or args.min_seconds < 0:
        p.error("--rounds must be >= 1 and --min-seconds >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    res = run_bench_llm(args.n, args.n_layer, args.n_embd, args.n_head, args.model, args.device, args.batch_tokens,
                        args.peak_tflops, args.rounds, args.min_seconds)
    print(json.dumps(res), flush=True)
    print(summary_line(res), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
