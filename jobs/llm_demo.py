"""The embedded LLM unlearning audit: ``python -m expunge.jobs.llm_demo [key=value ...] [--local]``.

With nothing downloaded:

1. generate a corpus of template sentences and random word "canaries" (:mod:`expunge.llm.corpus`);
2. build a tiny byte-level GPT-2 from config and pre-train it on the corpus alone: the **reference**
   (OUT) model, which never sees a canary;
3. fine-tune a copy on the corpus plus the member canaries (each repeated ``repeats`` times): the
   **original** (fit / IN) model, keeping ``scoreui_checkpoints`` intermediate checkpoints;
4. unlearn half of the member canaries with ``method`` (npo, ga or grad_diff): the **unlearned**
   model (on Ray unless ``--local``);
5. audit: every attack on the original (members vs held-out canaries) and on the unlearned model
   (retained vs non-member, retained vs unlearned, unlearned vs non-member), ScoreUI over the
   checkpoints; scoring runs on Ray actors unless ``--local``.

Every model goes through ``save_pretrained`` into the artifact store (``<out>/llm_models/<key>``) and is
read back with ``from_pretrained`` (a probe's logits are compared, the round trip is printed). A rerun
with the same settings reuses the stored models and cached log-probs; different settings in the same
``out`` are refused unless ``--rebuild``. The report (markdown, CSV, parquet, ROC plots) is written to
``<out>/llm_demo/report``.
"""
from __future__ import annotations

import argparse

from expunge.jobs.common import add_runtime_args, main_wrapper, parse_with_overrides, start_ray
from expunge.llm.demo_run import LLMDemoConfig, run_llm_demo
from expunge.resolve import load_config

__all__ = ["LLMDemoConfig", "main", "run_llm_demo"]


@main_wrapper
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m expunge.jobs.llm_demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help=f"demo settings: {', '.join(LLMDemoConfig.model_fields)}")
    add_runtime_args(p)
    args = parse_with_overrides(p, argv)
    cfg = load_config(None, args.overrides, model=LLMDemoConfig)  # validated before Ray starts
    run_llm_demo(rebuild=args.rebuild, use_ray=start_ray(args), cfg=cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
