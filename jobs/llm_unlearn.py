"""Unlearn a forget set from a causal language model, audited every epoch:
``python -m expunge.jobs.llm_unlearn [CONFIG.yaml] [key=value ...] [--local] [--rebuild]``
(also ``expunge llm-unlearn``).

Settings (YAML and ``key=value`` overrides; see ``configs/llm/unlearn_tiny.yaml``):

* ``model``: the original model, an ``AutoModelForCausalLM`` directory (``--trust-remote-code`` or
  ``trust_remote_code=true`` to run its custom code); ``retain_model``: optionally, the same
  architecture trained without the forget set (the audit's reference / OUT model, and the default
  selection objective);
* ``forget``, ``retain``, ``heldout`` (optional): JSONL / CSV / parquet files or saved ``datasets``
  directories of plain texts (``data.text_column``) or prompt/answer pairs (``data.question_column``,
  ``data.answer_column``: the loss is on the answer tokens only);
* ``unlearn.*``: the method and its settings (:class:`expunge.llm.unlearn.LLMUnlearnConfig`: ga,
  grad_diff, npo, simnpo, rmu; lr, epochs, batch_size, LoRA ...), validated before any compute;
* ``audit.*``, ``select.*`` (objective ``retain`` or ``forgetting``, ``utility_drop_max`` in percent),
  ``scaling.*`` (Ray Train workers), ``storage`` and ``name`` (the run directory
  ``<storage>/<name>``).

One checkpoint per epoch is stored in the run directory; each is scored with the cached log-prob
scorer against the original (fit / IN) and the retain model (reference / OUT): BinUI and forget vs
held-out AUCs of loss, zlib, Min-K%++ (and IAM-On, LiRA-On, RMIA-On with a retain model),
perplexity on the retain and held-out sets, answer probability for prompt/answer data. The per-epoch
table, the best epoch (with why) and a Markdown + HTML report are written, and the command prints
where. Training runs on Ray Train (``scaling.num_workers`` DDP workers) unless ``--local``. A rerun
reuses the stored epochs; ``--rebuild`` retrains them. Every input is checked first: a bad one is
one line on stderr, exit status 2, and nothing is written.
"""
from __future__ import annotations

import argparse
import os

from expunge.jobs.common import find_config, llm_job_args, main_wrapper


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Options, the optional config path and ``key=value`` overrides in any order."""
    return llm_job_args("llm_unlearn", __doc__, argv, "model=DIR forget=FILE unlearn.method=npo unlearn.epochs=5", "llm-unlearn runs one seed; set unlearn.seed=")


@main_wrapper
def main(argv: list[str] | None = None) -> int:
    from expunge.llm.unlearn_run import load_job_config, run_llm_unlearn

    args = parse(argv)
    cfg = load_job_config(find_config(args.config) if args.config else None, args.overrides)
    if args.dry_run:
        print(f"the config is valid: unlearn {cfg.model} with {cfg.unlearn.method} for {cfg.epochs} epoch(s), "
              f"forget {cfg.forget}, retain {cfg.retain or '-'}, held-out {cfg.heldout or '-'}, retain model "
              f"{cfg.retain_model or '-'}; objective {cfg.objective()}; run directory {cfg.run_dir}; "
              + ("in this process" if args.local else f"Ray Train with {cfg.scaling.num_workers} worker(s)"))
        return 0
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per checkpoint write and load would bury the log
    if not args.local and args.address:
        os.environ.setdefault("RAY_ADDRESS", args.address)
    # every input is checked inside, before Ray starts or a model loads
    run_llm_unlearn(cfg, rebuild=args.rebuild, use_ray=not args.local)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
