"""Log output of a batch that keeps progress bars whole.

When the caller has configured no logging handler, Python writes WARNING and
higher records through ``logging.lastResort`` straight to stderr, from whichever
thread logged them, and each line breaks a text progress bar apart. During a
run, :class:`BatchLogRouter` takes the place of ``lastResort`` for mailkit's
loggers. It writes each record through ``tqdm.write``, which clears the bar and
draws it again below the line, and only from the calling thread, because
output from other threads lands in the wrong notebook cell. It also shows only
the first :data:`SHOWN_ROW_WARNINGS` records about single rows, then one line
with the count of the rest. A caller who configured logging gets every record
through their own handlers, unchanged.
"""

from __future__ import annotations

import collections
import logging
import sys
import threading

import tqdm

__all__ = ["ROW_ATTRIBUTE", "SHOWN_ROW_WARNINGS", "BatchLogRouter", "StderrBarHandler"]

#: The LogRecord attribute that marks a record about one row; its value is the
#: row's index label. Pass it as ``extra={ROW_ATTRIBUTE: label}``.
ROW_ATTRIBUTE = "mailkit_row"
#: Records about single rows that one batch writes before it only counts them.
SHOWN_ROW_WARNINGS = 10

_PACKAGE_LOGGER = "mailkit"


def _write_line(text: str) -> None:
    # sys.stderr is looked up on each call, as logging.lastResort does, so that
    # a stream replaced after import (pytest's capture, ipykernel) gets the line.
    tqdm.tqdm.write(text, file=sys.stderr)


class StderrBarHandler(logging.StreamHandler):
    """A stderr handler that writes through ``tqdm.write`` so that open text
    bars are cleared before each line and drawn again after it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _write_line(self.format(record))
        except Exception:  # noqa: BLE001 - the logging module's own convention
            self.handleError(record)


class BatchLogRouter(logging.Handler):
    """The handler of mailkit's records during one batch, when the caller has
    configured none; see the module docstring.

    Build it in the calling thread. Call :meth:`write_held` from that thread to
    write records that other threads logged, and :meth:`remove` when the batch
    ends. Both are no-ops when the caller has configured a handler.
    """

    def __init__(self) -> None:
        # The same threshold and format as logging.lastResort.
        super().__init__(logging.WARNING)
        self._caller = threading.get_ident()
        self._held: collections.deque[logging.LogRecord] = collections.deque()
        self._row_records = 0
        self._logger = logging.getLogger(_PACKAGE_LOGGER)
        self.installed = not self._logger.hasHandlers()
        if self.installed:
            self._logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if threading.get_ident() != self._caller:
            self._held.append(record)
            return
        self._write(record)

    def write_held(self) -> None:
        """Write the records that other threads logged, in the calling thread."""
        while self._held:
            self._write(self._held.popleft())

    def remove(self) -> None:
        """Write what is held and the count of rows not shown, then detach."""
        if not self.installed:
            return
        self.write_held()
        self._logger.removeHandler(self)
        self.installed = False
        hidden = self._row_records - SHOWN_ROW_WARNINGS
        if hidden > 0:
            _write_line(
                f"... and {hidden} more row warning(s) not shown; the results "
                "DataFrame has the status and error of every row."
            )
        self.close()

    def _write(self, record: logging.LogRecord) -> None:
        if hasattr(record, ROW_ATTRIBUTE):
            self._row_records += 1
            if self._row_records > SHOWN_ROW_WARNINGS:
                return
        try:
            _write_line(self.format(record))
        except Exception:  # noqa: BLE001 - the logging module's own convention
            self.handleError(record)
