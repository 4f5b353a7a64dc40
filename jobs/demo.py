"""The showcase on embedded digits: every method that fits a random 10% forget set, and PRU on a
class-forget variant, in one table of method, UA, RA, TA and RTE.

``python -m expunge.jobs.demo [key=value ...]`` (overrides apply to both experiments).
"""
from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from expunge.config import load_config
from expunge.experiment import log
from expunge.jobs.common import add_runtime_args, find_config, main_wrapper, parse_with_overrides, start_ray
from expunge.jobs.pipeline import run_pipeline
from expunge.report.markdown import markdown_table
from expunge.store import Store

DEMO_CONFIGS = ("experiments/digits.yaml", "experiments/digits_class.yaml")
#: the columns printed to the terminal (the saved table has them all)
SHOWN = ("forget", "method", "UA", "RA", "TA", "MIA_efficacy", "CR_forget", "MIACR", "lira_binui_auc",
         "rmia_binui_auc", "iam_binui_auc", "rcd_steps", "relearn_acc@10", "avg_gap", "RTE_s")


def run_demo(overrides: list[str], rebuild: bool = False, use_ray: bool = True,
             dry_run: bool = False) -> dict[str, Any]:
    cfgs = [load_config(find_config(path), overrides) for path in DEMO_CONFIGS]  # validate all before compute
    if dry_run:
        from expunge.jobs.plan import print_plan

        print_plan(*cfgs)
        return {"configs": cfgs}
    tables = []
    for cfg in cfgs:
        res = run_pipeline(cfg, rebuild, use_ray, print_table=False)
        tables.append(res["table"].assign(forget=cfg.data.forget))
    table = pd.concat(tables, ignore_index=True)
    first = ["forget", "method", "UA", "RA", "TA"]
    table = table[[*[c for c in first if c in table.columns],
                   *[c for c in table.columns if c not in (*first, "model")]]]
    store = Store(cfgs[0].storage)
    text = "# expunge demo on digits\n\nUA = 1 - forget accuracy, RA, TA in percent; RTE in seconds.\n\n" \
           + markdown_table(table) + "\n"
    art = store.put("demo", "summary", {"demo.md": text, "demo.csv": table, "demo.parquet": table}, replace=True,
                    config={"configs": [c.model_dump() for c in cfgs]})
    shown = [c for c in SHOWN if c in table.columns]
    print("\n" + table[shown].to_string(index=False), flush=True)
    log("(the printed columns are a selection; the saved table has every metric)")
    log(f"demo table: {art.path}/demo.csv")
    log(f"run directories: {', '.join(c.run_dir for c in cfgs)}")
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
