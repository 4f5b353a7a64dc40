"""The report as plain data: sections made of blocks, rendered to HTML and to Markdown.

Section builders (``expunge.report.sections``) return these; ``expunge.report.html`` and
``expunge.report.markdown`` render them. Keeping content and rendering apart lets one report
produce both files from the same numbers and figures.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Paragraph:
    """Plain text (escaped when rendered); ``note`` paragraphs are shown as a muted remark."""

    text: str
    note: bool = False


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table; ``marks[column]`` holds the row positions drawn as best in that column."""

    frame: pd.DataFrame
    marks: dict[str, frozenset[int]] = field(default_factory=dict)
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    """An image (PNG bytes); ``name`` is its file name next to the Markdown summary."""

    name: str
    png: bytes
    caption: str = ""


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Details:
    """Collapsed content (HTML ``<details>``: opens without JavaScript)."""

    summary: str
    blocks: tuple["Block", ...]


Block = Union[Paragraph, Bullets, Table, Figure, Code, Details]


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: tuple[Block, ...]


def figures_of(blocks: tuple[Block, ...]) -> list[Figure]:
    """Every figure in ``blocks``, nested ones included (the Markdown summary stores them as files)."""
    out: list[Figure] = []
    for b in blocks:
        if isinstance(b, Figure):
            out.append(b)
        elif isinstance(b, Details):
            out += figures_of(b.blocks)
    return out


def format_cell(value: object) -> str:
    """One table cell as text: floats to 3 decimals (scientific when huge), NaN and None empty."""
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if np.isnan(v):
            return ""
        return f"{v:.3e}" if abs(v) >= 1e6 else f"{v:.3f}"
    return str(value)
