"""Jinja2 filters for dates and numbers, available in every template.

``{{ joined | date("%d %B %Y") }}`` prints ``05 March 2024`` for a cell holding a
date, a datetime, a pandas Timestamp or ISO 8601 text such as ``2024-03-05``
(the form :func:`mailkit.read_table` gives). ``input=`` reads text in another
layout: ``{{ joined | date("%d %B %Y", input="%d/%m/%Y") }}``.

``{{ amount | number(2, thousands=",") }}`` prints ``1,234.50`` for a number or
numeric text; ``decimal=","`` writes a decimal comma. Numbers are rounded half
away from zero in decimal, so ``2.675`` prints as ``2.68``.

Both filters print a blank cell (None, NaN, NaT, empty text) as an empty string;
preflight reports blank cells that templates use.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd

from .cells import cell_is_empty

__all__ = ["FILTERS", "format_date", "format_number"]


def _to_datetime(value: Any, input_format: str | None) -> dt.date | dt.datetime:
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, (dt.date, dt.datetime)):
        return value
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).to_pydatetime()
    text = str(value).strip()
    if input_format is not None:
        try:
            return dt.datetime.strptime(text, input_format)
        except ValueError as exc:
            raise ValueError(
                f"date filter: {text!r} does not match the input format "
                f"{input_format!r}"
            ) from exc
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        return dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(
            f"date filter: cannot read {text!r} as an ISO 8601 date such as "
            "2024-03-05; pass input='%d/%m/%Y' (or the layout of the column)"
        ) from exc


def format_date(value: Any, format: str = "%Y-%m-%d", input: str | None = None) -> str:
    """Format a date cell with :meth:`datetime.strftime` codes (``%d %B %Y``).

    Month and day names follow the process locale (English unless the program
    called :func:`locale.setlocale`).
    """
    if cell_is_empty(value) or (isinstance(value, str) and not value.strip()):
        return ""
    return _to_datetime(value, input).strftime(format)


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"number filter: {value!r} is a boolean, not a number")
    if isinstance(value, (int, np.integer)):
        return Decimal(int(value))
    if isinstance(value, (float, np.floating)):
        return Decimal(repr(float(value)))
    if isinstance(value, Decimal):
        return value
    text = str(value).strip().replace("\u00a0", "").replace(" ", "")
    try:
        number = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"number filter: {value!r} is not a number") from exc
    if not number.is_finite():
        raise ValueError(f"number filter: {value!r} is not a finite number")
    return number


def _group(digits: str, separator: str) -> str:
    if not separator:
        return digits
    groups = []
    while len(digits) > 3:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    groups.insert(0, digits)
    return separator.join(groups)


def format_number(
    value: Any,
    decimals: int | None = None,
    thousands: str = "",
    decimal: str = ".",
) -> str:
    """Format a number with a fixed count of ``decimals`` and separators.

    With ``decimals=None`` the digits are kept as they are, and a float with no
    fraction prints without ``.0``.
    """
    if cell_is_empty(value) or (isinstance(value, str) and not value.strip()):
        return ""
    number = _to_decimal(value)
    if decimals is not None:
        number = number.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    elif number == number.to_integral_value():
        number = number.quantize(Decimal(1))
    sign = "-" if number < 0 else ""
    text = format(abs(number), "f")
    whole, _, fraction = text.partition(".")
    result = sign + _group(whole, thousands)
    if fraction:
        result += decimal + fraction
    return result


#: The filters added to every template environment.
FILTERS = {"date": format_date, "number": format_number}
