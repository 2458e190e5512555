"""One neutral description of what an object shows, rendered three ways.

A :class:`Doc` holds a title, a one-line summary, facts, tables and problems. It renders
as deterministic ``text/plain`` (no ANSI codes, addresses or timings; aligned columns
that read well in a CI log), as static ``text/html`` (scoped CSS, no JavaScript, no
generated ids) and as the vendor JSON (``application/vnd.alchemy-nb+json``). Long tables
are cut the way pandas cuts them: the first and last rows, an ellipsis row, and a footer
that says how many there are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from typing import Any

__all__ = ["MIME", "Cell", "Doc", "Table", "mask", "options", "short"]

MIME = "application/vnd.alchemy-nb+json"
"""The vendor mimetype: ``{"type": ..., "data": ...}`` for machines."""

MASK = "••••••"


@dataclass
class Options:
    """Display options (``alchemy_nb.display.options``)."""

    max_rows: int = 20
    """Rows of a table shown before it is cut (first and last half, then a footer)."""
    max_width: int = 60
    """Characters of one value shown in a cell before it is cut with an ellipsis."""


options = Options()

Cell = str | tuple[str, str]
"""A table cell: its text, or (text, tone) with tone ``ok``, ``bad``, ``warn`` or ``dim``."""


@dataclass
class Table:
    """Rows under column headings; ``noun`` names what a row is (for the footer)."""

    columns: list[str]
    rows: list[list[Cell]]
    noun: tuple[str, str] = ("row", "rows")
    caption: str = ""
    empty: str = "(none)"


@dataclass
class Doc:
    """What an object shows, independent of the surface."""

    kind: str
    title: str
    summary: str = ""
    tone: str = "info"
    """``ok``, ``bad``, ``warn`` or ``info``: the badge colour."""
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    data: Any = None
    css_class: str = ""

    # ------------------------------------------------------------------ text
    def text(self) -> str:
        head = self.title + (f": {self.summary}" if self.summary else "")
        lines = [head]
        if self.facts:
            width = max(len(k) for k, _ in self.facts)
            lines += [f"  {k.ljust(width)}  {v}" for k, v in self.facts]
        for table in self.tables:
            lines += _text_table(table)
        lines += [f"  ! {p}" for p in self.problems]
        return "\n".join(line.rstrip() for line in lines)

    # ------------------------------------------------------------------ html
    def html(self) -> str:
        classes = " ".join(c for c in ("anb", f"anb-{self.kind}", self.css_class) if c)
        parts = [f'<div class="{escape(classes)}">', STYLE]
        badge = f'<span class="anb-badge anb-{escape(self.tone)}">{escape(self.kind)}</span>'
        parts.append(f'<div class="anb-title">{badge} {escape(self.title)}</div>')
        if self.summary:
            parts.append(f'<div class="anb-summary">{escape(self.summary)}</div>')
        if self.facts:
            parts.append('<table class="anb-facts"><tbody>')
            parts += [f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in self.facts]
            parts.append("</tbody></table>")
        for table in self.tables:
            parts.append(_html_table(table))
        if self.problems:
            parts.append('<ul class="anb-problems">')
            parts += [f"<li>{escape(p)}</li>" for p in self.problems]
            parts.append("</ul>")
        parts.append("</div>")
        return "".join(parts)

    def json(self) -> dict[str, Any]:
        return {"type": self.kind, "data": mask(self.data)}


def _cut(rows: list[list[Cell]]) -> tuple[list[list[Cell]], bool]:
    limit = max(options.max_rows, 2)
    if len(rows) <= limit:
        return rows, False
    head = (limit + 1) // 2
    tail = limit // 2
    return [*rows[:head], *rows[len(rows) - tail :]], True


def _footer(table: Table, cut: bool) -> str:
    n = len(table.rows)
    noun = table.noun[0] if n == 1 else table.noun[1]
    return f"{n} {noun}" + (f" ({options.max_rows} shown)" if cut else "")


def _text_of(cell: Cell) -> str:
    return cell if isinstance(cell, str) else cell[0]


def _text_table(table: Table) -> list[str]:
    lines = []
    if table.caption:
        lines.append(f"  {table.caption}")
    if not table.rows:
        lines.append(f"  {table.empty}")
        return lines
    shown, cut = _cut(table.rows)
    cells = [[_text_of(c) for c in row] for row in shown]
    widths = [len(c) for c in table.columns]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(table.columns, widths, strict=True)))
    half = (len(shown) + 1) // 2 if cut else -1
    for i, row in enumerate(cells):
        if i == half:
            lines.append("  " + "  ".join("…".ljust(w) for w in widths))
        lines.append("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    if cut or len(table.rows) > 3:
        lines.append(f"  {_footer(table, cut)}")
    return lines


def _html_cell(cell: Cell, tag: str = "td") -> str:
    if isinstance(cell, str):
        return f"<{tag}>{escape(cell)}</{tag}>"
    text, tone = cell
    return f'<{tag} class="anb-{escape(tone)}">{escape(text)}</{tag}>'


def _html_table(table: Table) -> str:
    parts = ['<table class="anb-table">']
    if table.caption:
        parts.append(f"<caption>{escape(table.caption)}</caption>")
    if not table.rows:
        parts.append(f'<tbody><tr><td class="anb-dim">{escape(table.empty)}</td></tr></tbody>')
        parts.append("</table>")
        return "".join(parts)
    parts.append("<thead><tr>" + "".join(f"<th>{escape(c)}</th>" for c in table.columns))
    parts.append("</tr></thead><tbody>")
    shown, cut = _cut(table.rows)
    half = (len(shown) + 1) // 2 if cut else -1
    for i, row in enumerate(shown):
        if i == half:
            parts.append("<tr>" + "<td>…</td>" * len(table.columns) + "</tr>")
        parts.append("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>")
    parts.append("</tbody></table>")
    if cut or len(table.rows) > 3:
        parts.append(f'<p class="anb-footer">{escape(_footer(table, cut))}</p>')
    return "".join(parts)


def mask(value: Any) -> Any:
    """``value`` with every secret (a ``Secret`` or a sealed ``{"@secret": ...}``) masked."""
    from .._secret import Secret

    if isinstance(value, Secret):
        return MASK
    if isinstance(value, dict):
        if len(value) == 1 and "@secret" in value:
            return MASK
        return {str(k): mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def short(value: Any, limit: int | None = None) -> str:
    """A value as one short line: strings as they are, the rest as JSON; secrets masked."""
    limit = limit or options.max_width
    value = mask(value)
    if value is None:
        text = "(none)"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


_CSS = """
.anb{font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:13px;line-height:1.4;
color:var(--jp-ui-font-color1,#1f2328);margin:2px 0}
.anb .anb-title{font-weight:600;margin-bottom:2px}
.anb .anb-summary{color:var(--jp-ui-font-color2,#57606a);margin-bottom:4px}
.anb .anb-badge{display:inline-block;border-radius:3px;padding:0 5px;font-size:11px;
font-weight:600;color:#fff;background:#57606a}
.anb .anb-badge.anb-ok{background:#1a7f37}
.anb .anb-badge.anb-bad{background:#cf222e}
.anb .anb-badge.anb-warn{background:#9a6700}
.anb .anb-badge.anb-info{background:#0969da}
.anb table{border-collapse:collapse;margin:4px 0;table-layout:auto;width:auto}
.anb tbody tr,.anb tbody tr:nth-child(odd),.anb tbody tr:hover{background:transparent}
.anb th,.anb td{text-align:left;padding:2px 12px 2px 0;vertical-align:top;line-height:1.4;
border:none;border-bottom:1px solid var(--jp-border-color2,#d0d7de);white-space:normal}
.anb thead th{font-weight:600;border-bottom:1px solid var(--jp-border-color1,#8c959f)}
.anb .anb-facts th{font-weight:normal;color:var(--jp-ui-font-color2,#57606a)}
.anb td{font-family:var(--jp-code-font-family,monospace);font-size:12px}
.anb caption{text-align:left;font-weight:600;padding:4px 0 2px;caption-side:top}
.anb td.anb-ok{color:#1a7f37}
.anb td.anb-bad{color:#cf222e;font-weight:600}
.anb td.anb-warn{color:#9a6700}
.anb td.anb-dim{color:var(--jp-ui-font-color3,#8c959f)}
.anb .anb-footer{margin:2px 0;color:var(--jp-ui-font-color2,#57606a);font-size:12px}
.anb .anb-problems{margin:4px 0;padding-left:18px;color:#cf222e}
.anb progress{width:16em;vertical-align:middle}
"""

# Every selector starts ".anb.anb": more specific than a notebook's own rules for rendered
# HTML (JupyterLab right-aligns and stripes table cells), and confined to our output.
STYLE = (
    "<style scoped>"
    + "".join(
        line.replace(".anb", ".anb.anb", 1).replace(",.anb ", ",.anb.anb ")
        for line in _CSS.strip().splitlines()
    )
    + "</style>"
)
