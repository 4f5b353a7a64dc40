"""Sweep constraints: ``"<column> <op> <number>"`` with op in <=, >=, <, > (e.g. ``"TA_drop <= 2"``).

Parsed when the config is validated, evaluated on each trial's row by :mod:`expunge.sweep.objective`.
"""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Mapping

from expunge.errors import ConfigError

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w@.\-]*)\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def column_value(row: Mapping[str, float], column: str) -> float:
    """``row[column]`` as a float; an unknown column is a ConfigError naming the known ones."""
    if column not in row:
        raise ConfigError(f"sweep: unknown column {column!r} (known: {', '.join(sorted(row))})")
    return float(row[column])


@dataclass(frozen=True)
class Constraint:
    """``<column> <op> <bound>``; a NaN value breaks the constraint."""

    column: str
    op: str
    bound: float

    @classmethod
    def parse(cls, text: str) -> "Constraint":
        m = _CONSTRAINT.match(text)
        if not m:
            raise ConfigError(f"sweep constraint {text!r}: expected '<column> <op> <number>' with op in "
                              f"{', '.join(_OPS)} (e.g. 'TA_drop <= 2')")
        return cls(m.group(1), m.group(2), float(m.group(3)))

    def holds(self, row: Mapping[str, float]) -> bool:
        v = column_value(row, self.column)
        return math.isfinite(v) and bool(_OPS[self.op](v, self.bound))

    def __str__(self) -> str:
        return f"{self.column} {self.op} {self.bound:g}"
