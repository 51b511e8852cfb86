"""Preflight: check every row before the first connection.

:func:`check_rows` returns the problems as a tidy DataFrame with one line per
problem and the columns ``row`` (index label, or None when a problem concerns
every row), ``column``, ``problem`` and ``value``, together with the rows that
the options say to skip. Checks on whole columns use pandas string methods and
only unusual cells go through the slower per-cell parsers: 100,000 rows took
0.44 s on a 2-core machine (``python -m benchmarks.validate_speed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import jinja2
import numpy as np
import pandas as pd

from .addresses import SIMPLE_ADDR_SPEC_PATTERN, parse_mailboxes
from .attachments import base64_size
from .capabilities import ServerCapabilities
from .cells import cell_is_blank
from .compose import AddressField, MessagePlan
from .errors import ConfigurationError, MessageError
from .readers import EXCEL_FORMATS_ATTR
from .headers import header_value_problem
from .sources import ValueSource
from .suggestions import close_names as _close_names
from .templates import field_reference
from .unsubscribe import check_unsubscribe_url

__all__ = [
    "DUPLICATE_POLICIES",
    "PROBLEM_COLUMNS",
    "Preflight",
    "check_rows",
    "find_problems",
    "index_problems",
]

PROBLEM_COLUMNS = ["row", "column", "problem", "value"]
DUPLICATE_POLICIES = ("report", "skip", "allow")

# Fields every template may use without a column of that name.
_BUILTIN_FIELDS = frozenset({"row"})
# Characters that make a header value worth a closer look: line breaks, control
# characters, and the start of an RFC 2047 encoded word.
_HEADER_SUSPECT = r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]|=\?"


@dataclass
class Preflight:
    """The outcome of preflight: problems, and rows to skip with the reason.

    ``skipped`` maps row positions (0-based) to the reason the row is not sent.
    """

    problems: pd.DataFrame
    skipped: dict[int, str] = field(default_factory=dict)


def find_problems(
    df: pd.DataFrame,
    plan: MessagePlan,
    *,
    allow_empty: bool | Iterable[str] = False,
    skip_empty: bool | Iterable[str] = (),
    duplicates: str = "report",
) -> pd.DataFrame:
    """Return every problem that would stop a row from being sent correctly."""
    return check_rows(
        df, plan, allow_empty=allow_empty, skip_empty=skip_empty, duplicates=duplicates
    ).problems


def check_rows(
    df: pd.DataFrame,
    plan: MessagePlan,
    *,
    allow_empty: bool | Iterable[str] = False,
    skip_empty: bool | Iterable[str] = (),
    duplicates: str = "report",
) -> Preflight:
    """Check every row; see the module docstring.

    Blank cells (None, NaN, NaT, or text that is empty after trimming) that a
    template uses are problems unless the column is in ``allow_empty`` (print
    nothing), ``plan.fill_empty`` (print a default) or ``skip_empty`` (skip the
    row). ``duplicates`` sets what happens when a To address already appears in an
    earlier row: "report" it as a problem, "skip" the later row, or "allow" it.
    Skipped rows are not checked further.
    """
    if duplicates not in DUPLICATE_POLICIES:
        raise ConfigurationError(
            f"Invalid duplicates={duplicates!r}: use 'report', 'skip' or 'allow'."
        )
    repeated_labels = index_problems(df)
    if len(repeated_labels):
        # Every other problem would name its row by an ambiguous label.
        return Preflight(repeated_labels)
    columns = [str(name) for name in df.columns]
    used = _used_columns(plan) & set(columns)
    skip_columns = _column_set(skip_empty, used)
    if allow_empty is True:
        # True allows every column that no other option handles.
        allowed = used - skip_columns - set(plan.fill_empty)
    else:
        allowed = _column_set(allow_empty, used)
    _check_empty_options(allowed, skip_columns, set(plan.fill_empty))

    problems: list[dict[str, Any]] = []
    problems += _missing_fields(plan, columns)
    # allow_empty=True names no column, so only a list of names is checked.
    for option, names in (
        ("allow_empty", allowed if allow_empty is not True else set()),
        ("skip_empty", skip_columns),
        ("fill_empty", plan.fill_empty),
    ):
        for name in sorted(set(names) - set(columns)):
            problems.append(
                _problem(
                    None,
                    name,
                    f"{option}= names {name!r}, which is not a column"
                    + _close_names(name, columns),
                    None,
                )
            )
    skipped = _skip_empty_rows(df, sorted(skip_columns & set(columns)))
    if duplicates != "allow":
        found, later = _duplicate_recipients(df, plan, skipped, duplicates)
        problems += found
        skipped.update(later)

    keep = np.ones(len(df), dtype=bool)
    keep[list(skipped)] = False
    rows = df[keep] if len(skipped) else df
    for address_field in plan.address_fields:
        problems += _address_problems(rows, plan, address_field, columns)
    template_columns = _template_columns(plan) & set(columns)
    exempt = allowed | skip_columns | set(plan.fill_empty)
    for column in sorted(template_columns - exempt):
        problems += _empty_cells(rows[column], column)
    for column in sorted(plan.header_fields & set(columns)):
        problems += _header_values(rows[column], column)
    if plan.attachments is not None or plan.inline_images:
        problems += _file_problems(rows, plan, columns)
    problems += _unsubscribe_url_problems(rows, plan, columns)
    reported = {problem["row"] for problem in problems}
    problems += _rendered_head_problems(rows, plan, columns, reported)
    problems += _excel_formats(df, used)
    return Preflight(
        pd.DataFrame(problems, columns=PROBLEM_COLUMNS, dtype=object), skipped
    )


# -- options -------------------------------------------------------------------


def _used_columns(plan: MessagePlan) -> set[str]:
    used = set(_template_columns(plan))
    for source in plan.value_sources:
        used |= source.fields
    return used


def _template_columns(plan: MessagePlan) -> set[str]:
    return {name for template in plan.templates for name in template.fields}


def _column_set(option: bool | Iterable[str] | None, used: set[str]) -> set[str]:
    if option is True:
        return set(used)
    if not option:
        return set()
    if isinstance(option, str):
        return {option}
    return {str(name) for name in option}


def _check_empty_options(
    allowed: set[str], skipped: set[str], filled: set[str]
) -> None:
    for first, second, names in (
        ("allow_empty", "skip_empty", allowed & skipped),
        ("allow_empty", "fill_empty", allowed & filled),
        ("skip_empty", "fill_empty", skipped & filled),
    ):
        if names:
            raise ConfigurationError(
                f"The column(s) {', '.join(sorted(names))} are in both {first}= and "
                f"{second}=: choose one way to handle their blank cells."
            )


# -- helpers -------------------------------------------------------------------


def _problem(row: Any, column: str, problem: str, value: Any) -> dict[str, Any]:
    return {"row": row, "column": column, "problem": problem, "value": value}


def _blank_mask(cells: pd.Series) -> np.ndarray:
    """Vectorised :func:`cell_is_blank`."""
    mask = cells.isna().to_numpy(dtype=bool, copy=True)
    if cells.dtype == object or isinstance(cells.dtype, pd.StringDtype):
        text = cells.astype("string").str.strip()
        mask |= text.eq("").fillna(False).to_numpy(dtype=bool)
    return mask


def _row_records(rows: pd.DataFrame) -> Iterable[tuple[Any, dict[str, Any]]]:
    columns = {str(name): rows[name].tolist() for name in rows.columns}
    for position, label in enumerate(rows.index):
        yield label, {name: values[position] for name, values in columns.items()}


# -- checks --------------------------------------------------------------------


def index_problems(df: pd.DataFrame) -> pd.DataFrame:
    """Return the problems DataFrame with one line when the index of ``df`` has a
    label more than once, else an empty one."""
    if df.index.is_unique:
        return pd.DataFrame([], columns=PROBLEM_COLUMNS, dtype=object)
    repeated = df.index.duplicated(keep=False)
    positions = np.flatnonzero(repeated)
    labels = [_plain(label) for label in df.index[repeated].tolist()]
    label = labels[0]
    label_positions = [
        int(position) for position, other in zip(positions, labels) if other == label
    ]
    listed_positions = ", ".join(str(position) for position in label_positions[:5])
    count = df.index[repeated].nunique()
    problem = _problem(
        None,
        "index",
        f"the DataFrame index is not unique: {count} label(s) appear more than "
        f"once, such as {label!r} at positions {listed_positions} (counted from "
        "0). Results, problems and previews name rows by index label, so call "
        "df.reset_index(drop=True) first, or df.reset_index() to keep the old "
        "labels as a column",
        label,
    )
    return pd.DataFrame([problem], columns=PROBLEM_COLUMNS, dtype=object)


def _plain(label: Any) -> Any:
    """Return ``label`` with NumPy scalars as Python ones, so that it prints as
    the user wrote it."""
    if isinstance(label, tuple):
        return tuple(_plain(part) for part in label)
    if isinstance(label, np.generic):
        return label.item()
    return label


def _missing_fields(plan: MessagePlan, columns: list[str]) -> list[dict[str, Any]]:
    found = []
    known = set(columns) | _BUILTIN_FIELDS
    for template in plan.templates:
        for name in sorted(template.fields - known):
            found.append(
                _problem(
                    None,
                    name,
                    f"the {template.name} template uses {field_reference(name)}, "
                    "which is not a column" + _close_names(name, columns),
                    None,
                )
            )
    for source in plan.value_sources:
        if source.kind == "column" and source.column not in columns:
            what = (
                "the recipient column"
                if source.option == "to"
                else (f"the {source.option} column")
            )
            found.append(
                _problem(
                    None,
                    source.column,
                    f"{what} is missing" + _close_names(source.column, columns),
                    None,
                )
            )
    return found


def _skip_empty_rows(df: pd.DataFrame, columns: list[str]) -> dict[int, str]:
    skipped: dict[int, str] = {}
    for column in columns:
        for position in np.flatnonzero(_blank_mask(df[column])):
            skipped.setdefault(
                int(position), f"the {column!r} cell is empty (skip_empty)"
            )
    return skipped


def _to_addresses(df: pd.DataFrame, plan: MessagePlan) -> list[list[str]] | None:
    """Return the lower-cased To addr-specs of each row, or None when To is fixed.

    Cells that hold one plain addr-spec are handled for the whole column at
    once; only the others are parsed one by one.
    """
    source = plan.to.source
    if source.kind == "fixed" or (
        source.kind == "column" and source.column not in df.columns
    ):
        return None
    if source.kind == "column":
        text = df[source.column].astype("string").str.strip()
        simple = text.str.fullmatch(SIMPLE_ADDR_SPEC_PATTERN).fillna(False)
        simple = simple.to_numpy(dtype=bool)
        lowered = text.str.lower().tolist()
        cells = df[source.column].tolist()
        return [
            [lowered[i]] if simple[i] else _parsed_addresses(cells[i])
            for i in range(len(cells))
        ]
    addresses = []
    for _, values in _row_records(df):
        values = plan.prepare_row(values)
        try:
            cell = source.value_for(values, plan.context(values))
        except Exception:  # noqa: BLE001 - reported by the address checks
            cell = None
        addresses.append(_parsed_addresses(cell))
    return addresses


def _parsed_addresses(cell: Any) -> list[str]:
    if cell is None or (not isinstance(cell, (list, tuple)) and cell_is_blank(cell)):
        return []
    try:
        mailboxes = parse_mailboxes(cell)
    except (ValueError, TypeError):
        return []
    return list(dict.fromkeys(item.addr_spec.lower() for item in mailboxes))


def _duplicate_recipients(
    df: pd.DataFrame, plan: MessagePlan, skipped: dict[int, str], policy: str
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    addresses = _to_addresses(df, plan)
    if addresses is None:
        return [], {}
    labels = df.index.tolist()
    first_row: dict[str, int] = {}
    problems = []
    later: dict[int, str] = {}
    for position, found in enumerate(addresses):
        if position in skipped:
            continue
        for address in found:
            if address not in first_row:
                first_row[address] = position
                continue
            earlier = labels[first_row[address]]
            if policy == "skip":
                later.setdefault(
                    position,
                    f"{address} already receives row {earlier!r} (duplicates='skip')",
                )
            else:
                problems.append(
                    _problem(
                        labels[position],
                        plan.to.source.column or "to",
                        f"{address} also receives row {earlier!r}; pass "
                        "duplicates='skip' to send only the first, or "
                        "duplicates='allow' to send both",
                        address,
                    )
                )
    return problems, later


def _address_problems(
    rows: pd.DataFrame,
    plan: MessagePlan,
    address_field: AddressField,
    columns: list[str],
) -> list[dict[str, Any]]:
    source = address_field.source
    is_to = address_field.option == "to"
    if source.kind == "fixed":
        return _fixed_address_problems(address_field)
    if source.kind == "column":
        if source.column not in columns:
            return []
        cells = rows[source.column]
        blank = _blank_mask(cells)
        text = cells.astype("string").str.strip()
        simple = text.str.fullmatch(SIMPLE_ADDR_SPEC_PATTERN).fillna(False)
        check = ~blank & ~simple.to_numpy(dtype=bool)
    else:
        check = np.ones(len(rows), dtype=bool)
        blank = np.zeros(len(rows), dtype=bool)
    found = []
    column = source.column or address_field.option
    if is_to:
        for label, value in zip(rows.index[blank], _values(rows, source, blank)):
            found.append(
                _problem(label, column, "the recipient address is empty", value)
            )
    if not check.any():
        return found
    subset = rows[check]
    for label, values in _row_records(subset):
        cell = None
        values = plan.prepare_row(values)
        try:
            cell = source.value_for(values, plan.context(values))
            names = None
            if address_field.names is not None:
                name_cell = address_field.names.value_for(values, plan.context(values))
                names = None if cell_is_blank(name_cell) else str(name_cell)
            mailboxes = parse_mailboxes(cell, names)
        except ValueError as exc:
            found.append(_problem(label, column, str(exc), cell))
            continue
        except Exception as exc:  # noqa: BLE001 - a template that fails on this row
            found.append(
                _problem(label, column, f"{source.describe()} failed: {exc}", cell)
            )
            continue
        if not mailboxes and is_to:
            found.append(_problem(label, column, "the cell holds no address", cell))
    return found


def _values(rows: pd.DataFrame, source: ValueSource, mask: np.ndarray) -> list[Any]:
    if source.kind == "column" and mask.any():
        return rows[source.column][mask].tolist()
    return [None] * int(mask.sum())


def _fixed_address_problems(address_field: AddressField) -> list[dict[str, Any]]:
    try:
        mailboxes = parse_mailboxes(address_field.source.value)
    except ValueError as exc:
        return [
            _problem(None, address_field.option, str(exc), address_field.source.value)
        ]
    if not mailboxes and address_field.option == "to":
        return [
            _problem(None, "to", "to= holds no address", address_field.source.value)
        ]
    return []


def _empty_cells(cells: pd.Series, column: str) -> list[dict[str, Any]]:
    mask = _blank_mask(cells)
    return [
        _problem(
            label,
            column,
            "the cell is empty but a template uses it; fill it, or pass "
            f"fill_empty={{{column!r}: ...}} (a default), skip_empty=[{column!r}] "
            f"(skip the row) or allow_empty=[{column!r}] (print nothing)",
            value,
        )
        for label, value in zip(cells.index[mask], cells[mask].tolist())
    ]


def _header_values(cells: pd.Series, column: str) -> list[dict[str, Any]]:
    text = cells.astype("string")
    mask = (
        text.str.contains(_HEADER_SUSPECT, regex=True)
        .fillna(False)
        .to_numpy(dtype=bool)
    )
    found = []
    for label, value in zip(cells.index[mask], cells[mask].tolist()):
        problem = header_value_problem(str(value))
        if problem:
            found.append(_problem(label, column, problem, value))
    return found


def _file_problems(
    rows: pd.DataFrame, plan: MessagePlan, columns: list[str]
) -> list[dict[str, Any]]:
    if any(
        source.kind == "column" and source.column not in columns
        for source in plan.value_sources
    ):
        return []
    column = (
        plan.attachments.column or "attachments"
        if plan.attachments is not None
        else "inline_images"
    )
    sources = _file_sources(plan)
    cache: dict[Any, tuple[str | None, int]] = {}
    found = []
    for label, values in _row_records(rows):
        values = plan.prepare_row(values)
        context = plan.context(values)
        try:
            key = tuple(
                _hashable(source.value_for(values, context)) for source in sources
            )
        except Exception as exc:  # noqa: BLE001 - a template that fails on this row
            found.append(
                _problem(
                    label, column, f"the file paths cannot be rendered: {exc}", None
                )
            )
            continue
        if key not in cache:
            try:
                files = plan.attachment_files(values, context) + plan.inline_files(
                    values, context
                )
                cache[key] = (None, sum(base64_size(item.size) for item in files))
            except MessageError as exc:
                cache[key] = (str(exc), 0)
        problem, encoded = cache[key]
        if problem:
            found.append(_problem(label, column, problem, key[0] if key else None))
        elif plan.max_message_size and encoded > plan.max_message_size:
            found.append(
                _problem(
                    label,
                    column,
                    f"the attachments take {encoded} bytes in base64, over "
                    f"max_message_size={plan.max_message_size}",
                    key[0] if key else None,
                )
            )
    return found


def _file_sources(plan: MessagePlan) -> list[ValueSource]:
    sources = [plan.attachments] if plan.attachments is not None else []
    if isinstance(plan.attachment_types, ValueSource):
        sources.append(plan.attachment_types)
    return sources + [image.source for image in plan.inline_images]


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    return value


def _unsubscribe_url_problems(
    rows: pd.DataFrame, plan: MessagePlan, columns: list[str]
) -> list[dict[str, Any]]:
    source = plan.unsubscribe.url if plan.unsubscribe is not None else None
    if source is None or source.kind != "column" or source.column not in columns:
        return []
    cells = rows[source.column]
    found = []
    checked = cells[~_blank_mask(cells)]
    for label, value in zip(checked.index, checked.tolist()):
        problem = check_unsubscribe_url(str(value).strip())
        if problem:
            found.append(_problem(label, source.column, problem, value))
    return found


def _head_templates(plan: MessagePlan) -> list[ValueSource]:
    """Template-valued options that go into a header or the envelope."""
    sources = []
    for address_field in plan.address_fields:
        sources.append(address_field.source)
        if address_field.names is not None:
            sources.append(address_field.names)
    if plan.unsubscribe is not None:
        sources += plan.unsubscribe.sources
    return [source for source in sources if source.kind == "template"]


def _rendered_head_problems(
    rows: pd.DataFrame, plan: MessagePlan, columns: list[str], reported: set[Any]
) -> list[dict[str, Any]]:
    """Render the headers of every row when an address, name or unsubscribe
    option is a template, because its output cannot be checked cell by cell.
    Rows in ``reported`` already have a problem and are not rendered.

    The check assumes a server that offers SMTPUTF8; whether a non-ASCII local
    part can be sent is decided per connection when sending.
    """
    templates = _head_templates(plan)
    if not templates or set(_template_columns(plan)) - set(columns):
        return []
    option = ", ".join(sorted({f"{source.option}=" for source in templates}))
    checked = plan.with_server(ServerCapabilities(smtputf8=True))
    found = []
    for label, row in _row_records(rows):
        if label in reported:
            continue
        try:
            checked.render_head(row)
        except (MessageError, ValueError, jinja2.TemplateError) as exc:
            found.append(_problem(label, option, str(exc), None))
    return found


def _excel_formats(df: pd.DataFrame, used: set[str]) -> list[dict[str, Any]]:
    found = []
    for record in df.attrs.get(EXCEL_FORMATS_ATTR, []):
        if record["column"] not in used:
            continue
        found.append(
            _problem(
                record["row"],
                record["column"],
                f"Excel shows {record['count']} number(s) in this column with the "
                f"format {record['format']!r}, for example {record['value']} as "
                f"{record['shown']}, but the file stores the number {record['value']}; "
                "read it with read_table(..., excel_formats='apply') to use the text "
                "Excel shows, or 'ignore' to keep the stored number",
                record["value"],
            )
        )
    return found
