"""What a DataFrame cell prints as, and when it counts as empty."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = ["cell_is_blank", "cell_is_empty", "format_cell"]


def cell_is_empty(value: Any) -> bool:
    """True for None, NaN, NaT and pandas.NA: the values pandas uses for blank cells."""
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def cell_is_blank(value: Any) -> bool:
    """True for an empty cell or text that is empty after trimming whitespace."""
    if cell_is_empty(value):
        return True
    return isinstance(value, str) and not value.strip()


def format_cell(value: Any) -> Any:
    """Turn a cell into what a template prints.

    A blank cell prints as nothing rather than "nan" or "None". A float with no
    fraction prints as an integer, because a column of integers becomes float in
    pandas as soon as one cell is blank. A timestamp at midnight prints as a date.
    """
    if cell_is_empty(value):
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, pd.Timestamp) and value == value.normalize():
        return value.date()
    return value
