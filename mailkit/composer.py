"""Composing rows ahead of the workers, so that building messages overlaps network waits.

Every row is composed exactly once, so a retry sends the same bytes with the
same Message-ID. A composer thread builds rows in send order while the workers
wait for the server, and a worker that reaches a row the thread has not built
yet builds it itself.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from .compose import Outgoing
from .results import RowResult

__all__ = ["Composer", "RowEntry"]

#: Rows composed ahead of the workers at most.
MAX_AHEAD_ROWS = 256
#: Bytes of composed messages kept ahead of the workers at most, so that rows
#: with large attachments are not all held in memory at once.
MAX_AHEAD_BYTES = 16 * 1024 * 1024
# Pause of the composer thread after each row, in seconds: without it, a
# worker woken by a server reply waits for the GIL up to the switch interval.
_YIELD_S = 0.0005
# Maximum single wait of the composer, so that a stop is noticed within this time.
_POLL_S = 0.1


@dataclass
class RowEntry:
    """A composed row that is not finished yet.

    ``outgoing`` is None when the row could not be composed, and ``result``
    then gives the reason.
    """

    outgoing: Outgoing | None
    result: RowResult
    retries: int = 0
    # Whether the one free resend after a stale connection was used (see
    # Worker._decide).
    stale_resend_used: bool = False

    @property
    def size(self) -> int:
        return len(self.outgoing.data) if self.outgoing is not None else 0


class Composer:
    """The composed rows of one batch; ``compose(position)`` builds one row's entry.

    :meth:`run` is the body of the composer thread. It builds rows in the order
    of ``positions`` and keeps at most ``max_rows`` rows and ``max_bytes`` bytes
    that no worker has taken yet.
    """

    def __init__(
        self,
        compose: Callable[[int], RowEntry],
        positions: Sequence[int],
        *,
        max_rows: int = MAX_AHEAD_ROWS,
        max_bytes: int = MAX_AHEAD_BYTES,
    ) -> None:
        self._compose = compose
        self._positions = list(positions)
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.entries: dict[int, RowEntry] = {}
        self._claimed: set[int] = set()
        self._finished: set[int] = set()
        self._ahead: set[int] = set()
        self._ahead_bytes = 0
        self._closed = threading.Event()
        self._condition = threading.Condition()

    def get(self, position: int) -> RowEntry:
        """Return the row's entry, composing it now when no thread has built it."""
        with self._condition:
            while True:
                entry = self.entries.get(position)
                if entry is not None:
                    self._take(position, entry)
                    return entry
                if position not in self._claimed:
                    self._claimed.add(position)
                    break
                # The composer thread is building this row right now.
                self._condition.wait(_POLL_S)
        return self._build(position, ahead=False)

    def finished(self, position: int) -> None:
        """Forget a finished row, so that its message can be freed."""
        with self._condition:
            self._finished.add(position)
            entry = self.entries.pop(position, None)
            if entry is not None:
                self._take(position, entry)

    def close(self) -> None:
        """Stop the composer thread after the row it is building."""
        self._closed.set()
        with self._condition:
            self._condition.notify_all()

    def run(self) -> None:
        for position in self._positions:
            with self._condition:
                while self._full() and not self._closed.is_set():
                    self._condition.wait(_POLL_S)
                if self._closed.is_set():
                    return
                if (
                    position in self.entries
                    or position in self._claimed
                    or position in self._finished
                ):
                    continue
                self._claimed.add(position)
            self._build(position, ahead=True)
            # Other threads waiting for the GIL get it during this pause
            # instead of after the interpreter's switch interval (5 ms).
            time.sleep(_YIELD_S)

    def _build(self, position: int, *, ahead: bool) -> RowEntry:
        try:
            entry = self._compose(position)
        except BaseException:
            with self._condition:
                self._claimed.discard(position)
                self._condition.notify_all()
            raise
        with self._condition:
            self._claimed.discard(position)
            self.entries[position] = entry
            if ahead:
                self._ahead.add(position)
                self._ahead_bytes += entry.size
            self._condition.notify_all()
        return entry

    def _take(self, position: int, entry: RowEntry) -> None:
        if position in self._ahead:
            self._ahead.discard(position)
            self._ahead_bytes -= entry.size
            self._condition.notify_all()

    def _full(self) -> bool:
        return len(self._ahead) >= self.max_rows or self._ahead_bytes >= self.max_bytes
