"""The embedded LLM unlearning benchmark: ``python -m expunge.jobs.llm_demo [--size cpu|tiny|gpu]
[key=value ...] [--local] [--rebuild] [--dry-run]``.

With nothing downloaded, on the offline miniature of TOFU (fictitious authors' QA pairs with
paraphrased and perturbed answers, world facts, CPython's documentation text):

1. pre-train a tiny byte-level GPT-2 on the general text (the base), then fine-tune it for a few
   epochs on the QA of every trained author (the **original**) and, separately, without the 10% of
   authors to forget (the **retain** model, the gold standard);
2. unlearn the forget authors with NPO and with GradDiff through ``llm-unlearn`` (one audited
   checkpoint per epoch, the epoch closest to the retain model chosen; Ray Train unless ``--local``);
3. audit the original, the retain model and both chosen epochs: every attack's BinUI, member vs
   non-member and forget vs held-out AUC with bootstrap intervals and TPR at 1% FPR; TOFU's forget
   quality, model utility, answer probability, ROUGE-L and truth ratio; MUSE's privleak; ScoreUI over
   the original's fine-tuning checkpoints;
4. print the attack table (ranked by BinUI AUC on the NPO model) and the model table, and write the
   report (Markdown and HTML, tables, ROC plots) to ``<out>/llm_demo/report``.

Sizes (``--size``, the same as ``size=``; ``key=value`` overrides change single settings):

* ``cpu`` (default): a 2-layer GPT-2 (64 wide) on 40 authors, a few minutes on two CPU cores;
* ``tiny``: a 1-layer GPT-2 on 20 authors with 5 questions each, seconds (the tests);
* ``gpu``: the same benchmark for one GPU: an 8-layer GPT-2 (512 wide, 25.7M parameters) on 200
  authors (TOFU's size: 20 forgotten, 3,000 QA) with 600-character passages of general text, 2,000
  pre-training steps and 5 fine-tuning epochs at batch 64, 10 unlearning epochs at lr 2e-5, the full
  sets audited with 1,000 bootstrap draws; ``device=auto`` picks the GPU.

``--dry-run`` prints what the run would do (the model, the benchmark's sizes, the steps) as JSON and
computes nothing. Every model goes through ``save_pretrained`` into ``<out>/llm_models/<key>`` and is
read back with ``from_pretrained``; a rerun with the same settings reuses the stored models, the
unlearning checkpoints (``<out>/unlearn``) and the cached log-probs; different settings in the same
``out`` are refused unless ``--rebuild``.
"""
from __future__ import annotations

import argparse
import json

from expunge.jobs.common import add_runtime_args, main_wrapper, parse_with_overrides, start_ray
from expunge.llm.demo_run import SIZES, LLMDemoConfig, plan, run_llm_demo
from expunge.resolve import load_config

__all__ = ["LLMDemoConfig", "main", "run_llm_demo"]


@main_wrapper
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m expunge.jobs.llm_demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help=f"demo settings: {', '.join(LLMDemoConfig.model_fields)}")
    p.add_argument("--size", choices=list(SIZES), default=None, help="a preset of the settings (default cpu)")
    add_runtime_args(p)
    args = parse_with_overrides(p, argv)
    overrides = [*([f"size={args.size}"] if args.size else []), *args.overrides]
    cfg = load_config(None, overrides, model=LLMDemoConfig)  # validated before Ray starts
    if args.dry_run:
        print(json.dumps(plan(cfg), indent=2))
        return 0
    run_llm_demo(rebuild=args.rebuild, use_ray=start_ray(args), cfg=cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
