"""The showcase on embedded digits, in one table: the memorising benchmark (10% corrupted labels,
forget the corrupted training samples; configs/experiments/digits_mislabeled.yaml) with every method
that applies at its defaults and at the hyperparameters the committed sweep tuned
(configs/tuned/digits_mislabeled.yaml), then PRU next to retraining on class forgetting.

``python -m expunge.jobs.demo [key=value ...]`` (overrides apply to both experiments).
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import pandas as pd

from expunge.config import ExperimentConfig

from expunge.resolve import load_config
from expunge.experiment import log
from expunge.jobs.common import add_runtime_args, find_config, main_wrapper, parse_with_overrides, start_ray
from expunge.stages.pipeline import run_pipeline
from expunge.report.leaderboard import SHOWN  # the terminal's columns, shared with `expunge run`
from expunge.report.markdown import markdown_table
from expunge.store import Store

#: (experiment, its tuned methods or None): the memorising benchmark with every method at its defaults
#: and at the hyperparameters the committed sweep found, then PRU on class forgetting
DEMO_CONFIGS = (("experiments/digits_mislabeled.yaml", "tuned/digits_mislabeled.yaml"),
                ("experiments/digits_class.yaml", None))


def demo_config(path: str, tuned: str | None, overrides: list[str]) -> ExperimentConfig:
    """The experiment at ``path`` with the tuned rows of ``tuned`` (``label``: "<method> (tuned)")
    appended to its methods, unless the overrides set ``unlearn.methods`` themselves."""
    cfg = load_config(find_config(path), overrides)
    if tuned is None or any(o.startswith("unlearn.") for o in overrides):
        return cfg
    extra = [m for m in load_config(find_config(tuned), overrides).unlearn.methods if m.name != "retrain"]
    return cfg.model_copy(update={"unlearn": cfg.unlearn.model_copy(update={"methods": [*cfg.unlearn.methods, *extra]})})


def run_demo(overrides: list[str], rebuild: bool = False, use_ray: bool = True,
             dry_run: bool = False) -> dict[str, Any]:
    cfgs = [demo_config(path, tuned, overrides) for path, tuned in DEMO_CONFIGS]  # validate all before compute
    if dry_run:
        from expunge.jobs.plan import print_plan

        print_plan(*cfgs)
        return {"configs": cfgs}
    t0 = time.perf_counter()
    tables = []
    for cfg in cfgs:
        res = run_pipeline(cfg, rebuild, use_ray, print_table=False)
        table = res["shown"] if cfg.seeds is not None else res["table"]  # over seeds: mean ± std
        tables.append(table.assign(forget=cfg.data.forget))
    table = pd.concat(tables, ignore_index=True)
    first = ["forget", "method", "UA", "RA", "TA"]
    table = table[[*[c for c in first if c in table.columns],
                   *[c for c in table.columns if c not in (*first, "model")]]]
    store = Store(cfgs[0].storage)
    seconds = time.perf_counter() - t0
    text = ("# expunge demo on digits\n\nUA = 1 - forget accuracy, RA, TA in percent; RTE in seconds; "
            f"the demo took {seconds / 60:.1f} minutes.\n\n" + markdown_table(table) + "\n")
    art = store.put("demo", "summary", {"demo.md": text, "demo.csv": table, "demo.parquet": table}, replace=True,
                    repair=rebuild,
                    config={"configs": [c.model_dump() for c in cfgs]})
    shown = [c for c in SHOWN if c in table.columns]
    print("\n" + table[shown].to_string(index=False), flush=True)
    log("(the printed columns are a selection; the saved table has every metric)")
    log(f"demo table: {art.path}/demo.csv")
    log(f"run directories: {', '.join(c.run_dir for c in cfgs)}")
    log(f"demo: {seconds / 60:.1f} minutes")
    return {"table": table, "path": art.path}


@main_wrapper
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m expunge.jobs.demo", description=__doc__)
    p.add_argument("overrides", nargs="*", metavar="key=value")
    add_runtime_args(p)
    args = parse_with_overrides(p, argv)
    run_demo(args.overrides, args.rebuild, False if args.dry_run else start_ray(args), dry_run=args.dry_run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
