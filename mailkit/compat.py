"""An API shaped like a plain thread-pool sender script, running on mailkit's engine.

For code written against a class with ``send_bulk_emails_concurrent`` and
``get_summary``: the calls keep their shape, while the sending gains pooled
connections, preflight and per-row outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Sequence

import pandas as pd

from .api import send_bulk
from .config import SMTPConfig

__all__ = ["EmailSendResult", "EmailSender"]


@dataclass(frozen=True)
class EmailSendResult:
    """The outcome for one recipient."""

    recipient: str
    success: bool
    error: str | None = None
    smtp_code: int | None = None
    status: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class EmailSender:
    """Send one subject and body to a list of addresses.

    ``smtp`` and ``sender`` are as in :func:`mailkit.send_bulk`; the subject and
    body are Jinja2 templates that can use ``{{ email }}``.
    """

    def __init__(
        self, smtp: str | SMTPConfig | None = None, *, sender: str, **options: Any
    ) -> None:
        self.smtp = smtp
        self.sender = sender
        self.options = options

    def __repr__(self) -> str:
        return f"EmailSender(smtp={self.smtp!r}, sender={self.sender!r})"

    def send_bulk_emails_concurrent(
        self,
        recipient_emails: Sequence[str],
        subject: str,
        body: str,
        max_workers: int = 10,
        progress_callback: Callable[[int, int, EmailSendResult], None] | None = None,
    ) -> list[EmailSendResult]:
        """Send to every address in instant mode; one result per address, in order."""
        df = pd.DataFrame({"email": list(recipient_emails)})

        def report(done: int, total: int, row: dict[str, Any]) -> None:
            if progress_callback is not None:
                progress_callback(done, total, _to_result(row))

        options = {"progress": False, **self.options}
        results = send_bulk(
            df,
            subject=subject,
            body=body,
            sender=self.sender,
            smtp=self.smtp,
            mode="instant",
            max_workers=max_workers,
            progress_callback=report,
            **options,
        )
        return [_to_result(row) for row in results.to_dict("records")]

    def get_summary(self, results: Sequence[EmailSendResult]) -> dict[str, Any]:
        """Return total, successful and failed counts, the success rate and timing.

        ``elapsed_s`` spans from the first start to the last finish among
        ``results``; ``messages_per_second`` counts successful messages only.
        """
        total = len(results)
        successful = sum(1 for result in results if result.success)
        starts = [r.started_at for r in results if r.started_at is not None]
        ends = [r.finished_at for r in results if r.finished_at is not None]
        elapsed = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
        durations = [r.duration_s for r in results if r.duration_s is not None]
        return {
            "total": total,
            "successful": successful,
            "failed": total - successful,
            "success_rate": successful / total if total else 0.0,
            "elapsed_s": elapsed,
            "messages_per_second": successful / elapsed if elapsed > 0 else 0.0,
            "mean_duration_s": sum(durations) / len(durations) if durations else 0.0,
        }


def _to_result(row: dict[str, Any]) -> EmailSendResult:
    code = row.get("smtp_code")
    return EmailSendResult(
        recipient=row["to"],
        success=row["status"] == "sent",
        error=row["error"] or None,
        smtp_code=None if pd.isna(code) else int(code),
        status=str(row["status"]),
        started_at=_timestamp(row.get("started_at")),
        finished_at=_timestamp(row.get("finished_at")),
    )


def _timestamp(value: Any) -> datetime | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()
