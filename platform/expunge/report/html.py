"""Render report sections to one self-contained HTML page.

Everything is inline: the stylesheet in a ``<style>`` element, every figure as a base64 PNG data URI.
The page loads nothing from the network and needs no JavaScript (collapsed parts are ``<details>``).
"""
from __future__ import annotations

import base64
import re
from functools import singledispatch
from html import escape

from expunge.report.blocks import Bullets, Code, Details, Figure, Paragraph, Section, Table, format_cell

#: text cells that are numbers ("0.612 [0.550, 0.670]": an AUC with its interval) align like numbers
NUMBER_TEXT = re.compile(r"^-?\d")

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0 auto;
       max-width: 1280px; padding: 1.5em 2em 4em; color: #1d2330; line-height: 1.45; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 2px solid #dde3ec; padding-bottom: 0.2em; margin-top: 2em; }
p.sub { color: #5a6475; margin-top: 0; } p.note { color: #5a6475; font-style: italic; }
nav { background: #f4f6fa; padding: 0.6em 1em; border-radius: 6px; }
nav a { margin-right: 1.2em; text-decoration: none; color: #2456a4; white-space: nowrap; }
.table-wrap { overflow-x: auto; margin: 0.8em 0; }
table { border-collapse: collapse; font-size: 0.82em; }
th, td { border: 1px solid #dde3ec; padding: 0.25em 0.55em; text-align: right; white-space: nowrap; }
th { background: #f4f6fa; position: sticky; top: 0; }
td:first-child, th:first-child, td.txt { text-align: left; }
td.best { background: #dff3e3; font-weight: 700; }
caption { caption-side: bottom; text-align: left; color: #5a6475; font-size: 0.9em; padding-top: 0.3em; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eef1f6; }
figcaption { color: #5a6475; font-size: 0.9em; max-width: 70em; }
pre { background: #f7f8fb; padding: 0.8em; overflow-x: auto; font-size: 0.8em; border-radius: 4px; }
details { margin: 0.6em 0; } summary { cursor: pointer; color: #2456a4; }
"""


def table_html(block: Table) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in block.frame.columns)
    rows = []
    for i, row in enumerate(block.frame.itertuples(index=False)):
        cells = []
        for col, value in zip(block.frame.columns, row):
            best = i in block.marks.get(col, ())
            text = escape(format_cell(value)) + (" \u2605" if best else "")
            cls = "best" if best else ("txt" if isinstance(value, str) and not NUMBER_TEXT.match(value) else "")
            attrs = (f' class="{cls}"' if cls else "") + (' title="best in this column"' if best else "")
            cells.append(f"<td{attrs}>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"<caption>{escape(block.caption)}</caption>" if block.caption else ""
    return (f'<div class="table-wrap"><table>{caption}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def figure_html(block: Figure) -> str:
    data = base64.b64encode(block.png).decode("ascii")
    caption = f"<figcaption>{escape(block.caption)}</figcaption>" if block.caption else ""
    return (f'<figure id="fig-{escape(block.name)}"><img src="data:image/png;base64,{data}" '
            f'alt="{escape(block.caption or block.name)}" data-name="{escape(block.name)}">{caption}</figure>')


@singledispatch
def block_html(block: object) -> str:
    """One block as HTML (one registered renderer per block type)."""
    raise TypeError(f"unknown report block {type(block).__name__}")


@block_html.register
def _(block: Paragraph) -> str:
    return f'<p class="note">{escape(block.text)}</p>' if block.note else f"<p>{escape(block.text)}</p>"


@block_html.register
def _(block: Bullets) -> str:
    return "<ul>" + "".join(f"<li>{escape(item)}</li>" for item in block.items) + "</ul>"


@block_html.register
def _(block: Code) -> str:
    return f"<pre>{escape(block.text)}</pre>"


@block_html.register
def _(block: Details) -> str:
    inner = "".join(block_html(b) for b in block.blocks)
    return f"<details><summary>{escape(block.summary)}</summary>{inner}</details>"


block_html.register(Table, table_html)
block_html.register(Figure, figure_html)


def render_html(title: str, subtitle: str, sections: list[Section]) -> str:
    """The whole page: title, a contents bar, then each section under its anchor."""
    nav = "".join(f'<a href="#{escape(s.id)}">{escape(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{escape(s.id)}"><h2>{escape(s.title)}</h2>'
                   + "".join(block_html(b) for b in s.blocks) + "</section>" for s in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head>"
            f"<body><h1>{escape(title)}</h1><p class=\"sub\">{escape(subtitle)}</p><nav>{nav}</nav>{body}"
            "</body></html>\n")
