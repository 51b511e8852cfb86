"""Work that the forms run off the kernel's main thread.

A click handler runs in the kernel's main thread, and the kernel handles no
other message (another cell, a Stop click) until it returns. So the forms start
slow work (a connection test, a test message, a batch) in a background thread
and return at once. Only one background thread per form updates widgets, and no
background thread prints, displays or enters an Output context, because
current ipykernel versions send such output to the wrong cell or drop it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd

from ..engine import ProgressCallback
from ..stop import StopToken

__all__ = ["BackgroundTask", "BatchProgress", "BatchRun"]

logger = logging.getLogger(__name__)

#: Seconds between two updates of the progress widgets during a batch.
DISPLAY_INTERVAL_S = 0.1
#: Lines of mailkit's log kept for the form's log view.
MAX_LOG_LINES = 200


class BackgroundTask:
    """Runs one function at a time in a daemon thread named ``mailkit-widget-*``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self, target: Callable[[], Any]) -> bool:
        """Start ``target`` in a new thread; False, and nothing started, if busy."""
        with self._lock:
            if self.running:
                return False
            self._thread = threading.Thread(
                target=self._run, args=(target,), name=f"mailkit-widget-{self.name}",
                daemon=True,
            )
            self._thread.start()
            return True

    def _run(self, target: Callable[[], Any]) -> None:
        try:
            target()
        except Exception:  # noqa: BLE001 - the thread would otherwise die silently
            logger.exception("the background task %r failed", self.name)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the running function; True once nothing is running."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running


@dataclass
class BatchProgress:
    """The state of a running batch as the progress widgets show it."""

    total: int
    done: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    log_lines: list[str] = field(default_factory=list)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started


class _QueueLogHandler(logging.Handler):
    """Puts mailkit's log lines on the event queue of a batch."""

    def __init__(self, events: queue.SimpleQueue) -> None:
        super().__init__(level=logging.INFO)
        self._events = events
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._events.put(("log", self.format(record)))
        except Exception:  # noqa: BLE001 - logging must never break the batch
            self.handleError(record)


SendFunction = Callable[[ProgressCallback, StopToken], pd.DataFrame]


class BatchRun:
    """One ``send_bulk`` call in a background thread, shown by a second one.

    ``send(progress_callback, stop)`` runs in the thread ``mailkit-widget-batch``
    and must call ``send_bulk`` with both arguments and ``progress=False``. Its
    progress callback only puts events on a queue. The thread
    ``mailkit-widget-display`` reads the queue and calls ``on_progress`` at most
    every DISPLAY_INTERVAL_S seconds and ``on_finish(results, error)`` once at
    the end: those two callbacks are the only code that touches widgets. While
    the batch runs, records of the ``mailkit`` logger also go to the queue, so
    they appear in the form instead of on stderr.

    NOTE: a Python warning raised in a worker thread, such as the one for
    ``tls_verify=False``, still goes to stderr. Redirecting warnings would
    change process-wide state. The settings form shows that warning too.
    """

    def __init__(
        self,
        send: SendFunction,
        total: int,
        *,
        on_progress: Callable[[BatchProgress], None],
        on_finish: Callable[[pd.DataFrame | None, BaseException | None], None],
    ) -> None:
        self._send = send
        self.progress = BatchProgress(total=total)
        self._on_progress = on_progress
        self._on_finish = on_finish
        self.token = StopToken()
        self._events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._log_handler = _QueueLogHandler(self._events)
        self._batch = BackgroundTask("batch")
        self._display = BackgroundTask("display")
        self.results: pd.DataFrame | None = None
        self.error: BaseException | None = None

    @property
    def running(self) -> bool:
        return self._batch.running or self._display.running

    def start(self) -> None:
        logging.getLogger("mailkit").addHandler(self._log_handler)
        self._display.start(self._show)
        self._batch.start(self._run_batch)

    def stop(self) -> None:
        """Ask the batch to start no new message; it ends after the current ones."""
        self.token.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the batch and its display have finished; True when they have."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for task in (self._batch, self._display):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            task.join(remaining)
        return not self.running

    # -- thread mailkit-widget-batch ----------------------------------------------

    def _report(self, done: int, total: int, row: dict[str, Any]) -> None:
        self._events.put(("row", done, str(row["status"])))

    def _run_batch(self) -> None:
        results = None
        error = None
        try:
            results = self._send(self._report, self.token)
        except BaseException as exc:  # noqa: BLE001 - shown in the form
            error = exc
        finally:
            logging.getLogger("mailkit").removeHandler(self._log_handler)
            self._events.put(("end", results, error))

    # -- thread mailkit-widget-display --------------------------------------------

    def _show(self) -> None:
        progress = self.progress
        changed = True
        next_update = time.monotonic()
        while True:
            timeout = max(0.0, next_update - time.monotonic())
            try:
                event = self._events.get(timeout=timeout)
            except queue.Empty:
                event = None
            if event is not None and event[0] == "end":
                self.results, self.error = event[1], event[2]
                break
            if event is not None:
                self._apply(event)
                changed = True
            if changed and time.monotonic() >= next_update:
                self._call(self._on_progress, progress)
                changed = False
                next_update = time.monotonic() + DISPLAY_INTERVAL_S
        self._drain()
        self._call(self._on_progress, progress)
        self._call(self._on_finish, self.results, self.error)

    def _apply(self, event: tuple[Any, ...]) -> None:
        progress = self.progress
        if event[0] == "row":
            _, done, status = event
            progress.done = done
            progress.counts[status] = progress.counts.get(status, 0) + 1
        elif event[0] == "log":
            progress.log_lines.append(event[1])
            del progress.log_lines[:-MAX_LOG_LINES]

    def _drain(self) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            self._apply(event)

    @staticmethod
    def _call(callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:  # noqa: BLE001 - a display bug must not hide the results
            logger.exception("updating the form failed")
