"""The delivery engine that all three modes share.

Workers take row positions from a queue, compose the row's message, and send it
over the connection they own. They report each finished row as an event on a
queue; only the calling thread reads those events and updates the results, the
progress bar, the log and the caller's callback, because output from other
threads lands in the wrong notebook cell.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import pandas as pd

from .compose import MessagePlan, Outgoing
from .config import SMTPConfig
from .errors import (
    AuthenticationError,
    BatchStopped,
    ConfigurationError,
    JournalError,
    MessageError,
    SMTPError,
)
from .ledger import Ledger
from .modes import Pacer, RunSettings
from .progress import ProgressOption, open_bar
from .results import RowResult, build_results
from .stop import USER_STOP_REASON, StopSignal
from .transport import DEFERRED, FAILED, SENT, SKIPPED, UNKNOWN, Connection, Outcome

__all__ = ["Engine", "RetryPolicy"]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, dict[str, Any]], None]

# How long the calling thread waits for workers to finish their current message
# after a stop, beyond the command timeout.
_JOIN_GRACE_S = 5.0
# How often the calling thread checks the caller's stop signal, in seconds, so that
# a stop also ends pauses and retry waits that no worker is checking. The same
# period bounds how long a KeyboardInterrupt raised without a real signal (such
# as _thread.interrupt_main) waits to be noticed.
_STOP_POLL_S = 0.1
# How long the calling thread waits for workers after it shut their sockets down.
_ABORT_JOIN_S = 2.0
# How many further KeyboardInterrupts the shutdown absorbs before it gives up
# waiting; each pass ends within its own deadline.
_SHUT_DOWN_PASSES = 3


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of temporary (4xx) failures that happen before the hand-over.

    The n-th retry waits ``backoff * 2 ** (n - 1)`` seconds plus up to ``backoff``
    seconds of jitter.
    """

    max_retries: int = 3
    backoff: float = 1.0

    def delay(self, retry: int) -> float:
        return self.backoff * 2 ** (retry - 1) + random.uniform(0, self.backoff)


class _RowSource:
    """Row values by position, read from per-column lists so that workers never
    index the DataFrame concurrently and no per-row copies pile up."""

    def __init__(self, df: pd.DataFrame) -> None:
        self.labels = list(df.index)
        self.columns = {str(name): df[name].tolist() for name in df.columns}

    def row(self, position: int) -> dict[str, Any]:
        return {name: values[position] for name, values in self.columns.items()}


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Engine:
    """Sends every row of one DataFrame; build one per batch."""

    def __init__(
        self,
        df: pd.DataFrame,
        plan: MessagePlan,
        config: SMTPConfig,
        settings: RunSettings,
        *,
        retry: RetryPolicy = RetryPolicy(),
        progress: ProgressOption = True,
        progress_callback: ProgressCallback | None = None,
        stop: StopSignal | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.df = df
        self.plan = plan
        self.config = config
        self.settings = settings
        self.retry = retry
        self.progress = progress
        self.progress_callback = progress_callback
        self.user_stop = stop
        self._rows = _RowSource(df)
        self._total = len(df)
        self._todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._stop_reason = ""
        self._pacer = Pacer(settings.interval, settings.jitter)
        self._results: list[RowResult | None] = [None] * self._total
        self._counts: dict[str, int] = {}
        self._quiet_stop = False
        # The ledger decides which rows this run sends and records each hand-over
        # in the journal and the daily quota.
        self._ledger = ledger or Ledger(self._rows.labels)
        for position, result in self._ledger.prefilled.items():
            self._results[position] = result
        self._to_send = len(self._ledger.positions)
        # Rows whose SMTP transaction has started and not ended, and every
        # worker's connection, so that an interrupt can tell which rows may have
        # been delivered and can cut off the transactions still running.
        self._in_flight: set[int] = set()
        self._connections: list[Connection] = []
        # Workers put each finished row's result here before they report it. An
        # interrupt can drop an event that the calling thread already took off
        # the queue, and the result must survive that.
        self._reported: list[RowResult | None] = [None] * self._total

    # -- calling thread ----------------------------------------------------------

    def run(self) -> pd.DataFrame:
        """Send every row and return the results DataFrame.

        Raises before any message when the first connection cannot be opened.
        Raises BatchStopped when the run stopped early (for example a rejected
        login on a reconnect), and re-raises KeyboardInterrupt; both carry the
        results of every row as ``.results``. A stop requested through ``stop``
        returns the results, with the rows not sent marked skipped.
        """
        started = time.monotonic()
        logger.info(
            "sending %d of %d rows in %s mode with %d worker(s) to %s:%s",
            self._to_send,
            self._total,
            self.settings.mode,
            self.settings.workers,
            self.config.host,
            self.config.port,
        )
        if self._to_send == 0 or self._user_stop_requested():
            return self._finish(started)
        first = Connection(self.config)
        try:
            first.open()
        except KeyboardInterrupt as exc:
            self._halt(f"the run was interrupted ({type(exc).__name__})")
            exc.results = self._finish(started)  # type: ignore[attr-defined]
            raise
        self._connections.append(first)
        # Whether the server offers SMTPUTF8, and its SIZE limit, are known only
        # after EHLO; every row is composed after this point.
        self.plan = self.plan.with_server(first.capabilities)
        for position in self._ledger.positions:
            self._todo.put(position)
        workers = [
            threading.Thread(
                target=self._work,
                args=(first if index == 0 else None,),
                name=f"mailkit-worker-{index}",
                daemon=True,
            )
            for index in range(min(self.settings.workers, self._to_send))
        ]
        bar = open_bar(self._to_send, self.progress, f"{self.settings.mode} send")
        try:
            for worker in workers:
                worker.start()
            self._collect(workers, bar)
        except BaseException as exc:
            reason = f"the run was interrupted ({type(exc).__name__})"
            self._shut_down(workers, bar, reason)
            results = self._finish(started)
            exc.results = results  # type: ignore[attr-defined]
            raise
        finally:
            if bar is not None:
                bar.close()
        results = self._finish(started)
        if self._stop_reason and not self._quiet_stop:
            raise BatchStopped(
                f"The run stopped early: {self._stop_reason}. See .results for every "
                "row; rows with status 'skipped' were not sent.",
                results,
            )
        return results

    def _collect(self, workers: list[threading.Thread], bar: Any) -> None:
        done = 0
        running = len(workers)
        while running:
            try:
                kind, payload = self._events.get(timeout=_STOP_POLL_S)
            except queue.Empty:
                self._user_stop_requested()
                continue
            if kind == "exit":
                running -= 1
                continue
            done += 1
            self._record(payload, done, bar)

    def _store(self, position: int, result: RowResult) -> bool:
        """Keep a row's result, labelled by row, and queue it for the journal.

        Returns False, changing nothing, when the row already has a result.
        """
        if self._results[position] is not None:
            return False
        result.label = self._rows.labels[position]
        self._results[position] = result
        self._ledger.finished(position, result)
        return True

    def _record(self, position: int, done: int, bar: Any) -> None:
        result = self._reported[position]
        if result is None or not self._store(position, result):
            return
        if result.status != SENT:
            logger.warning(
                "row %r to %s: %s (%s)",
                result.label,
                result.to,
                result.status,
                result.error,
            )
        self._counts[result.status] = self._counts.get(result.status, 0) + 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(self._counts, refresh=False)
        if self.progress_callback is not None:
            self.progress_callback(done, self._to_send, result.as_record())

    def _shut_down(
        self, workers: list[threading.Thread], bar: Any, reason: str
    ) -> None:
        """Stop the workers after an exception in the calling thread.

        Transactions already running may finish until the reply timeout. A
        further KeyboardInterrupt, wherever it lands in here, or the end of that
        wait shuts their sockets down, so every worker ends within about
        ``_ABORT_JOIN_S`` of it.
        """
        abort = False
        for _ in range(_SHUT_DOWN_PASSES):
            try:
                self._stop_now(workers, bar, reason, abort=abort)
                return
            except KeyboardInterrupt:
                logger.warning(
                    "interrupted again: closing the connections of %d row(s) in "
                    "transit without waiting for their replies",
                    len(self._in_flight),
                )
                abort = True

    def _stop_now(
        self, workers: list[threading.Thread], bar: Any, reason: str, *, abort: bool
    ) -> None:
        self._halt(reason)
        if not abort:
            _join_all(workers, time.monotonic() + self.config.timeout + _JOIN_GRACE_S)
        if any(worker.is_alive() for worker in workers):
            for connection in list(self._connections):
                connection.abort()
            _join_all(workers, time.monotonic() + _ABORT_JOIN_S)
        while True:
            try:
                kind, payload = self._events.get_nowait()
            except queue.Empty:
                break
            if kind == "row" and self._store(payload, self._reported[payload]):
                if bar is not None:
                    bar.update(1)

    def _finish(self, started: float) -> pd.DataFrame:
        reason = self._stop_reason or "the run stopped before this row"
        for position, result in enumerate(self._results):
            if result is not None:
                continue
            reported = self._reported[position]
            if reported is not None:
                self._store(position, reported)
                continue
            if position in self._in_flight:
                result = RowResult(
                    label=position,
                    to=self._recipient_text(position),
                    status=UNKNOWN,
                    error=f"The message may have been delivered: {reason} while it "
                    "was being sent, before the server's reply. It is not sent again "
                    "automatically.",
                )
            else:
                result = RowResult(
                    label=position,
                    to=self._recipient_text(position),
                    status=SKIPPED,
                    error=f"Not sent: {reason}.",
                )
            self._store(position, result)
        elapsed = time.monotonic() - started
        results = build_results(
            self.df.index,
            self._results,  # type: ignore[arg-type]
            attrs={
                "mode": self.settings.mode,
                "workers": self.settings.workers,
                "server": self.config.url,
                "elapsed_s": elapsed,
                "stop_reason": self._stop_reason,
                **self._ledger.attrs,
            },
        )
        counts = results["status"].value_counts()
        logger.info(
            "finished %d rows in %.2f s: %s",
            self._total,
            elapsed,
            ", ".join(f"{count} {status}" for status, count in counts.items() if count),
        )
        return results

    def _recipient_text(self, position: int) -> str:
        return self.plan.recipient_text(self._rows.row(position))

    # -- worker threads -----------------------------------------------------------

    def _work(self, connection: Connection | None) -> None:
        if connection is None:
            connection = Connection(self.config)
            self._connections.append(connection)
        try:
            while not self._stop.is_set() and not self._user_stop_requested():
                try:
                    position = self._todo.get_nowait()
                except queue.Empty:
                    break
                result = self._send_row(position, connection)
                if result is None:
                    self._todo.put(position)
                    break
                self._reported[position] = result
                self._in_flight.discard(position)
                self._events.put(("row", position))
        except BaseException:  # noqa: BLE001 - reported to the calling thread
            logger.exception("worker failed")
            self._halt("a worker failed unexpectedly; see the log")
        finally:
            connection.close()
            self._events.put(("exit", None))

    def _user_stop_requested(self) -> bool:
        """Stop the run when the caller's stop signal is set; called by any thread."""
        if self.user_stop is None or not self.user_stop.is_set():
            return False
        self._halt(USER_STOP_REASON, quiet=True)
        return True

    def _halt(self, reason: str, *, quiet: bool = False) -> None:
        """Stop the run; the first reason wins. ``quiet`` stops return the
        results instead of raising BatchStopped."""
        if not self._stop_reason:
            self._stop_reason = reason
            self._quiet_stop = quiet
        self._stop.set()

    def _send_row(self, position: int, connection: Connection) -> RowResult | None:
        """Send one row; None means the row was not tried because the run stopped."""
        result = RowResult(label=position, to=self._recipient_text(position), status=FAILED)
        try:
            outgoing = self.plan.compose(
                position,
                self._rows.row(position),
                message_id=self._ledger.message_id(position),
            )
        except MessageError as exc:
            result.error = str(exc)
            return result
        except Exception as exc:  # noqa: BLE001 - any template or data error
            result.error = f"The message could not be built: {type(exc).__name__}: {exc}"
            return result
        result.to = ", ".join(outgoing.recipients)
        result.message_id = outgoing.message_id
        result.attachments = outgoing.attachment_summary
        retries = 0
        while True:
            if not self._pacer.wait(self._stop):
                return None if result.attempts == 0 else self._defer(result)
            outcome = self._attempt(outgoing, connection, result)
            if outcome is None:
                return None if result.attempts == 0 else self._defer(result)
            self._apply(result, outcome)
            if outcome.status != DEFERRED or outcome.handed_over:
                return result
            if retries >= self.retry.max_retries:
                return result
            retries += 1
            logger.info(
                "row %r deferred (%s); retry %d of %d",
                self._rows.labels[position],
                outcome.error,
                retries,
                self.retry.max_retries,
            )
            if self._stop.wait(self.retry.delay(retries)):
                return result

    def _attempt(
        self, outgoing: Outgoing, connection: Connection, result: RowResult
    ) -> Outcome | None:
        if not connection.is_open:
            try:
                connection.open()
            except AuthenticationError as exc:
                self._halt(f"the server rejected the login ({exc.code} {exc.reply})")
                return None
            except ConfigurationError as exc:
                self._halt(str(exc))
                return None
            except SMTPError as exc:
                if result.started_at is None:
                    result.started_at = _now()
                result.attempts += 1
                return Outcome(DEFERRED, exc.code, exc.reply, error=str(exc), reconnect=True)
        try:
            admitted = self._ledger.before_send(outgoing, self._stop)
        except JournalError as exc:
            # No message may go out without its mark, so the run stops.
            cause = exc.__cause__ or exc
            self._halt(
                f"the journal {getattr(self._ledger.journal, 'path', '')} could not "
                f"be written ({cause}); free disk space or fix the file's "
                "permissions, then run the same call again"
            )
            return None
        if not admitted:
            reason = self._ledger.quota_stop_reason()
            if reason:
                self._halt(reason, quiet=True)
            return None
        if result.started_at is None:
            result.started_at = _now()
        result.attempts += 1
        position = outgoing.label
        self._in_flight.add(position)
        outcome = connection.send(outgoing)
        self._ledger.after_send(outgoing, outcome)
        if outcome.reconnect:
            connection.discard()
        return outcome

    @staticmethod
    def _apply(result: RowResult, outcome: Outcome) -> None:
        result.status = outcome.status
        result.smtp_code = outcome.code
        result.smtp_reply = outcome.reply
        result.error = outcome.error
        result.refused = outcome.refused
        result.finished_at = _now()

    def _defer(self, result: RowResult) -> RowResult:
        result.finished_at = result.finished_at or _now()
        return result



def _join_all(workers: list[threading.Thread], deadline: float) -> None:
    """Wait for the workers until the monotonic ``deadline``.

    Waits in short slices so that a KeyboardInterrupt raised without a real
    signal is noticed between them.
    """
    for worker in workers:
        while worker.is_alive():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            worker.join(min(_STOP_POLL_S, remaining))
