"""Resuming a batch from its journal: row keys, content hashes and what to send.

A row's key identifies it across runs, whatever its position in the DataFrame:
the value of the ``key=`` column, or else the row's envelope recipients. Before a
run sends anything, :func:`plan_resume` looks every key up in the journal and
decides per row: send it, skip it because it was sent, or report it as
``unknown`` because an earlier run may have delivered it.
"""

from __future__ import annotations

import hashlib
import logging
import numbers
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Hashable

import pandas as pd

from .compose import MessagePlan, Outgoing
from .journal import Journal, JournalRecord
from .results import RowResult
from .suggestions import close_names
from .templates import cell_is_empty
from .transport import SKIPPED, UNKNOWN

__all__ = [
    "ResumePlan",
    "content_hash",
    "key_problems",
    "key_spec",
    "key_text",
    "plan_resume",
    "row_keys",
]

logger = logging.getLogger(__name__)

# Statuses after which a row is not sent again: its message was delivered, or
# may have been.
_DELIVERED = ("sent", "partial")
_MAYBE_DELIVERED = (UNKNOWN, "sending")

# How many row labels a log line lists before it ends with "and N more".
_LOG_LABELS = 5


def key_spec(key: str | None) -> str:
    """Return how the journal records the row identity chosen with ``key=``."""
    return "recipients" if key is None else f"column:{key}"


def key_text(value: Any) -> str:
    """Return the journal key for one cell of the ``key=`` column.

    Integers, floats without a fraction and their text are the same key, so a
    column read once as ``int`` and once as ``float`` or ``str`` (as pandas does
    when a blank cell appears, or with ``dtype=str``) keeps its keys. Leading
    zeros of numeric text are dropped for the same reason ("007" is 7), so two
    ids that differ only there show as duplicate keys in the preflight check.
    """
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d+(\.0*)?", text):
        return str(int(text.partition(".")[0]))
    return text


def envelope_keys(df: pd.DataFrame, plan: MessagePlan) -> list[str]:
    """Return each row's envelope recipients (To, Cc and Bcc) as its key.

    The addr-specs are lowercased and sorted, so display names, case and order
    do not change the key. A value that does not parse (which preflight
    reports) gives its text instead.
    """
    rows = _RowReader(df)
    fields = [field for field in (plan.to, plan.cc, plan.bcc) if field is not None]
    keys = []
    for position in range(len(df)):
        values = plan.prepare_row(rows.row(position))
        context = plan.context(values)
        addresses: set[str] = set()
        for field in fields:
            try:
                mailboxes = field.mailboxes(values, context)
            except Exception:  # noqa: BLE001 - preflight reports the bad value
                addresses.add(str(field.source.value_for(values, context)).lower())
                continue
            addresses.update(mailbox.addr_spec.lower() for mailbox in mailboxes)
        keys.append(", ".join(sorted(addresses)))
    return keys


def row_keys(df: pd.DataFrame, plan: MessagePlan, key: Hashable | None) -> list[str]:
    """Return the key of every row of ``df``, in order."""
    if key is None:
        return envelope_keys(df, plan)
    return [key_text(cell) for cell in df[key].tolist()]


def key_problems(
    df: pd.DataFrame, plan: MessagePlan, key: str | None
) -> list[dict[str, Any]]:
    """Return preflight problems of the row keys: a missing column, empty or
    duplicate keys. Rows with the same key would share one journal record, so
    the second of them would never be sent."""
    column = (plan.to_column or "to") if key is None else key
    if key is None:
        if plan.to_column is not None and plan.to_column not in df.columns:
            # The general checks report a missing recipient column.
            return []
        cells = envelope_keys(df, plan)
    elif key in df.columns:
        cells = df[key].tolist()
    else:
        return [
            _problem(
                None,
                key,
                f"the key column {key!r} is missing; key= must name a column that "
                "identifies each row"
                + close_names(str(key), [str(name) for name in df.columns]),
                None,
            )
        ]
    problems = []
    by_key: dict[str, list[Hashable]] = defaultdict(list)
    for label, cell in zip(df.index, cells):
        if key is not None and (cell_is_empty(cell) or not str(cell).strip()):
            problems.append(
                _problem(label, key, "the key is empty; every row needs a key", cell)
            )
            continue
        text = cell if key is None else key_text(cell)
        if text:
            by_key[text].append(label)
    for text, labels in by_key.items():
        if len(labels) < 2:
            continue
        for label in labels:
            others = ", ".join(repr(other) for other in labels if other != label)
            problems.append(
                _problem(label, column, _duplicate_message(key, others), text)
            )
    return problems


def _duplicate_message(key: str | None, others: str) -> str:
    if key is None:
        return (
            f"row(s) {others} have the same recipients, and the journal identifies "
            "rows by their recipients; pass key= with a column that identifies "
            "each row"
        )
    return f"row(s) {others} have the same key; each row needs its own key"


def _problem(row: Any, column: str, problem: str, value: Any) -> dict[str, Any]:
    return {"row": row, "column": column, "problem": problem, "value": value}


# The headers that change each time the same row is composed, and the MIME
# boundaries, which the email package draws at random.
_VOLATILE_HEADER = re.compile(
    rb"(?im)^(?:date|message-id|dkim-signature):[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*"
)
_BOUNDARY = re.compile(rb'(?i)\bboundary="?([^";\r\n]+)"?')


def content_hash(outgoing: Outgoing) -> str:
    """Return a SHA-256 hex digest of the message's envelope and content.

    The Date, Message-ID and DKIM-Signature headers of the top-level header
    block and the MIME boundary strings are left out, so composing the same row
    twice gives the same hash and any change in what the recipient would read
    gives another.
    """
    data = outgoing.data
    head, separator, body = data.partition(b"\r\n\r\n")
    data = _VOLATILE_HEADER.sub(b"", head + b"\r\n") + separator + body
    for number, boundary in enumerate(dict.fromkeys(_BOUNDARY.findall(data))):
        data = data.replace(boundary, b"mailkit-boundary-%d" % number)
    digest = hashlib.sha256()
    digest.update(outgoing.envelope_from.encode("utf-8") + b"\0")
    digest.update(",".join(outgoing.recipients).encode("utf-8") + b"\0")
    digest.update(data)
    return digest.hexdigest()


@dataclass
class ResumePlan:
    """What one run does with each row, decided from the journal.

    ``positions`` lists the rows to send, ``prefilled`` contains the results of
    the rows that are not sent, and ``message_ids`` the Message-IDs to reuse.
    """

    keys: list[str]
    positions: list[int]
    prefilled: dict[int, RowResult] = field(default_factory=dict)
    message_ids: dict[int, str] = field(default_factory=dict)
    previous_hashes: dict[int, str] = field(default_factory=dict)


def plan_resume(
    journal: Journal,
    df: pd.DataFrame,
    plan: MessagePlan,
    keys: list[str],
    recipients: list[str],
    *,
    retry_unknown: bool,
) -> ResumePlan:
    """Register every row in the journal and decide what this run sends.

    ``keys`` and ``recipients`` hold each row's key and recipients, in order.

    Rows the journal records as ``sent`` or ``partial`` are skipped. Rows whose
    outcome is unknown are reported as ``unknown``, unless ``retry_unknown`` is
    true: then they are sent again with their recorded Message-ID. A
    row that is not sent again although its message changed since the journal
    recorded it says so in its error, and the run logs a warning.
    """
    labels = list(df.index)
    journal.register(zip(keys, labels, recipients))
    records = journal.records(keys)
    resume = ResumePlan(keys=keys, positions=[])
    rows = _RowReader(df)
    changed: list[Hashable] = []
    for position, key in enumerate(keys):
        record = records.get(key)
        status = record.status if record is not None else None
        if record is None or status not in _DELIVERED + _MAYBE_DELIVERED:
            resume.positions.append(position)
            if record is not None and record.content_hash:
                resume.previous_hashes[position] = record.content_hash
            continue
        difference = _content_change(plan, rows, position, record)
        if difference:
            changed.append(labels[position])
        if status in _DELIVERED:
            result = _already_sent(labels[position], record, difference)
            resume.prefilled[position] = result
        elif retry_unknown and not difference:
            resume.positions.append(position)
            resume.message_ids[position] = record.message_id or ""
        else:
            result = _still_unknown(labels[position], record, difference, retry_unknown)
            resume.prefilled[position] = result
    resume.positions.sort()
    _log_plan(journal, resume, changed)
    return resume


class _RowReader:
    def __init__(self, df: pd.DataFrame) -> None:
        self._columns = {str(name): df[name].tolist() for name in df.columns}

    def row(self, position: int) -> dict[str, Any]:
        return {name: values[position] for name, values in self._columns.items()}


def _content_change(
    plan: MessagePlan, rows: _RowReader, position: int, record: JournalRecord
) -> str:
    """Return why the row's message differs from the recorded one, or ""."""
    if not record.content_hash:
        return ""
    try:
        outgoing = plan.compose(
            position, rows.row(position), message_id=record.message_id or None
        )
    except Exception as exc:  # noqa: BLE001 - any template or data error
        return f"the row can no longer be built ({type(exc).__name__}: {exc})"
    if content_hash(outgoing) != record.content_hash:
        return "the row's data or the templates were edited"
    return ""


def _when(record: JournalRecord) -> str:
    return record.finished_at or record.sending_at or "an earlier run"


def _already_sent(label: Hashable, record: JournalRecord, difference: str) -> RowResult:
    error = (
        f"Not sent again: the journal records it as {record.status} on "
        f"{_when(record)} with Message-ID {record.message_id}."
    )
    if difference:
        error += (
            f" Its message changed since the journal recorded it: {difference}. Use "
            "a new journal file to send the new version."
        )
    return RowResult(
        label=label,
        to=record.recipients,
        status=SKIPPED,
        error=error,
        message_id=record.message_id or "",
    )


def _still_unknown(
    label: Hashable, record: JournalRecord, difference: str, retry_unknown: bool
) -> RowResult:
    error = (
        f"Not sent again: an earlier run may have delivered it ({record.error}) "
        f"and its Message-ID is {record.message_id}."
    )
    if retry_unknown:
        error += (
            " retry_unknown=True does not send it, because its message changed "
            f"since the journal recorded it ({difference}), and the same Message-ID "
            "would then name another message."
        )
    else:
        error += " Pass retry_unknown=True to send it again with that Message-ID."
        if difference:
            error += (
                " Its message changed since the journal recorded it: "
                f"{difference}."
            )
    return RowResult(
        label=label,
        to=record.recipients,
        status=UNKNOWN,
        error=error,
        message_id=record.message_id or "",
    )


def _log_plan(journal: Journal, resume: ResumePlan, changed: list[Hashable]) -> None:
    statuses = pd.Series([result.status for result in resume.prefilled.values()])
    counts = statuses.value_counts()
    if len(resume.prefilled):
        logger.info(
            "journal %s: %d row(s) to send, %d already sent, %d unknown",
            journal.path,
            len(resume.positions),
            int(counts.get(SKIPPED, 0)),
            int(counts.get(UNKNOWN, 0)),
        )
    if changed:
        shown = ", ".join(repr(label) for label in changed[:_LOG_LABELS])
        more = len(changed) - _LOG_LABELS
        if more > 0:
            shown += f" and {more} more"
        logger.warning(
            "%d row(s) changed since the journal %s recorded them as sent or "
            "unknown, and were not sent again: %s",
            len(changed),
            journal.path,
            shown,
        )
