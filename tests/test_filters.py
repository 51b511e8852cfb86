"""The date and number filters of every template."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from mailkit.filters import format_date, format_number


@pytest.mark.parametrize(
    "value",
    [
        "2024-03-05",
        dt.date(2024, 3, 5),
        dt.datetime(2024, 3, 5, 10, 30),
        pd.Timestamp("2024-03-05"),
        np.datetime64("2024-03-05"),
        "2024-03-05 10:30:00",
    ],
)
def test_date_filter_inputs(value):
    assert format_date(value, "%d %B %Y") == "05 March 2024"


def test_date_filter_input_layout_and_errors():
    assert format_date("05/03/2024", "%Y-%m-%d", input="%d/%m/%Y") == "2024-03-05"
    assert format_date(None) == ""
    assert format_date(float("nan")) == ""
    assert format_date(pd.NaT) == ""
    with pytest.raises(ValueError, match="ISO 8601"):
        format_date("05/03/2024")
    with pytest.raises(ValueError, match="does not match"):
        format_date("2024-03-05", input="%d/%m/%Y")


@pytest.mark.parametrize(
    "value, options, expected",
    [
        (12.0, {}, "12"),
        (12.5, {}, "12.5"),
        ("1234.5", {"decimals": 2, "thousands": ","}, "1,234.50"),
        (
            1234567.891,
            {"decimals": 2, "thousands": ".", "decimal": ","},
            "1.234.567,89",
        ),
        (2.675, {"decimals": 2}, "2.68"),
        (-0.5, {"decimals": 0}, "-1"),
        (np.int64(7), {"decimals": 1}, "7.0"),
        (Decimal("10.005"), {"decimals": 2}, "10.01"),
        (None, {"decimals": 2}, ""),
        (float("nan"), {}, ""),
    ],
)
def test_number_filter(value, options, expected):
    assert format_number(value, **options) == expected


def test_number_filter_rejects_text():
    with pytest.raises(ValueError, match="not a number"):
        format_number("twelve")
    with pytest.raises(ValueError, match="boolean"):
        format_number(True)
