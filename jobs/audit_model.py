"""Audit models trained outside expunge: ``python -m expunge.jobs.audit_model CONFIG --original FILE
--unlearned NAME=FILE [--unlearned NAME=FILE ...] --forget-indices FILE [options] [key=value ...]``
(also ``expunge audit-model``).

CONFIG names the data (``data.dataset``, its split sizes and seed), the model (``model.name``, also
``timm:<name>``), the training recipe (used only by ``--train-retrain`` and trained shadows) and the
audit (``audit.metrics``, ``audit.shadows``). ``--original`` is the model before unlearning, trained
on the split's train set, or on the positions of ``--train-indices``; ``--unlearned`` each model to
audit (NAME is its row on the leaderboard); ``--forget-indices`` the forgotten dataset positions
(``data.forget=indices:FILE``). ``--retrained FILE`` adds a model retrained without the forget set
(the retrain row and every gap to it), or ``--train-retrain`` trains one on the retain set with the
config's recipe. ``--shadows DIR`` imports the audit's OUT shadow models (``member_0000.safetensors``
... and ``membership.npy``, K x N booleans over dataset positions) instead of training
``audit.shadows`` of them. Weights are safetensors or weights-only torch files.

Every input is checked before anything is stored or computed (one line and exit code 2 otherwise).
Writes the same audit, leaderboard and report as ``expunge run`` into the run directory; the
imported models are stored with the sha256 of their files, so a changed file is refused unless
``--rebuild``.
"""
from __future__ import annotations

import argparse

from expunge.errors import ConfigError
from expunge.jobs.common import find_config, main_wrapper, parse_with_overrides, start_ray
from expunge.stages.audit_model import ModelFiles, audit_model_config, execute, parse_unlearned, prepare


class _OneLineParser(argparse.ArgumentParser):
    """Argument errors as one :class:`ConfigError` line (exit code 2), like every other bad input."""

    def error(self, message: str):
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog="expunge audit-model", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="experiment YAML, e.g. configs/experiments/digits.yaml")
    p.add_argument("--original", required=True, metavar="FILE", help="the original model's weights")
    p.add_argument("--unlearned", action="append", default=[], metavar="NAME=FILE",
                   help="an unlearned model's weights, NAME its leaderboard row (repeatable)")
    p.add_argument("--forget-indices", required=True, metavar="FILE",
                   help="the forgotten dataset positions (.npy or whitespace-separated text)")
    p.add_argument("--train-indices", metavar="FILE",
                   help="the dataset positions the original trained on, when not the split's train set")
    retrain = p.add_mutually_exclusive_group()
    retrain.add_argument("--retrained", metavar="FILE", help="a model retrained without the forget set")
    retrain.add_argument("--train-retrain", action="store_true",
                         help="retrain one on the retain set with the config's training recipe")
    p.add_argument("--shadows", metavar="DIR", help="imported OUT shadow models: member_0000.safetensors ... "
                                                    "and membership.npy (K x N booleans)")
    p.add_argument("--address", default=None, help="Ray cluster address, host:port (default: $RAY_ADDRESS, "
                                                   "else a private embedded Ray on 127.0.0.1)")
    p.add_argument("--local", action="store_true", help="run in this process without Ray")
    p.add_argument("--rebuild", action="store_true",
                   help="replace stored artifacts that are corrupt or do not match the files (never silently)")
    p.add_argument("--dry-run", action="store_true",
                   help="check every input and print what would be imported, trained and audited; store nothing")
    p.set_defaults(overrides=[])
    return p


@main_wrapper
def main(argv: list[str] | None = None) -> int:
    from expunge.resolve import load_config

    args = parse_with_overrides(build_parser(), argv)
    if not args.unlearned:
        raise ConfigError("give at least one --unlearned NAME=FILE (the models to audit)")
    files = ModelFiles(original=args.original, forget_indices=args.forget_indices,
                       unlearned=parse_unlearned(args.unlearned), train_indices=args.train_indices,
                       retrained=args.retrained, train_retrain=args.train_retrain, shadows=args.shadows)
    cfg = audit_model_config(load_config(find_config(args.config), args.overrides), files)
    checked = prepare(cfg, files, args.rebuild)  # every input, before Ray starts or anything is stored
    if args.dry_run:
        print("\n".join(checked.describe()), flush=True)
        return 0
    execute(checked, start_ray(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
