"""Scoring benchmark: the batched per-token log-prob pass against a naive Hugging Face loop.

``python -m expunge.jobs.bench_llm [--n 256] [--n-layer 2 --n-embd 64 --n-head 2 | --model PATH]
[--device auto] [--peak-tflops X]``

Both paths compute the same arrays (per-token log-probabilities and the Min-K%++ moments) for the
same texts with the same model, in the same run:

* **naive**: one sequence at a time (``model(input_ids)`` per text), as a plain HF loop does;
* **batched**: :func:`expunge.llm.scoring.token_logprobs`, length-sorted batches without padding waste.

Prints one JSON line (tokens/second of each, the ratio, the largest difference between the two
results) and a short summary. On CUDA it also reports the achieved fraction of the device's peak
forward rate, counting 2 · n_params FLOPs per token (the matmul FLOPs of a forward pass, attention's
sequence-length term ignored) against ``--peak-tflops`` or, when not given, a table of known dense
bf16 peaks (H100 / H200 SXM 989, A100 312 TFLOP/s). Never a timed assertion: a report.

What to expect on a CPU: the gain comes from per-call and thread-synchronisation overhead, not from
the arithmetic, which is the same. Measured on the project's shared 2-core machine with the default
2x64 model and 256 texts of 4-60 words: 3-7x with torch's default 2 threads, but only 1.1-1.4x with
``--threads 1``, where the tiny model's forward pass is compute-bound and the naive loop's overhead
is small (and where both paths run several times faster than with 2 threads on a busy machine).
"""
from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

import numpy as np
import torch

from expunge.jobs.common import main_wrapper

#: dense bf16 tensor-core peaks (TFLOP/s) by device-name fragment; the first match wins
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0, "V100": 125.0}


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
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    for frag, peak in PEAK_TFLOPS.items():
        if frag in name:
            return peak
    return None


def run_bench_llm(n: int = 256, n_layer: int = 2, n_embd: int = 64, n_head: int = 2, model_path: str | None = None,
                  device: str = "auto", batch_tokens: int | None = None, peak_tflops: float | None = None,
                  repeats: int = 1, seed: int = 0) -> dict[str, Any]:
    from expunge.llm.models import load_causal_lm, tiny_gpt2
    from expunge.llm.scoring import default_batch_tokens, naive_token_logprobs, token_logprobs

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    texts = bench_texts(n, seed)
    if model_path:
        model, tok = load_causal_lm(model_path, device=device)
        name = model_path
    else:
        model, byte_tok = tiny_gpt2(n_layer, n_embd, n_head, n_positions=1024, seed=seed)
        tok = byte_tok.to_hf()  # what a model loaded from disk comes with
        model = model.to(device)
        if device.startswith("cuda"):
            model = model.to(torch.bfloat16)
        name = f"tiny-gpt2-{n_layer}x{n_embd}"
    n_params = sum(p.numel() for p in model.parameters())

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    # warm-up both paths (allocator, kernels)
    naive_token_logprobs(model, tok, texts[:4])
    token_logprobs(model, tok, texts[:16], batch_tokens=batch_tokens)
    sync()
    t_naive, t_batched = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a = naive_token_logprobs(model, tok, texts)
        sync()
        t_naive.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = token_logprobs(model, tok, texts, batch_tokens=batch_tokens)
        sync()
        t_batched.append(time.perf_counter() - t0)
    tn, tb = min(t_naive), min(t_batched)
    scored = b.n_tokens
    fed = int(sum(b.lengths) + len(texts))  # every input token goes through the forward pass
    out: dict[str, Any] = {
        "model": name, "device": device, "n_params": n_params, "sequences": len(texts), "scored_tokens": scored,
        "naive_tokens_per_s": round(scored / tn, 1), "batched_tokens_per_s": round(scored / tb, 1),
        "ratio": round(tn / tb, 2), "naive_s": round(tn, 6), "batched_s": round(tb, 6),
        "max_abs_logp_diff": float(np.abs(a.logp - b.logp).max()),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "batch_tokens": batch_tokens or default_batch_tokens(device),
    }
    peak = peak_tflops or detect_peak(device)
    if device.startswith("cuda"):
        flops = 2.0 * n_params * fed
        out["device_name"] = torch.cuda.get_device_name(torch.device(device))
        out["batched_tflops"] = round(flops / tb / 1e12, 3)
        out["naive_tflops"] = round(flops / tn / 1e12, 3)
        out["peak_tflops"] = peak
        out["batched_fraction_of_peak"] = round(flops / tb / 1e12 / peak, 4) if peak else None
    return out


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
    p.add_argument("--batch-tokens", type=int, help="default: 16384 on GPU, 4096 on CPU")
    p.add_argument("--peak-tflops", type=float, help="device peak for the FLOP fraction (default: detected)")
    p.add_argument("--repeats", type=int, default=1, help="timed repetitions (the fastest counts)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's setting)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    res = run_bench_llm(args.n, args.n_layer, args.n_embd, args.n_head, args.model, args.device, args.batch_tokens,
                        args.peak_tflops, args.repeats)
    print(json.dumps(res), flush=True)
    line = (f"{res['model']} on {res['device']}: batched {res['batched_tokens_per_s']:.0f} tok/s vs naive "
            f"{res['naive_tokens_per_s']:.0f} tok/s = {res['ratio']:.2f}x (max |logp diff| {res['max_abs_logp_diff']:.1e})")
    if res.get("batched_fraction_of_peak") is not None:
        line += f"; {res['batched_tflops']} TFLOP/s = {100 * res['batched_fraction_of_peak']:.2f}% of {res['peak_tflops']} peak"
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
