"""The results DataFrame: one row per input row, saying what happened to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Hashable, Sequence

import pandas as pd

__all__ = ["RESULT_COLUMNS", "STATUSES", "RowResult", "build_results", "summary"]

STATUSES = ("sent", "failed", "deferred", "partial", "unknown", "skipped")

RESULT_COLUMNS = [
    "to",
    "status",
    "smtp_code",
    "smtp_reply",
    "error",
    "message_id",
    "attempts",
    "started_at",
    "finished_at",
    "duration_s",
    "refused",
    "attachments",
]


@dataclass
class RowResult:
    """The outcome of one input row; ``error`` is empty only when status is sent."""

    label: Hashable
    to: str
    status: str
    smtp_code: int | None = None
    smtp_reply: str = ""
    error: str = ""
    message_id: str = ""
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    attachments: str = ""

    def as_record(self) -> dict[str, Any]:
        duration = None
        if self.started_at is not None and self.finished_at is not None:
            duration = (self.finished_at - self.started_at).total_seconds()
        return {
            "to": self.to,
            "status": self.status,
            "smtp_code": self.smtp_code,
            "smtp_reply": self.smtp_reply,
            "error": self.error,
            "message_id": self.message_id,
            "attempts": self.attempts,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": duration,
            "refused": ", ".join(
                f"{address} ({code} {text})" for address, (code, text) in self.refused.items()
            ),
            "attachments": self.attachments,
        }


def build_results(
    index: pd.Index, rows: Sequence[RowResult], attrs: dict[str, Any] | None = None
) -> pd.DataFrame:
    """Assemble the results DataFrame with the same index as the input."""
    frame = pd.DataFrame([row.as_record() for row in rows], columns=RESULT_COLUMNS)
    frame.index = index
    frame["smtp_code"] = frame["smtp_code"].astype("Int64")
    frame["attempts"] = frame["attempts"].astype("int64")
    frame["status"] = pd.Categorical(frame["status"], categories=STATUSES)
    for column in ("started_at", "finished_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame.attrs.update(attrs or {})
    return frame


def summary(results: pd.DataFrame) -> dict[str, Any]:
    """Return counts per status, timing and throughput of a results DataFrame.

    ``elapsed_s`` is the wall time of the run when the results carry it (as
    ``send_bulk`` results do), else the span from the first start to the last
    finish. ``messages_per_second`` counts sent and partial rows. Results read
    back from a CSV file work too: the time columns are parsed again.
    """
    required = ("status", "started_at", "finished_at", "duration_s")
    missing = [column for column in required if column not in results]
    if missing:
        raise ValueError(
            f"Not a mailkit results DataFrame: the column(s) {', '.join(missing)} are "
            "missing."
        )
    counts = results["status"].astype(str).value_counts()
    by_status = {status: int(counts.get(status, 0)) for status in STATUSES}
    elapsed = results.attrs.get("elapsed_s")
    if elapsed is None:
        started = pd.to_datetime(results["started_at"], utc=True, errors="coerce").min()
        finished = pd.to_datetime(results["finished_at"], utc=True, errors="coerce").max()
        both = pd.notna(started) and pd.notna(finished)
        elapsed = (finished - started).total_seconds() if both else 0.0
    delivered = by_status["sent"] + by_status["partial"]
    durations = pd.to_numeric(results["duration_s"], errors="coerce").dropna()
    return {
        "total": int(len(results)),
        **by_status,
        "elapsed_s": float(elapsed),
        "messages_per_second": delivered / elapsed if elapsed > 0 else 0.0,
        "mean_duration_s": float(durations.mean()) if len(durations) else 0.0,
        "max_duration_s": float(durations.max()) if len(durations) else 0.0,
    }
