"""The ``expunge`` command. Each subcommand calls a job in ``expunge.jobs``."""
from __future__ import annotations

import inspect

import argparse
import os
import sys
import time
from typing import Callable

from expunge.errors import ExpungeError, from_os_error

#: the environment variable holding when the running command started (UTC, as manifests' ``created``)
RUN_STARTED = "EXPUNGE_RUN_STARTED"

EXAMPLES = """examples:
  expunge demo                                    # digits: every method, one table (runs on a CPU)
  expunge run configs/experiments/digits.yaml train.epochs=10 data.forget=class:3
  expunge train configs/experiments/digits.yaml model.name=mlp --local
  expunge unlearn --method finetune+cpu --forget class:3 method.lam=0.5 method.epochs=5
  expunge audit configs/experiments/digits.yaml   # metrics of the stored models (after `run`)
  expunge fleet configs/experiments/digits.yaml fleet.kind=shadow fleet.size=16   # LiRA-style shadows
  expunge sweep configs/sweeps/cpu_finetune.yaml  # Ray Tune over CPU's delta, alpha, lam vs retrain
  expunge report runs/digits                      # HTML report + Markdown summary of a run
  expunge ledger configs/experiments/digits.yaml --method rl --requests random:0.05 class:3
  expunge llm-demo                                # language models: mini-TOFU, NPO and GradDiff, every attack
  expunge llm-audit --target DIR --fit DIR --reference DIR --data FILE --out DIR
  expunge info                                    # registered datasets, models, methods, metrics
  RAY_ADDRESS=127.0.0.1:6379 expunge run configs/experiments/digits.yaml   # on a running cluster
"""

def _config_command(module: str, runner: str) -> Callable[[argparse.Namespace], int]:
    """A subcommand that loads CONFIG + overrides and calls ``expunge.<module>.<runner>(cfg, rebuild,
    use_ray)``, the same function the job entrypoint calls (imported only when the command runs)."""

    def handler(args: argparse.Namespace) -> int:
        import importlib

        from expunge.resolve import load_config
        from expunge.jobs.common import dry_run, find_config, single_seed, start_ray

        cfg = single_seed(load_config(find_config(args.config), args.overrides), args.command)
        if dry_run(args, cfg):
            return 0
        getattr(importlib.import_module(f"expunge.{module}"), runner)(cfg, args.rebuild, start_ray(args))
        return 0

    handler.target = (f"expunge.{module}", runner)  # type: ignore[attr-defined]  # checked by tests/test_cli.py
    return handler


def _cmd_demo(args: argparse.Namespace) -> int:
    from expunge.jobs.common import start_ray
    from expunge.jobs.demo import run_demo

    run_demo(args.overrides, args.rebuild, False if args.dry_run else start_ray(args), dry_run=args.dry_run)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    """``expunge run``: the pipeline, then the terminal's selection of its leaderboard and where the
    whole table is (the leaderboard has over a hundred columns: too wide to read in a terminal)."""
    from expunge.resolve import load_config
    from expunge.jobs.common import dry_run, find_config, start_ray
    from expunge.stages.pipeline import run_pipeline
    from expunge.report.leaderboard import print_shown

    cfg = load_config(find_config(args.config), args.overrides)
    if dry_run(args, cfg):
        return 0
    if cfg.seeds is not None:  # prints the cross-seed summary itself
        run_pipeline(cfg, args.rebuild, start_ray(args))
        return 0
    res = run_pipeline(cfg, args.rebuild, start_ray(args), print_table=False)
    print_shown(res["table"], f"{res['audit']}/leaderboard.csv")
    return 0


def _cmd_unlearn(args: argparse.Namespace) -> int:
    from expunge.jobs.common import dry_run, start_ray
    from expunge.jobs.unlearn import unlearn_config
    from expunge.stages.unlearn import run_unlearn

    cfg = unlearn_config(args.config, args.method, args.forget, args.overrides)
    if not dry_run(args, cfg):
        run_unlearn(cfg, args.rebuild, start_ray(args))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from expunge.jobs.report import report_command

    return report_command(args)


def _cmd_info(args: argparse.Namespace) -> int:
    from expunge.data import DATASETS
    from expunge.metrics import METRICS
    from expunge.models import MODELS
    from expunge.unlearn import METHODS

    print("datasets:")
    for name, doc in DATASETS.describe().items():
        print(f"  {name:<12} {doc}")
    print("models:")
    for name, doc in MODELS.describe().items():
        print(f"  {name:<12} {doc}")
    from expunge.jobs.plan import method_settings

    print("unlearning methods:")
    for name in METHODS.names():
        cls = METHODS.get(name)
        print(f"  {name:<12} {METHODS.describe()[name]}")
        print(f"  {'':<12}   params: {method_settings(name)}")
        meanings = [f"{k} = {f.description}" for k, f in cls.Config.model_fields.items() if f.description]
        if meanings:  # names such as alpha and gamma mean different things in different methods
            print(f"  {'':<12}   meaning: " + "; ".join(meanings))
        space = cls.Config.search_space()
        if space:
            print(f"  {'':<12}   search space: " + ", ".join(f"{k}~{d.kind}{list(d.args)}" for k, d in space.items()))
    from expunge.config.recipes import RECIPES

    print("training recipes (train.recipe=NAME; explicit train.* keys win):")
    for name, preset in sorted(RECIPES.items()):
        print(f"  {name:<18} {', '.join(f'{k}={v}' for k, v in preset.items()) or 'the defaults'}")
    from expunge.audit.stage import relearn_summary

    print("metrics (audit.metrics):")
    for name in METRICS.names():
        m = METRICS.get(name)
        print(f"  {name:<12} {m.doc.splitlines()[0] if m.doc else ''} (reads: {', '.join(m.requires)})")
        params = [p for p in inspect.signature(m.fn).parameters.values() if p.name != "inputs"]
        if params:  # settable as audit.params.<metric>.<name>; each metric's docstring says what they mean
            print(f"  {'':<12}   audit.params.{name}: " + ", ".join(f"{p.name}={p.default!r}" for p in params))
    # not a registered metric: the audit stage attacks the model itself (expunge.audit.stage.audit_values)
    relearn_doc = " ".join((relearn_summary.__doc__ or "").split("Returns")[0].split())
    print(f"  {'relearn':<12} {relearn_doc} (reads: the model's weights; fine-tunes a copy)")
    from expunge.llm.attacks import ATTACKS
    from expunge.llm.unlearn import LLM_METHODS

    print("language-model attacks (expunge llm-audit --attacks):")
    for name, doc in ATTACKS.describe().items():
        print(f"  {name:<18} {doc}")
    print("language-model unlearning methods (expunge llm-unlearn unlearn.method=...):")
    for name, doc in LLM_METHODS.describe().items():
        print(f"  {name:<18} {doc}")
    return 0


def _add_runtime(p: argparse.ArgumentParser) -> None:
    from expunge.jobs.common import add_runtime_args

    add_runtime_args(p)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="expunge", description="Machine unlearning: train, unlearn, sweep, audit.",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str, config: bool) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help, epilog=EXAMPLES,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        if config:
            sp.add_argument("config", help="experiment YAML, e.g. configs/experiments/digits.yaml")
        if name != "info":
            sp.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (train.epochs=5)")
            _add_runtime(sp)
        sp.set_defaults(fn=fn)
        return sp

    add("demo", _cmd_demo, "the showcase on embedded digits: every method (random 10%%; PRU on class 3), one table",
        config=False)
    add("run", _cmd_run, "run an experiment config end to end (original -> unlearning methods -> table)",
        config=True)
    add("train", _config_command("stages.original", "run_original"), "train (or reuse) the original model of a config", config=True)
    add("fleet", _config_command("stages.fleet", "run_fleet"), "train K models of one kind in parallel (fleet.kind, fleet.size, fleet.policy)",
        config=True)
    add("sweep", _config_command("sweep.runner", "run_sweep"),
        "sweep unlearning hyperparameters with Ray Tune against retrain (sweep: block; resumes)", config=True)
    add("audit", _config_command("stages.audit", "run_audit"), "audit the stored models of a config (audit.metrics; trains missing shadows)",
        config=True)
    sp = sub.add_parser("unlearn", help="apply one unlearning method to a config's original model",
                        description="apply one unlearning method to a config's original model",
                        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    from expunge.jobs.unlearn import add_unlearn_args

    sp.add_argument("--config", "-c", default=None, help="experiment YAML (default: the digits demo)")
    add_unlearn_args(sp)
    sp.set_defaults(fn=_cmd_unlearn)
    sp = sub.add_parser("report", help="write a run's self-contained HTML report and Markdown summary",
                        description="write a run's self-contained HTML report and Markdown summary",
                        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    from expunge.jobs.report import add_report_args

    add_report_args(sp)
    sp.set_defaults(fn=_cmd_report)
    for name, (_, text) in FORWARDED.items():  # listed here; parsed by their jobs (see main)
        sub.add_parser(name, help=text, description=text, add_help=False)
    add("info", _cmd_info, "list registered datasets, models, unlearning methods and metrics", config=False)
    return p


#: commands whose arguments belong to their job's own parser (``expunge llm-audit --help`` shows them)
FORWARDED = {
    "audit-model": ("expunge.jobs.audit_model", "audit models trained outside expunge: --original, --unlearned "
                                                "NAME=FILE, --forget-indices; the leaderboard and report of a run"),
    "llm-demo": ("expunge.jobs.llm_demo", "the language-model showcase on mini-TOFU: a tiny GPT-2 original and retain "
                                          "model, NPO and GradDiff, every attack and TOFU's metrics (no download)"),
    "llm-audit": ("expunge.jobs.llm_audit", "audit Hugging Face causal LMs: --target, --fit, --reference, --data "
                                            "(loss, zlib, Min-K%%, Min-K%%++, ratio, LiRA / RMIA / IAM online)"),
    "llm-unlearn": ("expunge.jobs.llm_unlearn", "unlearn a forget set from a causal LM (ga, grad_diff, npo, simnpo, "
                                                "rmu), one audited checkpoint per epoch, the best one chosen"),
    "llm-sweep": ("expunge.jobs.llm_sweep", "Ray Tune over the LLM unlearning methods' hyperparameters, every trial "
                                            "audited per epoch as llm-unlearn; results, Pareto front, best configs"),
    "reproduce": ("expunge.jobs.reproduce", "test each seed paper's claim over several seeds on embedded data and "
                                            "write the claims table (--seeds, --quick, --claims)"),
    "bench-llm": ("expunge.jobs.bench_llm", "tokens per second of the batched LM scorer against a one-at-a-time loop"),
    "ledger": ("expunge.jobs.ledger", "sequential unlearning: requests --requests SPEC ... each forgotten from the "
                                      "latest model by --method; every sample's IAM score at every later version"),
    "scoreui": ("expunge.jobs.scoreui", "ScoreUI (IAM paper): checkpoints of known partial membership b/B, every "
                                        "per-sample attack scored, Spearman / Pearson with b/B (--breaks)"),
    "epsilon": ("expunge.jobs.epsilon", "per-example epsilon (NeurIPS 2023 challenge): a retrain and an unlearned "
                                        "fleet (--method, --models M), forget and challenge scores"),
}


def main(argv: list[str] | None = None) -> int:
    import importlib

    from expunge.jobs.common import parse_with_overrides

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in FORWARDED:
        return importlib.import_module(FORWARDED[argv[0]][0]).main(argv[1:])
    args = parse_with_overrides(build_parser(), argv)
    # when this command started: a stage that finds a model stored before then says it reused it
    # (Experiment._fetch); Ray workers started by this command inherit it
    previous = os.environ.get(RUN_STARTED)
    os.environ[RUN_STARTED] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        return args.fn(args)
    except ExpungeError as exc:
        print(f"expunge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("expunge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `expunge ... | head`: the reader left; not an error worth a traceback
        sys.stdout = None
        return 141
    except OSError as exc:  # no space, read-only, a file where a directory belongs: one line
        err = from_os_error(exc)
        if err is None:
            raise
        print(f"expunge: error: {err}", file=sys.stderr)
        return err.exit_code
    finally:
        if previous is None:
            os.environ.pop(RUN_STARTED, None)
        else:
            os.environ[RUN_STARTED] = previous


if __name__ == "__main__":
    sys.exit(main())
