"""Plain Markdown (no extra dependency): tables, and the report's Markdown summary.

The summary renders the same sections as the HTML page; figures are referenced as PNG files stored
next to it in the report artifact, and best cells are in bold.
"""
from __future__ import annotations

import math
from functools import singledispatch

import pandas as pd

from expunge.report.blocks import Bullets, Code, Details, Figure, Paragraph, Section, Table, format_cell


def _cell(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.2f}"
    return str(v)


def markdown_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


@singledispatch
def block_markdown(block: object) -> str:
    """One block as Markdown (one registered renderer per block type)."""
    raise TypeError(f"unknown report block {type(block).__name__}")


@block_markdown.register
def _(block: Paragraph) -> str:
    return f"*{block.text}*" if block.note else block.text


@block_markdown.register
def _(block: Bullets) -> str:
    return "\n".join(f"- {item}" for item in block.items)


@block_markdown.register
def _(block: Table) -> str:
    text = pd.DataFrame({
        col: [(f"**{format_cell(v)}**" if i in block.marks.get(col, ()) else format_cell(v)).replace("|", "\\|")
              for i, v in enumerate(block.frame[col])]
        for col in block.frame.columns}, columns=block.frame.columns)
    return markdown_table(text) + (f"\n\n{block.caption}" if block.caption else "")


@block_markdown.register
def _(block: Figure) -> str:
    return f"![{block.name}]({block.name})" + (f"\n\n*{block.caption}*" if block.caption else "")


@block_markdown.register
def _(block: Code) -> str:
    return f"```\n{block.text}\n```"


@block_markdown.register
def _(block: Details) -> str:
    return f"**{block.summary}**\n\n" + "\n\n".join(block_markdown(b) for b in block.blocks)


def render_markdown(title: str, subtitle: str, sections: list[Section]) -> str:
    """The summary: title, then each section with its blocks."""
    parts = [f"# {title}", subtitle]
    for s in sections:
        parts.append(f"## {s.title}")
        parts += [block_markdown(b) for b in s.blocks]
    return "\n\n".join(parts) + "\n"
