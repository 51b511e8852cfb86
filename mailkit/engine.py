"""The delivery engine that all three modes share.

Workers (see :mod:`mailkit.worker`) take row positions from a queue, compose the
row's message, and send it over the connection they own, within a shared limit
on connections and a shared message rate. They report each finished row as an
event on a queue; only the calling thread reads those events and updates the
results, the progress bar, the log and the caller's callback, because output
from other threads lands in the wrong notebook cell.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from typing import Any, Callable

import pandas as pd

from .barlog import ROW_ATTRIBUTE, BatchLogRouter
from .compose import MessagePlan
from .capabilities import ServerCapabilities
from .config import SMTPConfig
from .errors import BatchStopped, SMTPSessionRefusedError
from .ledger import Ledger
from .modes import RunSettings
from .progress import ProgressOption, open_bar
from .results import RowResult, build_results
from .retry import RetryPolicy
from .stop import USER_STOP_REASON, StopSignal
from .transport import SENT, SKIPPED, UNKNOWN, Connection, make_ssl_context
from .worker import BatchState, Worker

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


class _RowSource:
    """Row values by position, read from per-column lists so that workers never
    index the DataFrame concurrently and no per-row copies pile up."""

    def __init__(self, df: pd.DataFrame) -> None:
        self.labels = list(df.index)
        self.columns = {str(name): df[name].tolist() for name in df.columns}

    def row(self, position: int) -> dict[str, Any]:
        return {name: values[position] for name, values in self.columns.items()}


class Engine:
    """Sends every row of one DataFrame; build one per batch.

    ``metadata`` is merged into ``results.attrs`` (for example the provider
    preset).
    """

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
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.df = df
        self.plan = plan
        self.config = config
        self.settings = settings
        self.retry = retry
        self.progress = progress
        self.progress_callback = progress_callback
        self.user_stop = stop
        self.metadata = dict(metadata or {})
        self._rows = _RowSource(df)
        self._total = len(df)
        self._results: list[RowResult | None] = [None] * self._total
        self._counts: dict[str, int] = {}
        # The ledger decides which rows this run sends and records each hand-over
        # in the journal and the daily quota.
        self._ledger = ledger or Ledger(self._rows.labels)
        for position, result in self._ledger.prefilled.items():
            self._results[position] = result
        self._to_send = len(self._ledger.positions)
        self._composer_thread: threading.Thread | None = None
        self._batch = BatchState(
            config=config,
            plan=plan,
            settings=settings,
            retry=retry,
            row_values=self._rows.row,
            row_labels=self._rows.labels,
            positions=self._ledger.positions,
            ledger=self._ledger,
            user_stop=stop,
        )

    # -- calling thread ----------------------------------------------------------

    def run(self) -> pd.DataFrame:
        """Send every row and return the results DataFrame.

        Raises before any message when the first connection cannot be opened
        (including a rejected login). Raises BatchStopped when the run stopped
        early (for example a sending quota reply or a rejected login on a
        reconnect), and re-raises KeyboardInterrupt; both carry the results of
        every row as ``.results``. A stop requested through ``stop``, and the
        end of a ``daily_quota``, return the results, with the rows not sent
        marked skipped.
        """
        started = time.monotonic()
        logger.info(
            "sending %d of %d rows in %s mode with up to %d connection(s)%s to %s:%s",
            self._to_send,
            self._total,
            self.settings.mode,
            self.settings.workers,
            f" at {self.settings.rate:g} messages/s" if self.settings.rate else "",
            self.config.host,
            self.config.port,
        )
        if self._to_send == 0 or self._user_stop_requested():
            return self._finish(started)
        batch = self._batch
        if self.config.security != "none":
            # One context for every connection, so that tls_verify=False warns once.
            batch.ssl_context = make_ssl_context(self.config)
        first = batch.new_connection()
        batch.limit.acquire(batch.stop, lambda: False)
        workers = [
            _WorkerThread(Worker(batch, first if index == 0 else None), index)
            for index in range(min(self.settings.workers, self._to_send))
        ]
        # The other workers start once the server has greeted the first
        # connection, so their setup overlaps its login and the first
        # connection takes its session slot before them. They log in only after
        # the first login succeeded, so wrong credentials cost one AUTH. When
        # the same account logged in to this server a short while ago, they
        # start as soon as the first TCP connection is made and log in at once.
        # Rows are composed from the first EHLO after STARTTLS on, while the
        # connections wait for their logins.
        others = workers[1:]
        try:
            if not self._open_first(first, others):
                # The caller's stop signal ended the wait for a session.
                self._stop_composing()
                self._stop_others(others)
                return self._finish(started)
        except BaseException as exc:
            self._stop_composing()
            batch.limit.release()
            if isinstance(exc, KeyboardInterrupt):
                batch.halt(f"the run was interrupted ({type(exc).__name__})")
            else:
                batch.halt(f"the first connection failed ({type(exc).__name__})")
            self._stop_others(others)
            if isinstance(exc, KeyboardInterrupt):
                exc.results = self._finish(started)  # type: ignore[attr-defined]
            raise
        batch.connection_opened()
        batch.ready.set()
        bar = open_bar(self._to_send, self.progress, f"{self.settings.mode} send")
        self._log_router = BatchLogRouter()
        try:
            workers[0].start()
            self._collect(workers, bar)
        except BaseException as exc:
            reason = f"the run was interrupted ({type(exc).__name__})"
            self._shut_down(workers, bar, reason)
            results = self._finish(started)
            exc.results = results  # type: ignore[attr-defined]
            raise
        finally:
            self._stop_composing()
            if bar is not None:
                bar.close()
            self._log_router.remove()
        results = self._finish(started)
        if batch.stop_reason and not batch.quiet_stop:
            raise BatchStopped(
                f"The run stopped early: {batch.stop_reason}. See .results for every "
                "row; rows with status 'skipped' or 'deferred' were not sent.",
                results,
            )
        return results

    def _open_first(self, first: Connection, others: list[_WorkerThread]) -> bool:
        """Open the first connection, starting the other workers along the way.

        A temporary refusal (a 4xx reply such as "421 Too many connections" or
        "454 Too many login attempts") is retried after a backoff, up to the
        retry policy's limit, with the other workers held before their first
        message. Returns False when the caller's stop signal ended the wait;
        raises the last error when no session could be opened.
        """
        batch = self._batch
        start_others = lambda: _start_all(others)  # noqa: E731
        attempt = 0
        while True:
            try:
                first.open(
                    after_connect=start_others if batch.login_trusted else None,
                    after_greeting=None if batch.login_trusted else start_others,
                    on_capabilities=self._start_composing,
                )
                return True
            except SMTPSessionRefusedError as exc:
                attempt += 1
                if exc.code is None or attempt > self.retry.max_retries:
                    raise
                pause = self.retry.delay(attempt)
                batch.log_throttle(batch.limit.session_refused(exc.code, exc.reply), pause)
                if not self._wait_before_retry(pause):
                    return False

    def _wait_before_retry(self, seconds: float) -> bool:
        """Sleep ``seconds``; False as soon as the caller's stop signal is set."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self._user_stop_requested():
                return False
            time.sleep(min(remaining, _STOP_POLL_S))
        return not self._user_stop_requested()

    def _stop_others(self, others: list[_WorkerThread]) -> None:
        """Cut off the other workers' sessions, which hold no row yet, and wait for them."""
        for connection in list(self._batch.connections):
            connection.abort()
        _join_all(others, time.monotonic() + self.config.connect_timeout + _JOIN_GRACE_S)

    def _start_composing(self, capabilities: ServerCapabilities) -> None:
        """Give the plan the first server's capabilities and start composing rows.

        Whether the server offers SMTPUTF8, and its SIZE limit, are known only
        after EHLO, so no row is composed before the first connection's EHLO.
        """
        batch = self._batch
        if self._composer_thread is not None:
            # A retried first connection reached the same server again.
            return
        self.plan = batch.plan = self.plan.with_server(capabilities)
        self._composer_thread = threading.Thread(
            target=batch.composer.run, name="mailkit-composer", daemon=True
        )
        self._composer_thread.start()

    def _stop_composing(self) -> None:
        """End the composer thread, if it started, after the row it is building."""
        self._batch.composer.close()
        if self._composer_thread is not None:
            self._composer_thread.join(_ABORT_JOIN_S)

    def _user_stop_requested(self) -> bool:
        return self._batch.user_stop_requested(USER_STOP_REASON)

    def _collect(self, workers: list[_WorkerThread], bar: Any) -> None:
        done = 0
        running = len(workers)
        while running:
            self._log_router.write_held()
            # Checked before every event, because a batch whose rows finish
            # more often than every _STOP_POLL_S never leaves the queue empty.
            self._user_stop_requested()
            try:
                kind, payload = self._batch.events.get(timeout=_STOP_POLL_S)
            except queue.Empty:
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
        result = self._batch.reported[position]
        if result is None or not self._store(position, result):
            return
        if result.status != SENT:
            logger.warning(
                "row %r to %s: %s (%s)",
                result.label,
                result.to,
                result.status,
                result.error,
                extra={ROW_ATTRIBUTE: result.label},
            )
        self._counts[result.status] = self._counts.get(result.status, 0) + 1
        if bar is not None:
            # The counts go in first, so that the redraw of update() shows them.
            bar.set_postfix(self._counts, refresh=False)
            bar.update(1)
        if self.progress_callback is not None:
            self.progress_callback(done, self._to_send, result.as_record())

    def _shut_down(
        self, workers: list[_WorkerThread], bar: Any, reason: str
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
                    len(self._batch.in_flight),
                )
                abort = True

    def _stop_now(
        self, workers: list[_WorkerThread], bar: Any, reason: str, *, abort: bool
    ) -> None:
        batch = self._batch
        batch.halt(reason)
        if not abort:
            _join_all(workers, time.monotonic() + self.config.timeout + _JOIN_GRACE_S)
        if any(worker.running for worker in workers):
            for connection in list(batch.connections):
                connection.abort()
            _join_all(workers, time.monotonic() + _ABORT_JOIN_S)
        while True:
            try:
                kind, payload = batch.events.get_nowait()
            except queue.Empty:
                break
            if kind == "row" and self._store(payload, batch.reported[payload]):
                if bar is not None:
                    bar.update(1)

    def _finish(self, started: float) -> pd.DataFrame:
        batch = self._batch
        reason = batch.stop_reason or "the run stopped before this row"
        for position, result in enumerate(self._results):
            if result is not None:
                continue
            reported = batch.reported[position]
            if reported is not None:
                self._store(position, reported)
                continue
            self._store(position, self._unfinished_result(position, reason))
        elapsed = time.monotonic() - started
        results = build_results(
            self.df.index,
            self._results,  # type: ignore[arg-type]
            attrs=self._metadata(elapsed),
        )
        counts = results["status"].value_counts()
        logger.info(
            "finished %d rows in %.2f s: %s",
            self._total,
            elapsed,
            ", ".join(f"{count} {status}" for status, count in counts.items() if count),
        )
        return results

    def _unfinished_result(self, position: int, reason: str) -> RowResult:
        """Return the result of a row that had no final result when the run ended."""
        batch = self._batch
        if position in batch.in_flight:
            return RowResult(
                label=position,
                to=self._recipient_text(position),
                status=UNKNOWN,
                error=f"The message may have been delivered: {reason} while it "
                "was being sent, before the server's reply. It is not sent again "
                "automatically.",
            )
        entry = batch.entries.get(position)
        if entry is not None and entry.result.attempts > 0:
            # Tried before and waiting for a retry when the run stopped.
            unfinished = dataclasses.replace(entry.result)
            unfinished.error = (
                f"{unfinished.error} It was not tried again because {reason}."
            ).strip()
            return unfinished
        return RowResult(
            label=position,
            to=self._recipient_text(position),
            status=SKIPPED,
            error=f"Not sent: {reason}.",
        )

    def _metadata(self, elapsed: float) -> dict[str, Any]:
        batch = self._batch
        limit = batch.limit
        return {
            "mode": self.settings.mode,
            "workers": self.settings.workers,
            "server": self.config.url,
            "elapsed_s": elapsed,
            "stop_reason": batch.stop_reason,
            "max_connections": limit.maximum,
            "rate_per_s": self.settings.rate,
            "adaptive": self.settings.adaptive,
            "connection_limit": limit.limit,
            "lowest_connection_limit": limit.lowest_limit,
            "peak_connections": limit.peak_open,
            "connections_opened": batch.connections_opened,
            "reconnects": batch.reconnects,
            "recycled_connections": batch.recycled,
            "throttle_events": limit.throttle_count,
            "throttle_log": [dataclasses.asdict(event) for event in limit.events],
            "tls_verify": self.config.tls_verify,
            **self.metadata,
            **self._ledger.attrs,
        }

    def _recipient_text(self, position: int) -> str:
        return self._batch.recipient_text(position)


class _WorkerThread(threading.Thread):
    """The thread of one worker, with its own record of having ended.

    The shutdown waits on ``ended`` rather than ``is_alive()``: in CPython 3.11
    a KeyboardInterrupt that lands inside ``join()`` makes
    ``threading.Thread._wait_for_tstate_lock`` release the running thread's own
    lock and mark it stopped, so ``is_alive()`` returns False while it runs.
    """

    def __init__(self, worker: Worker, index: int) -> None:
        super().__init__(target=worker.run, name=f"mailkit-worker-{index}", daemon=True)
        self.ended = threading.Event()

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.ended.set()

    @property
    def running(self) -> bool:
        """Started and not ended."""
        return self.ident is not None and not self.ended.is_set()


def _start_all(workers: list[_WorkerThread]) -> None:
    """Start the workers not started yet."""
    for worker in workers:
        if worker.ident is None:
            worker.start()


def _join_all(workers: list[_WorkerThread], deadline: float) -> None:
    """Wait for the started workers to end, until the monotonic ``deadline``.

    Waits in short slices so that a KeyboardInterrupt raised without a real
    signal is noticed between them.
    """
    for worker in workers:
        while worker.running:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            worker.ended.wait(min(_STOP_POLL_S, remaining))
        if worker.ident is not None:
            # The thread returns right after setting ``ended``.
            worker.join(max(0.0, min(_STOP_POLL_S, deadline - time.monotonic())))
