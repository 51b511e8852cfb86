"""Preflight: check every row before the first connection.

:func:`find_problems` returns a tidy DataFrame with one line per problem and the
columns ``row`` (index label, or None when a problem concerns every row),
``column``, ``problem`` and ``value``.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

import pandas as pd

from .addresses import check_addr_spec, split_addresses
from .compose import MessagePlan
from .templates import cell_is_empty

__all__ = ["PROBLEM_COLUMNS", "find_problems"]

PROBLEM_COLUMNS = ["row", "column", "problem", "value"]

# Fields every template may use without a column of that name.
_BUILTIN_FIELDS = frozenset({"row"})


def find_problems(
    df: pd.DataFrame,
    plan: MessagePlan,
    *,
    allow_empty: bool | Iterable[str] = False,
) -> pd.DataFrame:
    """Return every problem that would stop a row from being sent correctly.

    ``allow_empty`` lets blank cells print as nothing: True for every column, or
    the names of the columns where a blank cell is fine.
    """
    problems: list[dict[str, Any]] = []
    columns = [str(name) for name in df.columns]
    problems += _missing_fields(plan, columns)
    if plan.to not in df.columns:
        problems.append(
            _problem(
                None,
                plan.to,
                "the recipient column is missing" + _close_names(plan.to, columns),
                None,
            )
        )
    else:
        problems += _recipient_problems(df[plan.to], plan.to)
    if allow_empty is True:
        allowed = set(columns)
    else:
        allowed = set(allow_empty or ())
    used = sorted(
        {name for template in plan.templates for name in template.fields}
        & set(columns)
    )
    for column in used:
        if column == plan.to or column in allowed:
            continue
        problems += _empty_cells(df[column], column)
    header_fields = {name for name in plan.subject.fields}
    for template in plan.headers.values():
        header_fields |= template.fields
    for column in sorted(header_fields & set(columns)):
        problems += _line_breaks(df[column], column)
    return pd.DataFrame(problems, columns=PROBLEM_COLUMNS)


def _problem(row: Any, column: str, problem: str, value: Any) -> dict[str, Any]:
    return {"row": row, "column": column, "problem": problem, "value": value}


def _close_names(name: str, columns: list[str]) -> str:
    def squash(text: str) -> str:
        return "".join(ch for ch in text.lower() if ch.isalnum())

    by_squashed = {squash(column): column for column in columns}
    close = [by_squashed[squash(name)]] if squash(name) in by_squashed else []
    close += difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
    close = list(dict.fromkeys(close))
    if not close:
        return f"; the columns are {', '.join(columns[:12])}"
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"


def _missing_fields(plan: MessagePlan, columns: list[str]) -> list[dict[str, Any]]:
    found = []
    known = set(columns) | _BUILTIN_FIELDS
    for template in plan.templates:
        for name in sorted(template.fields - known):
            found.append(
                _problem(
                    None,
                    name,
                    f"the {template.name} template uses {{{{ {name} }}}}, which is not a "
                    "column" + _close_names(name, columns),
                    None,
                )
            )
    return found


def _recipient_problems(cells: pd.Series, column: str) -> list[dict[str, Any]]:
    found = []
    for label, value in cells.items():
        if cell_is_empty(value) or not str(value).strip():
            found.append(_problem(label, column, "the recipient address is empty", value))
            continue
        addresses = split_addresses(str(value))
        if not addresses:
            found.append(_problem(label, column, "the cell holds no address", value))
        for address in addresses:
            reason = check_addr_spec(address)
            if reason:
                found.append(
                    _problem(label, column, f"{address!r} is invalid: {reason}", value)
                )
    return found


def _empty_cells(cells: pd.Series, column: str) -> list[dict[str, Any]]:
    mask = cells.isna()
    return [
        _problem(
            label,
            column,
            "the cell is empty but a template uses it; fill it, or pass "
            f"allow_empty=[{column!r}]",
            cells[label] if cells.index.is_unique else None,
        )
        for label in cells.index[mask.to_numpy()]
    ]


def _line_breaks(cells: pd.Series, column: str) -> list[dict[str, Any]]:
    text = cells.astype("string")
    mask = text.str.contains(r"[\r\n]", regex=True, na=False).to_numpy(dtype=bool)
    return [
        _problem(
            label,
            column,
            "the value contains a line break (CR or LF), which would end the header "
            "it is used in",
            value,
        )
        for label, value in zip(cells.index[mask], cells[mask])
    ]
