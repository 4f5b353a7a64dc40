"""Repeated trials: per-seed configs, the --seeds flag, mean ± std and paired comparisons."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from expunge.audit.across_seeds import format_mean_std, paired_comparison, seed_summary
from expunge.resolve import load_config
from expunge.errors import ConfigError


def _tables(values: dict[str, list[float]], column: str = "avg_gap") -> dict[int, pd.DataFrame]:
    n = len(next(iter(values.values())))
    return {s: pd.DataFrame({"model": list(values), "method": list(values), column: [v[s] for v in values.values()]})
            for s in range(n)}


def test_per_seed_configs_own_run_directories_and_seeds(tmp_path):
    cfg = load_config(None, [f"storage={tmp_path}", "name=exp", "seeds=[2, 0, 5]"])
    per = cfg.per_seed_configs()
    assert [c.seed for c in per] == [2, 0, 5]
    assert len({c.run_dir for c in per}) == 3
    assert all(c.run_dir.startswith(cfg.run_dir) and c.seeds is None for c in per)
    assert load_config(None, ["seed=3"]).per_seed_configs()[0].seed == 3  # no seeds: the config itself


@pytest.mark.parametrize("value, match", [("[]", "at least one seed"), ("[1, 1]", "distinct"), ("[-1]", ">= 0")])
def test_bad_seeds_are_one_line_errors(value, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [f"seeds={value}"])


def test_seeds_flag_becomes_the_override_and_single_stage_commands_refuse_it(tmp_path, capsys):
    from expunge.cli import main

    assert main(["train", "configs/experiments/digits.yaml", "--seeds", "0,1", f"storage={tmp_path}", "--local"]) == 2
    assert "runs one seed" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before anything was written
    with pytest.raises(SystemExit) as exc:  # argparse's usage error
        main(["run", "configs/experiments/digits.yaml", "--seeds", "0;1", "--dry-run"])
    assert exc.value.code == 2 and "comma-separated" in capsys.readouterr().err


def test_seed_summary_mean_std_count():
    tables = _tables({"a": [1.0, 2.0, 6.0], "b": [0.0, 0.0, 0.0]})
    tables[2] = tables[2][tables[2]["model"] == "a"]  # b is missing on seed 2
    s = seed_summary(tables).set_index("model")
    assert s.loc["a", "avg_gap_mean"] == pytest.approx(3.0)
    assert s.loc["a", "avg_gap_std"] == pytest.approx(np.std([1, 2, 6], ddof=1))
    assert s.loc["a", "avg_gap_n"] == 3 and s.loc["b", "avg_gap_n"] == 2
    shown = format_mean_std(s.reset_index(), ["avg_gap"])
    assert shown["avg_gap"].tolist() == ["3.00 ± 2.65", "0.00 ± 0.00"]


def test_paired_comparison_wins_and_bootstrap_interval():
    # a is better (lower) on seeds 0 and 1, worse on seed 2
    tables = _tables({"a": [1.0, 1.0, 3.0], "b": [2.0, 3.0, 2.0], "c": [1.0, 1.0, 3.0]})
    pairs = paired_comparison(tables, "avg_gap").set_index(["a", "b"])
    ab = pairs.loc[("a", "b")]
    assert ab["wins_a"] == 2 and ab["n"] == 3
    assert ab["mean_diff"] == pytest.approx(np.mean([-1.0, -2.0, 1.0]))
    assert ab["ci_low"] <= ab["mean_diff"] <= ab["ci_high"]
    assert ab["ci_low"] >= -2.0 and ab["ci_high"] <= 1.0  # a mean of resampled differences
    ac = pairs.loc[("a", "c")]  # identical: no wins either way, a zero-width interval
    assert ac["wins_a"] == 0 and ac["ci_low"] == ac["ci_high"] == 0.0
    high = paired_comparison(tables, "avg_gap", mode="max").set_index(["a", "b"]).loc[("a", "b")]
    assert high["wins_a"] == 1
    with pytest.raises(ValueError, match="not in the leaderboards"):
        paired_comparison(tables, "nope")
