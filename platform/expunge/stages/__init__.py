"""Stage runners, the one place a stage is run from (jobs, sweeps and the CLI call these): ``original``,
``fleet``, ``unlearn``, ``audit`` and ``pipeline`` (all of them in order)."""
