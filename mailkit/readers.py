"""Read a CSV or Excel file into a DataFrame with every column as text.

Codes such as ``02494`` or ``007`` stay as written: pandas would read them as the
numbers 2494 and 7. In an .xlsx file a number can also carry a display format
that adds the zeros (``00000`` shows 2494 as ``02494``), which no pandas option
recovers; :func:`read_table` finds such cells and, by default, records them in
``df.attrs`` so that preflight lists them.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import ConfigurationError

__all__ = ["EXCEL_FORMATS_ATTR", "read_table"]

#: Key in ``DataFrame.attrs`` under which read_table records number cells whose
#: Excel format adds leading zeros: a list of dicts with the keys column,
#: format, row, value, shown and count.
EXCEL_FORMATS_ATTR = "mailkit_excel_formats"

_EXCEL_FORMATS_OPTIONS = ("report", "apply", "ignore")
# A format section of digit placeholders "0" and literal separators, such as
# 00000, 000-00-0000 or "0000 000", with at least two zeros.
_ZERO_FORMAT = re.compile(r'(?:0|[-/ .()]|\\.|"[^"]*")+')


def read_table(
    path: str | os.PathLike,
    *,
    sheet: str | int | None = None,
    excel_formats: str = "report",
    sep: str | None = None,
    encoding: str = "utf-8-sig",
) -> pd.DataFrame:
    """Read a .csv, .tsv, .txt or .xlsx file with every column as text.

    Delimited text under another file name needs ``sep=``. Other formats
    (JSON, Parquet, ...) raise ConfigurationError, because pandas would read
    them as a one-column CSV.

    Blank cells become empty strings, and text such as "NA" stays text. In an
    .xlsx file, dates without a time become ``2024-03-05``, dates with a time
    ``2024-03-05 14:30:00``, whole numbers lose ``.0``, and ``sheet`` picks a
    sheet by name or 0-based position (default: the first). ``excel_formats``
    says what to do with numbers whose Excel format adds leading zeros:
    "report" (keep the stored number and list it for preflight), "apply" (use
    the text Excel shows) or "ignore". ``sep`` is the CSV delimiter (default
    ``,``, or tab for .tsv).
    """
    if excel_formats not in _EXCEL_FORMATS_OPTIONS:
        raise ConfigurationError(
            f"Invalid excel_formats={excel_formats!r}: use 'report', 'apply' or "
            "'ignore'."
        )
    file_path = Path(path)
    suffix = file_path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(file_path, sheet, excel_formats)
    if suffix == ".xls":
        raise ConfigurationError(
            f"{file_path.name} is an old .xls workbook: save it as .xlsx (or .csv) "
            "and read that file."
        )
    if suffix not in _TEXT_SUFFIXES and sep is None:
        # pandas would read a .json or .parquet file as one odd CSV column.
        raise ConfigurationError(
            f"read_table reads .csv, .tsv, .txt and .xlsx files, not {suffix} "
            f"({file_path.name}). Read other formats with pandas (for example "
            "pd.read_json) and pass the DataFrame on; for delimited text under "
            "another name, pass sep=."
        )
    if sheet is not None:
        raise ConfigurationError(
            f"sheet={sheet!r} applies to .xlsx workbooks; {file_path.name} is a "
            "text file with a single table."
        )
    delimiter = sep or ("\t" if suffix in (".tsv", ".tab") else ",")
    return pd.read_csv(
        file_path, dtype=str, keep_default_na=False, sep=delimiter, encoding=encoding
    )


#: File name suffixes read as delimited text without sep=; "" is a file
#: without a suffix.
_TEXT_SUFFIXES = frozenset({".csv", ".tsv", ".tab", ".txt", ""})


def _number_text(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return _number_text(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def _zero_format(number_format: str) -> str | None:
    """Return the positive section of a format that pads with zeros, else None."""
    section = number_format.split(";")[0]
    if section.count("0") < 2 or not _ZERO_FORMAT.fullmatch(section):
        return None
    return section


def _apply_zero_format(value: int, section: str) -> str:
    """Write ``value`` the way Excel shows it with a format such as 000-00-0000."""
    placeholders = section.count("0") - sum(
        literal.count("0") for literal in re.findall(r'"[^"]*"|\\.', section)
    )
    digits = str(abs(value)).zfill(placeholders)
    overflow, digits = digits[: len(digits) - placeholders], digits[-placeholders:]
    shown = []
    position = 0
    for token in re.findall(r'"[^"]*"|\\.|.', section):
        if token == "0":
            shown.append(digits[position])
            position += 1
        elif token.startswith('"'):
            shown.append(token[1:-1])
        elif token.startswith("\\"):
            shown.append(token[1:])
        else:
            shown.append(token)
    text = "".join(shown)
    if overflow:
        first_zero = next(i for i, char in enumerate(text) if char.isdigit())
        text = text[:first_zero] + overflow + text[first_zero:]
    return ("-" if value < 0 else "") + text


def _read_xlsx(path: Path, sheet: str | int | None, excel_formats: str) -> pd.DataFrame:
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        if sheet is None:
            worksheet = workbook.worksheets[0]
        elif isinstance(sheet, int):
            worksheet = workbook.worksheets[sheet]
        else:
            worksheet = workbook[sheet]
        rows = [list(row) for row in worksheet.iter_rows()]
    except (KeyError, IndexError) as exc:
        raise ConfigurationError(
            f"No sheet {sheet!r} in {path.name}; the sheets are "
            f"{', '.join(workbook.sheetnames)}."
        ) from exc
    finally:
        workbook.close()
    rows = [row for row in rows if any(cell.value is not None for cell in row)]
    if not rows:
        return pd.DataFrame()
    header = _header_names([_cell_text(cell.value) for cell in rows[0]])
    records: list[list[str]] = []
    zero_formats: dict[int, dict[str, Any]] = {}
    for position, row in enumerate(rows[1:]):
        texts = []
        for index in range(len(header)):
            cell = row[index] if index < len(row) else None
            value = getattr(cell, "value", None)
            text = _cell_text(value)
            section = (
                _zero_format(cell.number_format)
                if isinstance(value, (int, float))
                and not isinstance(value, bool)
                and float(value).is_integer()
                else None
            )
            if section is not None and excel_formats != "ignore":
                shown = _apply_zero_format(int(value), section)
                if shown != text:
                    if excel_formats == "apply":
                        text = shown
                    else:
                        record = zero_formats.setdefault(
                            index,
                            {
                                "column": header[index],
                                "format": cell.number_format,
                                "row": position,
                                "value": text,
                                "shown": shown,
                                "count": 0,
                            },
                        )
                        record["count"] += 1
            texts.append(text)
        records.append(texts)
    frame = pd.DataFrame(records, columns=header, dtype=object)
    if zero_formats:
        frame.attrs[EXCEL_FORMATS_ATTR] = [
            zero_formats[i] for i in sorted(zero_formats)
        ]
    return frame


def _header_names(names: list[str]) -> list[str]:
    """Name blank headers ``Unnamed: N`` and number repeats ``name.1``, as pandas
    does."""
    result = []
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        name = name.strip() or f"Unnamed: {index}"
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        else:
            seen[name] = 0
        result.append(name)
    return result
