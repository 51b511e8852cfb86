"""Row positions waiting to be sent, shared by the workers, with retry times."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Iterable

__all__ = ["RowQueue"]

# Longest single wait inside take(), so that a stop is noticed within this time.
_POLL_S = 0.1


class RowQueue:
    """Row positions in send order; a row taken is in flight until done() or put_back().

    A row that is put back with a delay (a retry) becomes available again after
    that delay. The queue is finished when no row is waiting and none is in
    flight, because a row in flight may still come back for a retry.
    """

    def __init__(self, positions: Iterable[int]) -> None:
        self._order = itertools.count()
        self._heap: list[tuple[float, int, int]] = [
            (0.0, next(self._order), position) for position in positions
        ]
        heapq.heapify(self._heap)
        self._in_flight = 0
        self._condition = threading.Condition()

    def take(self, stop: threading.Event) -> int | None:
        """Return the next row that is due, waiting for one; None when finished or stopped."""
        with self._condition:
            while not stop.is_set():
                if self._heap:
                    due, _, position = self._heap[0]
                    wait = due - time.monotonic()
                    if wait <= 0:
                        heapq.heappop(self._heap)
                        self._in_flight += 1
                        return position
                elif self._in_flight == 0:
                    return None
                else:
                    wait = _POLL_S
                self._condition.wait(min(wait, _POLL_S))
            return None

    def done(self, position: int) -> None:
        """Mark a taken row as finished."""
        with self._condition:
            self._in_flight -= 1
            self._condition.notify_all()

    def put_back(self, position: int, delay: float = 0.0) -> None:
        """Return a taken row to the queue, available again after ``delay`` seconds."""
        with self._condition:
            self._in_flight -= 1
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order), position))
            self._condition.notify_all()

    def finished(self) -> bool:
        with self._condition:
            return not self._heap and self._in_flight == 0

    def waiting(self) -> list[int]:
        """Return the positions not taken, in the order they would be taken."""
        with self._condition:
            return [position for _, _, position in sorted(self._heap)]
