"""Thin entrypoints, one per stage: ``python -m expunge.jobs.<stage> --config FILE [key=value ...]``.

Each connects to the Ray cluster a ``ray job submit`` already started (or starts an embedded local
Ray), runs its stage functions from the core as Ray tasks, and prints where its artifacts are. The
``expunge`` CLI subcommands call these same functions.
"""
