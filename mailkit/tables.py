"""DataFrames and pandas Stylers as mail-safe HTML tables and as plain text.

Many mail clients drop ``<style>`` blocks and CSS classes, so the HTML form puts
every style inline on the ``<table>``, ``<tr>``, ``<th>`` and ``<td>`` elements.
A Styler is rendered with :meth:`pandas.io.formats.style.Styler.to_html`, and the
rules of its ``<style>`` block are copied onto the cells they select. Selectors
supported: the table id and cell ids that pandas writes, and the table id
followed by a tag (``th``, ``td``, ``tr``, ``thead``, ``tbody``), a class or
``tag.class``. Rules with other selectors, such as ``:hover`` or
``:nth-child``, are left out because an inline style cannot express them.

In templates the ``table`` filter gives the HTML form in the HTML body and the
text form in the text body: ``{{ items | table }}``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser
from typing import Any

import pandas as pd
from markupsafe import Markup

from .cells import cell_is_empty, format_cell

__all__ = ["html_table", "text_table"]

_TABLE_STYLE = (
    "border-collapse:collapse;font-family:Arial,Helvetica,sans-serif;font-size:14px"
)
_CELL_STYLE = "padding:4px 8px;border:1px solid #d0d0d0;vertical-align:top"
_HEADER_STYLE = (
    _CELL_STYLE + ";background-color:#f2f2f2;font-weight:bold;text-align:left"
)
_EMPTY_TEXTS = frozenset({"nan", "NaN", "None", "NaT", "<NA>"})


@dataclass
class _Cell:
    text: str
    header: bool
    numeric: bool = False
    colspan: int = 1
    element_id: str = ""
    classes: tuple[str, ...] = ()
    style: list[str] = field(default_factory=list)


@dataclass
class _Grid:
    head: list[list[_Cell]]
    body: list[list[_Cell]]
    table_style: list[str] = field(default_factory=list)
    row_styles: dict[int, list[str]] = field(default_factory=dict)


def _label(value: Any) -> str:
    if isinstance(value, tuple):
        return " / ".join(str(format_cell(part)) for part in value)
    return str(format_cell(value))


def _show_index(frame: pd.DataFrame, index: bool | None) -> bool:
    if index is not None:
        return index
    return not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None


def _frame_grid(frame: pd.DataFrame, index: bool | None) -> _Grid:
    show_index = _show_index(frame, index)
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    header = []
    if show_index:
        header.append(_Cell(_label(frame.index.name or ""), header=True))
    header += [
        _Cell(_label(name), header=True, numeric=is_number)
        for name, is_number in zip(frame.columns, numeric)
    ]
    body = []
    for label, values in zip(frame.index, frame.itertuples(index=False, name=None)):
        row = [_Cell(_label(label), header=True)] if show_index else []
        row += [
            _Cell(str(format_cell(value)), header=False, numeric=is_number)
            for value, is_number in zip(values, numeric)
        ]
        body.append(row)
    return _Grid(head=[header], body=body)


class _StylerHTMLParser(HTMLParser):
    """Collects the style block and the cells of the HTML that a Styler writes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.css = ""
        self.table_id = ""
        self.head: list[list[_Cell]] = []
        self.body: list[list[_Cell]] = []
        self._in_style = False
        self._in_head = False
        self._cell: _Cell | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "style":
            self._in_style = True
        elif tag == "table":
            self.table_id = values.get("id", "")
        elif tag == "thead":
            self._in_head = True
        elif tag == "tbody":
            self._in_head = False
        elif tag == "tr":
            (self.head if self._in_head else self.body).append([])
        elif tag in ("th", "td"):
            colspan = values.get("colspan", "1")
            self._cell = _Cell(
                text="",
                header=tag == "th",
                colspan=int(colspan) if colspan.isdigit() else 1,
                element_id=values.get("id", ""),
                classes=tuple(values.get("class", "").split()),
            )

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False
        elif tag in ("th", "td") and self._cell is not None:
            self._cell.text = self._cell.text.strip()
            rows = self.head if self._in_head else self.body
            if not rows:
                rows.append([])
            rows[-1].append(self._cell)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.css += data
        elif self._cell is not None:
            self._cell.text += data


_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_SELECTOR = re.compile(r"#([\w-]+)(?:\s+([a-z]+)?(?:\.([\w-]+))?)?")


def _declarations(text: str) -> list[str]:
    return [part.strip() for part in text.split(";") if part.strip()]


def _apply_css(grid: _Grid, css: str, table_id: str) -> None:
    """Copy the rules of ``css`` inline onto the cells of ``grid``, ids last."""
    by_id: dict[str, list[str]] = {}
    by_tag_or_class: list[tuple[str | None, str | None, list[str]]] = []
    for selectors, body in _RULE.findall(css):
        declarations = _declarations(body)
        for selector in selectors.split(","):
            match = _SELECTOR.fullmatch(selector.strip())
            if match is None:
                continue
            element_id, tag, css_class = match.groups()
            if tag is None and css_class is None:
                if element_id == table_id:
                    grid.table_style += declarations
                else:
                    by_id.setdefault(element_id, []).extend(declarations)
            elif element_id == table_id:
                by_tag_or_class.append((tag, css_class, declarations))
    for section, rows in (("thead", grid.head), ("tbody", grid.body)):
        for row in rows:
            for cell in row:
                element = "th" if cell.header else "td"
                for tag, css_class, declarations in by_tag_or_class:
                    if tag in ("tr", None) and css_class is None:
                        continue
                    if tag not in (None, element, section):
                        continue
                    if css_class is not None and css_class not in cell.classes:
                        continue
                    cell.style += declarations
                cell.style += by_id.get(cell.element_id, [])
    row_rules = [
        d for tag, css_class, d in by_tag_or_class if tag == "tr" and not css_class
    ]
    for position in range(len(grid.head) + len(grid.body)):
        for declarations in row_rules:
            grid.row_styles.setdefault(position, []).extend(declarations)


_POSITION = re.compile(r"row(\d+)$|col(\d+)$")


def _blank_empty_cells(grid: _Grid, data: pd.DataFrame) -> None:
    """Print blank data cells as nothing, as templates do, not as "nan"."""
    for row in grid.body:
        for cell in row:
            if cell.header or cell.text not in _EMPTY_TEXTS:
                continue
            positions = {}
            for css_class in cell.classes:
                match = _POSITION.match(css_class)
                if match:
                    positions["row" if match.group(1) else "col"] = int(
                        match.group(1) or match.group(2)
                    )
            if len(positions) == 2 and cell_is_empty(
                data.iat[positions["row"], positions["col"]]
            ):
                cell.text = ""


def _styler_grid(styler: Any) -> _Grid:
    parser = _StylerHTMLParser()
    parser.feed(styler.to_html())
    parser.close()
    grid = _Grid(head=parser.head, body=parser.body)
    _apply_css(grid, parser.css, parser.table_id)
    _blank_empty_cells(grid, styler.data)
    numeric = [
        pd.api.types.is_numeric_dtype(styler.data[c]) for c in styler.data.columns
    ]
    for row in grid.body:
        for cell in row:
            match = [
                c for c in cell.classes if _POSITION.match(c) and c.startswith("col")
            ]
            if not cell.header and match:
                column = int(match[0][3:])
                cell.numeric = column < len(numeric) and numeric[column]
    return grid


def _grid(data: Any, index: bool | None) -> _Grid:
    if isinstance(data, pd.DataFrame):
        return _frame_grid(data, index)
    if isinstance(data, pd.Series):
        return _frame_grid(data.to_frame(), index)
    if hasattr(data, "to_html") and isinstance(
        getattr(data, "data", None), pd.DataFrame
    ):
        return _styler_grid(data)
    raise TypeError(
        f"table expects a pandas DataFrame, Series or Styler, got {type(data).__name__}"
    )


def _style_attribute(base: str, extra: list[str]) -> str:
    return escape(";".join([base, *extra]), quote=True)


def html_table(data: Any, *, index: bool | None = None) -> Markup:
    """Render a DataFrame, Series or Styler as an HTML table with inline styles.

    ``index`` shows the index column; by default it is shown unless the index is
    an unnamed RangeIndex. A Styler decides this itself (``Styler.hide``).
    """
    grid = _grid(data, index)
    lines = [
        '<table cellpadding="0" cellspacing="0" border="0" '
        f'style="{_style_attribute(_TABLE_STYLE, grid.table_style)}">'
    ]
    for position, row in enumerate([*grid.head, *grid.body]):
        row_style = grid.row_styles.get(position)
        lines.append(
            f'<tr style="{_style_attribute("", row_style)}">' if row_style else "<tr>"
        )
        for cell in row:
            tag = "th" if cell.header else "td"
            base = _HEADER_STYLE if cell.header else _CELL_STYLE
            if cell.numeric:
                base += ";text-align:right"
            span = f' colspan="{cell.colspan}"' if cell.colspan > 1 else ""
            lines.append(
                f'<{tag}{span} style="{_style_attribute(base, cell.style)}">'
                f"{escape(cell.text)}</{tag}>"
            )
        lines.append("</tr>")
    lines.append("</table>")
    return Markup("\n".join(lines))


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _pad(text: str, width: int, right: bool) -> str:
    padding = " " * (width - _width(text))
    return padding + text if right else text + padding


def text_table(data: Any, *, index: bool | None = None) -> str:
    """Render a DataFrame, Series or Styler as a plain-text table.

    Columns are separated by two spaces, numbers are aligned right, and a line
    of dashes follows the header. Wide (East Asian) characters count as two
    columns. The result ends without a line break.
    """
    grid = _grid(data, index)
    rows: list[list[_Cell]] = []
    for row in [*grid.head, *grid.body]:
        expanded = []
        for cell in row:
            expanded.append(cell)
            expanded += [_Cell("", header=cell.header)] * (cell.colspan - 1)
        rows.append(expanded)
    count = max((len(row) for row in rows), default=0)
    widths = [0] * count
    for row in rows:
        for column, cell in enumerate(row):
            widths[column] = max(widths[column], _width(cell.text))
    lines = []
    for position, row in enumerate(rows):
        cells = [
            _pad(cell.text, widths[column], cell.numeric)
            for column, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if position == len(grid.head) - 1:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)
