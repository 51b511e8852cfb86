"""The worker side of a batch: the state the workers share, and one worker's loop.

A worker holds a slot of the connection limit, takes a row position from the
queue, makes sure its own connection is open and usable, waits for the rate
limiter and sends the row. Each row is composed once, so a retry sends the same
bytes with the same Message-ID. A finished row goes to the calling thread as an
event; a row to retry goes back into the queue with a delay.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from .compose import MessagePlan
from .composer import Composer, RowEntry
from .config import SMTPConfig
from .errors import (
    AuthenticationError,
    ConfigurationError,
    JournalError,
    MessageError,
    SMTPError,
    SMTPSessionRefusedError,
)
from .ledger import Ledger
from .logins import recent_logins
from .modes import RunSettings
from .pool import ConnectionLimit, ThrottleEvent
from .ratelimit import RateLimiter
from .replies import (
    DEFERRED,
    FAILED,
    PARTIAL,
    SENT,
    is_quota,
    is_session_end,
    is_throttle,
)
from .results import RowResult
from .retry import RetryPolicy
from .stop import StopSignal
from .transport import Connection, LoginCancelled, Outcome
from .workqueue import RowQueue

__all__ = ["BatchState", "RowEntry", "Worker"]

logger = logging.getLogger(__name__)

# Longest single sleep of a worker that waits to reconnect, so that a stop or
# the end of the work is noticed within this time.
_SLEEP_SLICE_S = 0.1


def now() -> datetime:
    return datetime.now(timezone.utc)


class BatchState:
    """Everything the workers of one batch share; counters are guarded by a lock.

    ``in_flight`` holds the rows whose SMTP transaction has started and not
    ended, and ``connections`` every worker's connection, so that an interrupt
    can tell which rows may have been delivered and can cut off the
    transactions still running.
    """

    def __init__(
        self,
        *,
        config: SMTPConfig,
        plan: MessagePlan,
        settings: RunSettings,
        retry: RetryPolicy,
        row_values: Callable[[int], dict[str, Any]],
        row_labels: Sequence[Any],
        positions: Sequence[int],
        ledger: Ledger,
        user_stop: StopSignal | None,
    ) -> None:
        self.config = config
        self.plan = plan
        self.settings = settings
        self.retry = retry
        self.row_values = row_values
        self.ledger = ledger
        self.user_stop = user_stop
        self.ssl_context: ssl.SSLContext | None = None
        # Whether the account logged in to this server a short while ago, so
        # that the workers need not wait for the first login before theirs.
        self.login_trusted = recent_logins.is_recent(config)
        self.queue = RowQueue(positions)
        self.limit = ConnectionLimit(settings.workers, adaptive=settings.adaptive)
        self.rate = RateLimiter(settings.rate, burst=settings.burst, jitter=settings.jitter)
        self.events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        # Workers put each finished row's result here before they report its
        # position as an event. An interrupt can drop an event that the calling
        # thread already took off the queue, and the result must survive that.
        self.reported: list[RowResult | None] = [None] * len(row_labels)
        self.composer = Composer(self.compose_row, positions)
        self.stop = threading.Event()
        # Set once the first connection is open and the plan knows the server's
        # capabilities; workers compose no row and try no login before.
        self.ready = threading.Event()
        self.stop_reason = ""
        # A quiet stop (the caller's stop signal, the end of daily_quota)
        # returns the results instead of raising BatchStopped.
        self.quiet_stop = False
        self.in_flight: set[int] = set()
        self.connections: list[Connection] = []
        self.connections_opened = 0
        self.reconnects = 0
        self.recycled = 0
        self._failed_opens = 0
        self._throttle_streak = 0
        self._lock = threading.Lock()

    # -- stopping -----------------------------------------------------------------

    def halt(self, reason: str, *, quiet: bool = False) -> None:
        """Stop the run; the first reason wins. Rows not sent end as skipped.

        Connections that are still opening are cut off, because they carry no
        message and would otherwise hold the stop for up to the connect or reply
        timeout.
        """
        with self._lock:
            if not self.stop_reason:
                self.stop_reason = reason
                self.quiet_stop = quiet
        self.stop.set()
        for connection in list(self.connections):
            connection.abort_opening()

    def user_stop_requested(self, reason: str) -> bool:
        """Stop the run when the caller's stop signal is set; called by any thread."""
        if self.user_stop is None or not self.user_stop.is_set():
            return False
        self.halt(reason, quiet=True)
        return True

    def wait_ready(self) -> bool:
        """Wait until the first connection is open; False when the run stopped."""
        # Waiting on ``ready`` wakes the worker as soon as it is set; the stop
        # is checked between the slices.
        while not self.ready.wait(_SLEEP_SLICE_S):
            if self.stop.is_set():
                return False
        return not self.stop.is_set()

    @property
    def entries(self) -> dict[int, RowEntry]:
        """Composed rows that are not finished, by position."""
        return self.composer.entries

    def compose_row(self, position: int) -> RowEntry:
        """Build one row's message; a row that cannot be built gets a failed result."""
        result = RowResult(label=position, to=self.recipient_text(position), status=FAILED)
        try:
            outgoing = self.plan.compose(
                position,
                self.row_values(position),
                message_id=self.ledger.message_id(position),
            )
        except MessageError as exc:
            result.error = str(exc)
            return RowEntry(outgoing=None, result=result)
        except Exception as exc:  # noqa: BLE001 - any template or data error
            result.error = f"The message could not be built: {type(exc).__name__}: {exc}"
            return RowEntry(outgoing=None, result=result)
        result.to = ", ".join(outgoing.recipients)
        result.message_id = outgoing.message_id
        result.attachments = outgoing.attachment_summary
        return RowEntry(outgoing=outgoing, result=result)

    def recipient_text(self, position: int) -> str:
        return self.plan.recipient_text(self.row_values(position))

    def new_connection(self) -> Connection:
        """Create a connection (not opened yet) that an interrupt can abort."""
        connection = Connection(self.config, ssl_context=self.ssl_context)
        self.connections.append(connection)
        return connection

    def sleep(self, seconds: float) -> None:
        """Sleep, ending early on a stop or when no row is left."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and not self.queue.finished():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.stop.wait(min(remaining, _SLEEP_SLICE_S))

    # -- counters -----------------------------------------------------------------

    def connection_opened(self) -> None:
        with self._lock:
            self.connections_opened += 1
            self._failed_opens = 0

    def connection_failed(self) -> int:
        """Count a failed open; return how many failed in a row while no session was open."""
        with self._lock:
            if self.limit.open > 0:
                self._failed_opens = 0
            else:
                self._failed_opens += 1
            return self._failed_opens

    def count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def throttle_pause(self) -> float:
        """Return the pause after one more throttling reply in a row."""
        with self._lock:
            self._throttle_streak += 1
            streak = self._throttle_streak
        return self.retry.delay(streak)

    def message_accepted(self) -> None:
        with self._lock:
            self._throttle_streak = 0
        self.limit.accepted()

    def log_throttle(self, event: ThrottleEvent, pause: float | None) -> None:
        # The first event of a run is a warning; later ones are counted in the
        # results metadata and logged at INFO, so a long batch does not flood the log.
        level = logging.WARNING if self.limit.throttle_count == 1 else logging.INFO
        action = f"pausing {pause:.1f} s, " if pause is not None else ""
        logger.log(
            level,
            "%s by %s (%s %s); %sconnection limit now %d (throttle event %d)",
            event.kind,
            self.config.host,
            event.code,
            event.reply,
            action,
            event.limit,
            self.limit.throttle_count,
        )


class Worker:
    """One worker thread's loop over rows, with the connection it owns."""

    def __init__(self, batch: BatchState, connection: Connection | None = None) -> None:
        self.batch = batch
        self.connection = connection or batch.new_connection()
        # A connection opened by the calling thread already holds a slot.
        self._has_slot = connection is not None
        self._failed_opens = 0

    def run(self) -> None:
        batch = self.batch
        try:
            self._preconnect()
            if not batch.wait_ready():
                return
            while not batch.stop.is_set():
                if not self._has_slot:
                    if not batch.limit.acquire(batch.stop, batch.queue.finished):
                        break
                    self._has_slot = True
                elif self.connection.is_open and batch.limit.shed():
                    self._has_slot = False
                    logger.info(
                        "closing a connection to %s: the connection limit is now %d",
                        batch.config.host,
                        batch.limit.limit,
                    )
                    self.connection.close()
                    continue
                position = batch.queue.take(batch.stop)
                if position is None:
                    break
                entry = self._entry(position)
                if entry is None:
                    continue
                # A connection is opened before the rate wait, so that the setup
                # does not push message starts closer together than the rate,
                # and checked after it, because the server may have closed it
                # during the wait.
                if not self.connection.is_open and not self._ready(position):
                    continue
                if not batch.rate.wait(batch.stop):
                    batch.queue.put_back(position)
                    break
                if not self._ready(position):
                    continue
                self._send_row(position, entry)
        except BaseException:  # noqa: BLE001 - reported to the calling thread
            logger.exception("worker failed")
            batch.halt("a worker failed unexpectedly; see the log")
        finally:
            self.connection.close()
            if self._has_slot:
                batch.limit.release()
            batch.events.put(("exit", None))

    # -- the connection -------------------------------------------------------------

    def _preconnect(self) -> None:
        """Open this worker's connection before any row is due.

        The login waits for the first connection's login. A failure here
        involves no row: the worker tries again when it takes one.
        """
        batch = self.batch
        if self.connection.is_open:
            return
        if not batch.limit.acquire(batch.stop, batch.queue.finished):
            return
        self._has_slot = True
        try:
            self.connection.open(before_login=self._may_log_in)
        except LoginCancelled:
            return
        except SMTPSessionRefusedError as exc:
            self._release_slot()
            if batch.stop.is_set():
                # The stop cut the session off; the server refused nothing.
                return
            batch.log_throttle(batch.limit.session_refused(exc.code, exc.reply), None)
            batch.sleep(batch.retry.delay(1))
            return
        except (AuthenticationError, ConfigurationError) as exc:
            self._release_slot()
            if batch.ready.is_set():
                batch.halt(str(exc).rstrip("."))
            return
        except SMTPError as exc:
            self._release_slot()
            logger.info("could not open a connection to %s (%s)", batch.config.host, exc)
            return
        batch.connection_opened()

    def _may_log_in(self) -> bool:
        """Return whether to log in now, which is not when no row is left.

        Unless the account logged in to this server a short while ago, wait for
        the first connection's login first.
        """
        batch = self.batch
        if not batch.login_trusted and not batch.wait_ready():
            return False
        return not batch.queue.finished() and not batch.stop.is_set()

    def _release_slot(self) -> None:
        self._has_slot = False
        self.batch.limit.release()

    def _ready(self, position: int) -> bool:
        """Make sure the connection is open and usable for the row at ``position``.

        On False the row was put back into the queue or finished.
        """
        batch = self.batch
        connection = self.connection
        recycle_after = batch.settings.max_messages_per_connection
        if connection.is_open and recycle_after and connection.messages_sent >= recycle_after:
            logger.info(
                "opening a new connection to %s after %d messages on this one",
                batch.config.host,
                connection.messages_sent,
            )
            connection.close()
            batch.count("recycled")
        elif connection.is_open and not connection.is_usable():
            batch.count("reconnects")
        if connection.is_open:
            return True
        try:
            connection.open()
        except SMTPSessionRefusedError as exc:
            self._open_failed(position, exc, refused=True)
            return False
        except AuthenticationError as exc:
            self._fail_on_login(position, exc)
            return False
        except ConfigurationError as exc:
            batch.queue.put_back(position)
            batch.halt(str(exc).rstrip("."))
            return False
        except SMTPError as exc:
            self._open_failed(position, exc, refused=False)
            return False
        self._failed_opens = 0
        batch.connection_opened()
        return True

    def _open_failed(self, position: int, exc: SMTPError, *, refused: bool) -> None:
        batch = self.batch
        batch.queue.put_back(position)
        self._has_slot = False
        batch.limit.release()
        if batch.stop.is_set():
            return
        if refused:
            batch.log_throttle(batch.limit.session_refused(exc.code, exc.reply), None)
        failures_without_session = batch.connection_failed()
        if failures_without_session > batch.retry.max_retries:
            batch.halt(f"no connection to {batch.config.host} could be opened ({exc})")
            return
        self._failed_opens += 1
        delay = batch.retry.delay(self._failed_opens)
        logger.info(
            "could not open a connection to %s (%s); trying again in %.1f s",
            batch.config.host,
            exc,
            delay,
        )
        batch.sleep(delay)

    def _fail_on_login(self, position: int, exc: AuthenticationError) -> None:
        """Fail the row after a rejected login on a new connection, and stop the run.

        Every other connection would be rejected the same way, so no worker tries
        to log in again.
        """
        batch = self.batch
        entry = self._entry(position)
        batch.halt(f"the server rejected the login on a new connection ({exc.code} {exc.reply})")
        if entry is None:
            return
        result = entry.result
        result.status = FAILED
        result.smtp_code = exc.code
        result.smtp_reply = exc.reply
        result.error = f"Not sent, because the login on a new connection failed: {exc}"
        self._finish(position, result)

    # -- one row ----------------------------------------------------------------------

    def _entry(self, position: int) -> RowEntry | None:
        """Return the row's composed message, composing it on first use.

        A row that cannot be composed is finished as failed, and None returned.
        """
        entry = self.batch.composer.get(position)
        if entry.outgoing is None:
            self._finish(position, entry.result)
            return None
        return entry

    def _send_row(self, position: int, entry: RowEntry) -> None:
        batch = self.batch
        try:
            admitted = batch.ledger.before_send(entry.outgoing, batch.stop)
        except JournalError as exc:
            # No message may go out without its mark, so the run stops.
            batch.queue.put_back(position)
            cause = exc.__cause__ or exc
            batch.halt(
                f"the journal {getattr(batch.ledger.journal, 'path', '')} could not "
                f"be written ({cause}); free disk space or fix the file's "
                "permissions, then run the same call again"
            )
            return
        if not admitted:
            reason = batch.ledger.quota_stop_reason()
            if reason:
                batch.halt(reason, quiet=True)
            batch.queue.put_back(position)
            return
        result = entry.result
        if result.started_at is None:
            result.started_at = now()
        result.attempts += 1
        reused = self.connection.messages_sent > 0
        batch.in_flight.add(position)
        outcome = self.connection.send(entry.outgoing)
        batch.ledger.after_send(entry.outgoing, outcome)
        if not outcome.handed_over:
            # Nothing reached the server, so the row is not in transit while it
            # waits for a retry. A handed-over row stays in transit until
            # _finish() has kept its result.
            batch.in_flight.discard(position)
        result.status = outcome.status
        result.smtp_code = outcome.code
        result.smtp_reply = outcome.reply
        result.error = outcome.error
        result.refused = outcome.refused
        result.finished_at = now()
        self._decide(position, entry, outcome, reused)

    def _decide(self, position: int, entry: RowEntry, outcome: Outcome, reused: bool) -> None:
        """Finish the row, or put it back for a retry, after one attempt."""
        batch = self.batch
        result = entry.result
        if is_quota(outcome.command, outcome.code, outcome.reply):
            reason = (
                f"the server reports that the sending quota is used up "
                f"({outcome.code} {outcome.reply})"
            )
            result.status = DEFERRED
            result.error = f"Not sent: {reason}. Send this row again once the quota resets."
            batch.halt(reason)
            self._finish(position, result)
            return
        if outcome.status in (SENT, PARTIAL):
            batch.message_accepted()
        if is_throttle(outcome.command, outcome.code, outcome.reply):
            pause = batch.throttle_pause()
            batch.rate.pause(pause)
            batch.log_throttle(batch.limit.throttled(outcome.code, outcome.reply), pause)
        if outcome.status != DEFERRED or outcome.handed_over:
            self._finish(position, result)
            return
        # A timeout is not a closed connection: the server may be stuck on this
        # very message, so it counts as a retry.
        closed = outcome.connection_lost and not outcome.timed_out
        session_ended = closed or is_session_end(outcome.code, outcome.reply)
        if session_ended and reused and not entry.stale_resend_used:
            # The connection had sent messages before, and the server closed it
            # (idle timeout, messages-per-session cap) before this message was
            # handed over. The message goes again at once on a new connection,
            # without counting as a retry.
            entry.stale_resend_used = True
            batch.count("reconnects")
            logger.info(
                "the server closed the connection to %s before row at position %d "
                "was sent (%s); reconnecting",
                batch.config.host,
                position,
                outcome.error,
            )
            batch.queue.put_back(position)
            return
        self._retry_or_finish(position, entry, outcome)

    def _retry_or_finish(self, position: int, entry: RowEntry, outcome: Outcome) -> None:
        batch = self.batch
        if entry.retries >= batch.retry.max_retries:
            self._finish(position, entry.result)
            return
        entry.retries += 1
        delay = batch.retry.delay(entry.retries)
        logger.info(
            "row at position %d was deferred (%s); retry %d of %d in %.1f s",
            position,
            outcome.error,
            entry.retries,
            batch.retry.max_retries,
            delay,
        )
        batch.queue.put_back(position, delay)

    def _finish(self, position: int, result: RowResult) -> None:
        batch = self.batch
        result.finished_at = result.finished_at or now()
        batch.reported[position] = result
        # Only now, with the result kept, the row stops counting as in transit,
        # so an interrupt in between cannot turn a delivered row into "skipped".
        batch.in_flight.discard(position)
        batch.composer.finished(position)
        batch.queue.done(position)
        batch.events.put(("row", position))
