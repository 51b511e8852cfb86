"""Statements in README.md that the code can check."""

from __future__ import annotations

import re
from pathlib import Path

import mailkit
from mailkit.results import RESULT_COLUMNS

ROOT = Path(__file__).resolve().parent.parent


def _results_table_columns() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("Its columns:", 1)[1].split("\n\n", 2)[1]
    columns = []
    for line in table.splitlines()[2:]:
        first_cell = line.split("|")[1]
        columns += re.findall(r"`([a-z_]+)`", first_cell)
    return columns


def test_readme_lists_every_result_column():
    assert _results_table_columns() == RESULT_COLUMNS


def test_send_bulk_doc_lists_every_result_column():
    doc = " ".join(mailkit.send_bulk.__doc__.split())
    listed = doc.split("DataFrame has the same index as ``df`` and the columns", 1)[1]
    for column in RESULT_COLUMNS:
        assert f"``{column}``" in listed, column
