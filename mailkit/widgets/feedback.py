"""HTML snippets that the forms show: status lines and tables.

Every value that comes from the user, the DataFrame or the server is escaped,
because the ipywidgets HTML widget inserts its value into the page as markup.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

__all__ = ["error_html", "frame_html", "info_html", "success_html", "warning_html"]

#: Rows of a DataFrame shown in a form; the whole frame stays on the Python object.
MAX_TABLE_ROWS = 200

_TABLE_STYLE = (
    ".mailkit-frame th, .mailkit-frame td {padding: 0.15em 0.6em; "
    "text-align: left; vertical-align: top; border-bottom: 1px solid #ddd}"
)
_COLORS = {
    "info": "#1a5fb4",
    "success": "#26a269",
    "warning": "#b5835a",
    "error": "#c01c28",
}


def _line(kind: str, text: str) -> str:
    escaped = html.escape(text).replace("\n", "<br>")
    return (
        f'<div class="mailkit-{kind}" style="color: {_COLORS[kind]}; '
        f'white-space: normal">{escaped}</div>'
    )


def info_html(text: str) -> str:
    return _line("info", text)


def success_html(text: str) -> str:
    return _line("success", text)


def warning_html(text: str) -> str:
    return _line("warning", text)


def error_html(text: str) -> str:
    return _line("error", text)


def _cell(value: Any) -> str:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    return html.escape(str(value))


def frame_html(frame: pd.DataFrame, *, caption: str = "", index: bool = True) -> str:
    """Render up to MAX_TABLE_ROWS rows of ``frame`` as an escaped HTML table."""
    shown = frame.head(MAX_TABLE_ROWS)
    head = "".join(f"<th>{html.escape(str(name))}</th>" for name in shown.columns)
    if index:
        head = f"<th>{html.escape(str(frame.index.name or ''))}</th>" + head
    body = []
    for label, row in zip(shown.index, shown.itertuples(index=False)):
        cells = "".join(f"<td>{_cell(value)}</td>" for value in row)
        if index:
            cells = f"<th>{_cell(label)}</th>" + cells
        body.append(f"<tr>{cells}</tr>")
    note = ""
    if len(frame) > len(shown):
        note = (
            f"<div>Showing the first {len(shown)} of {len(frame)} rows; the "
            "DataFrame holds all of them.</div>"
        )
    caption_html = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (
        f"<style>{_TABLE_STYLE}</style>"
        '<div class="mailkit-table" style="max-height: 24em; overflow: auto">'
        f'<table class="mailkit-frame" style="border-collapse: collapse">'
        f"{caption_html}<thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>{note}</div>"
    )
