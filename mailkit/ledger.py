"""The engine's bookkeeping around each hand-over: the journal and the daily quota.

The engine calls a :class:`Ledger` at four points: which rows to send
(``positions``), just before a message goes to the server (:meth:`before_send`),
after the server's reply (:meth:`after_send`) and when a row's result is final
(:meth:`finished`). Without a journal and a daily quota those calls do nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timezone
from typing import Any, Hashable, Sequence

import pandas as pd

from .addresses import split_addresses
from .compose import MessagePlan, Outgoing
from .errors import ConfigurationError
from .journal import Journal
from .results import RowResult
from .resume import ResumePlan, content_hash, key_spec, plan_resume, row_keys
from .transport import SKIPPED, Outcome

__all__ = ["DAY_S", "Ledger", "QuotaGate", "check_journal_options", "open_ledger"]

logger = logging.getLogger(__name__)

#: The window of a daily quota, in seconds: the 24 hours before now.
DAY_S = 24 * 60 * 60

# How often a worker waiting for a quota place checks the run's stop event.
_QUOTA_POLL_S = 0.1


class QuotaGate:
    """Lets at most ``limit`` messages be handed over, ``used`` of them already.

    A worker reserves a place before it sends and settles it after the reply. A
    place whose message was not handed over (the server refused it before the
    final ".") goes back to the pool, so a worker that finds no free place waits
    while other messages are still in flight.
    """

    def __init__(
        self,
        limit: int,
        used: int = 0,
        *,
        oldest_at: float | None = None,
        counted_in_journal: bool = False,
    ) -> None:
        self.limit = limit
        self.used = used
        self.oldest_at = oldest_at
        self.counted_in_journal = counted_in_journal
        self._reserved = 0
        self._condition = threading.Condition()

    @property
    def remaining(self) -> int:
        with self._condition:
            return max(0, self.limit - self.used - self._reserved)

    def reserve(self, stop: threading.Event) -> bool:
        """Take a place; False when the quota is used up or ``stop`` is set."""
        with self._condition:
            while True:
                if self.used + self._reserved < self.limit:
                    self._reserved += 1
                    return True
                if self._reserved == 0 or stop.is_set():
                    return False
                self._condition.wait(_QUOTA_POLL_S)

    def settle(self, handed_over: bool) -> None:
        """Give back a reserved place, counting it as used when ``handed_over``."""
        with self._condition:
            self._reserved -= 1
            if handed_over:
                self.used += 1
                if self.oldest_at is None:
                    self.oldest_at = time.time()
            self._condition.notify_all()

    @property
    def reason(self) -> str:
        """The sentence that skipped rows give when the quota is used up."""
        if not self.counted_in_journal:
            return (
                f"the daily quota of {self.limit} messages is used up for this run "
                "(without journal=, earlier runs are not counted)"
            )
        text = (
            f"the daily quota of {self.limit} messages is used up ({self.used} sent "
            "in the last 24 hours, counted in the journal)"
        )
        if self.oldest_at is not None:
            free_at = datetime.fromtimestamp(self.oldest_at + DAY_S, timezone.utc)
            text += (
                f"; run again after {free_at:%Y-%m-%d %H:%M} UTC with the same journal "
                "to continue"
            )
        return text


class Ledger:
    """The journal and quota bookkeeping of one run, called by the engine.

    ``labels`` and ``recipients`` give each row's index label and recipients.
    ``positions`` are the rows to send, in order. ``prefilled`` contains the
    results of the rows this run does not send. Methods other than
    :meth:`finished` and :meth:`close` are called from worker threads.
    """

    def __init__(
        self,
        labels: Sequence[Hashable],
        recipients: Sequence[str] = (),
        *,
        journal: Journal | None = None,
        resume: ResumePlan | None = None,
        quota: QuotaGate | None = None,
    ) -> None:
        self.journal = journal
        self.quota = quota
        self._resume = resume
        self._keys = resume.keys if resume is not None else []
        self.positions = (
            list(resume.positions) if resume is not None else list(range(len(labels)))
        )
        self.prefilled: dict[int, RowResult] = (
            dict(resume.prefilled) if resume is not None else {}
        )
        # Rows that the journal records as sent or partial come back skipped.
        self.already_sent = sum(
            1 for result in self.prefilled.values() if result.status == SKIPPED
        )
        self._sending = set(self.positions)
        self._attempts: dict[int, int] = {}
        # The status each row's last reply wrote to the journal; a final result
        # with the same status needs no second write.
        self._replied: dict[int, str] = {}
        if quota is not None and quota.remaining == 0 and self.positions:
            self._skip_all_for_quota(labels, recipients)

    @property
    def attrs(self) -> dict[str, Any]:
        """Run metadata for ``results.attrs``."""
        attrs: dict[str, Any] = {}
        if self.journal is not None:
            attrs["journal"] = str(self.journal.path)
            attrs["already_sent"] = self.already_sent
        if self.quota is not None:
            attrs["daily_quota"] = self.quota.limit
            attrs["daily_quota_used"] = self.quota.used
        return attrs

    def quota_stop_reason(self) -> str:
        """Return why the run must stop because the quota is used up, or ""."""
        if self.quota is None or self.quota.remaining > 0:
            return ""
        return self.quota.reason

    def message_id(self, position: int) -> str | None:
        """Return the Message-ID the row must reuse, or None for a new one."""
        if self._resume is None:
            return None
        return self._resume.message_ids.get(position) or None

    def before_send(self, outgoing: Outgoing, stop: threading.Event) -> bool:
        """Reserve a quota place and mark the row ``sending`` in the journal.

        Returns False, sending nothing, when the quota is used up or ``stop``
        is set. Returns True only once the mark is on disk. Raises JournalError
        when the journal cannot be written.
        """
        position = outgoing.label
        if self.quota is not None and not self.quota.reserve(stop):
            return False
        if self.journal is None:
            return True
        try:
            self._attempts[position] = self._mark(position, outgoing)
        except BaseException:
            if self.quota is not None:
                self.quota.settle(False)
            raise
        return True

    def _mark(self, position: int, outgoing: Outgoing) -> int:
        assert self.journal is not None and self._resume is not None
        digest = content_hash(outgoing)
        previous = self._resume.previous_hashes.get(position)
        if previous is not None and previous != digest:
            logger.info(
                "row with key %r changed since its last attempt; sending the new "
                "version",
                self._keys[position],
            )
        return self.journal.mark_sending(
            self._keys[position],
            content_hash=digest,
            message_id=outgoing.message_id,
            recipients=", ".join(outgoing.recipients),
        )

    def after_send(self, outgoing: Outgoing, outcome: Outcome) -> None:
        """Settle the quota place and queue the attempt's outcome in the journal."""
        position = outgoing.label
        if self.quota is not None:
            self.quota.settle(outcome.handed_over)
        if self.journal is None:
            return
        refused = ", ".join(
            f"{address} ({code} {text})"
            for address, (code, text) in outcome.refused.items()
        )
        self.journal.record_reply(
            self._keys[position],
            self._attempts[position],
            status=outcome.status,
            smtp_code=outcome.code,
            smtp_reply=outcome.reply,
            error=outcome.error,
            handed_over=outcome.handed_over,
            refused=refused,
        )
        self._replied[position] = outcome.status

    def finished(self, position: int, result: RowResult) -> None:
        """Queue the final result of a row that this run was to send, unless the
        row's last reply already wrote that status."""
        if self.journal is None or position not in self._sending:
            return
        if self._replied.get(position) == result.status:
            return
        self.journal.record_result(self._keys[position], result)

    def close(self, outcome: str) -> None:
        """Commit what is queued and release the journal."""
        if self.journal is not None:
            self.journal.close(outcome)

    def close_after_error(self, error: BaseException) -> None:
        """Close the journal while ``error`` propagates, without replacing it.

        A failure here, or a further KeyboardInterrupt, is logged: the caller
        re-raises ``error``, which carries the results.
        """
        try:
            self.close(f"ended by {type(error).__name__}")
        except BaseException as exc:  # noqa: BLE001 - the original error wins
            logger.error(
                "closing the journal %s after %s failed: %r",
                getattr(self.journal, "path", None),
                type(error).__name__,
                exc,
            )

    def _skip_all_for_quota(
        self, labels: Sequence[Hashable], recipients: Sequence[str]
    ) -> None:
        assert self.quota is not None
        reason = self.quota.reason
        logger.warning("nothing sent: %s", reason)
        for position in self.positions:
            self.prefilled[position] = RowResult(
                label=labels[position],
                to=recipients[position] if recipients else "",
                status=SKIPPED,
                error=f"Not sent: {reason}.",
            )
        self.positions = []
        self._sending = set()


def open_ledger(
    df: pd.DataFrame,
    plan: MessagePlan,
    *,
    journal: str | os.PathLike | None,
    key: Hashable | None,
    retry_unknown: bool,
    daily_quota: int | None,
) -> Ledger:
    """Open the journal (when given), decide what to send and set up the quota.

    Raises JournalLockedError when another batch uses the journal, before
    anything is sent.
    """
    labels = list(df.index)
    recipients = [
        ", ".join(split_addresses(cell)) for cell in plan.recipient_values(df)
    ]
    if journal is None:
        quota = QuotaGate(daily_quota) if daily_quota is not None else None
        return Ledger(labels, recipients, quota=quota)
    opened = Journal.open(journal, key_spec=key_spec(key))
    try:
        keys = row_keys(df, plan, key)
        resume = plan_resume(
            opened, df, plan, keys, recipients, retry_unknown=retry_unknown
        )
        quota = None
        if daily_quota is not None:
            used, oldest = opened.handed_over_since(time.time() - DAY_S)
            quota = QuotaGate(
                daily_quota, used, oldest_at=oldest, counted_in_journal=True
            )
        return Ledger(labels, recipients, journal=opened, resume=resume, quota=quota)
    except BaseException:
        opened.close("ended before sending")
        raise


def check_journal_options(
    journal: object, key: object, retry_unknown: object, daily_quota: object
) -> None:
    """Raise ConfigurationError for journal options that are invalid or conflict."""
    if journal is not None and not isinstance(journal, (str, os.PathLike)):
        raise ConfigurationError(
            f"Invalid journal={journal!r}: give the path of an SQLite file, such as "
            "journal='campaign.sqlite'."
        )
    if journal is not None and not os.fspath(journal):
        raise ConfigurationError("Invalid journal='': give the path of an SQLite file.")
    if key is not None and journal is None:
        raise ConfigurationError(
            f"key={key!r} names the column that identifies rows in the journal; "
            "pass journal='campaign.sqlite' too."
        )
    if not isinstance(retry_unknown, bool):
        raise ConfigurationError(
            f"Invalid retry_unknown={retry_unknown!r}: give True or False."
        )
    if retry_unknown and journal is None:
        raise ConfigurationError(
            "retry_unknown=True resends rows whose outcome the journal records as "
            "unknown; pass journal= too."
        )
    if daily_quota is not None and (
        not isinstance(daily_quota, int)
        or isinstance(daily_quota, bool)
        or daily_quota < 1
    ):
        raise ConfigurationError(
            f"Invalid daily_quota={daily_quota!r}: give a whole number of messages, "
            "1 or more, or None for no quota."
        )
