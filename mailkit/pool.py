"""The cap on concurrent SMTP sessions, shared by all workers, and its adaptation.

Each worker holds a slot of :class:`ConnectionLimit` while its connection is
open, so the number of sessions never exceeds ``maximum``. With ``adaptive``,
throttling lowers the limit and accepted messages raise it again, one slot at a
time (additive increase, multiplicative decrease, as in TCP congestion control):

- a refused new session (421 or 454 at connect, EHLO or AUTH, or a refused TCP
  connection) means the server's session cap is the number of sessions that
  are open now, so the limit drops to that number;
- throttling inside a session (421 or 454 to MAIL, RCPT, DATA or the message)
  halves the limit.

After ``recover_after(limit)`` accepted messages without throttling the limit
grows by one, so a batch finds the server's cap without being told it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

__all__ = ["ConnectionLimit", "ThrottleEvent"]

logger = logging.getLogger(__name__)

# Longest single wait inside acquire(), so that a stop or the end of the work is
# noticed within this time.
_POLL_S = 0.1
# Throttle events kept in memory for the results metadata; later ones are only
# counted.
_MAX_EVENTS_KEPT = 100


@dataclass(frozen=True)
class ThrottleEvent:
    """One throttling reply or refused session, as stored in the results metadata."""

    #: Seconds since the limit was created.
    at_s: float
    #: "session refused" or "throttled in session".
    kind: str
    code: int | None
    reply: str
    #: The connection limit after the event.
    limit: int


def _default_recover_after(limit: int) -> int:
    # Two messages per connection at the current limit: one probe per two rounds.
    return max(4, 2 * limit)


class ConnectionLimit:
    """Slots for concurrent sessions; ``limit`` adapts between 1 and ``maximum``."""

    def __init__(
        self,
        maximum: int,
        *,
        adaptive: bool = True,
        recover_after: Callable[[int], int] = _default_recover_after,
    ) -> None:
        self.maximum = maximum
        self.limit = maximum
        self.adaptive = adaptive
        self.lowest_limit = maximum
        self.open = 0
        self.peak_open = 0
        self.throttle_count = 0
        self.events: list[ThrottleEvent] = []
        self._recover_after = recover_after
        self._accepted_since_change = 0
        self._created = time.monotonic()
        self._condition = threading.Condition()

    def acquire(self, stop: threading.Event, finished: Callable[[], bool]) -> bool:
        """Wait for a free slot and take it; False when ``stop`` is set or ``finished()``."""
        with self._condition:
            while self.open >= self.limit:
                if stop.is_set() or finished():
                    return False
                self._condition.wait(_POLL_S)
            if stop.is_set():
                return False
            self.open += 1
            self.peak_open = max(self.peak_open, self.open)
            return True

    def release(self) -> None:
        """Give a slot back after closing a connection."""
        with self._condition:
            self.open -= 1
            self._condition.notify_all()

    def shed(self) -> bool:
        """Give a slot back if more sessions are open than the limit allows.

        Returns True when the caller's slot was taken back; it must then close
        its connection.
        """
        with self._condition:
            if self.open <= self.limit:
                return False
            self.open -= 1
            self._condition.notify_all()
            return True

    def session_refused(self, code: int | None, reply: str) -> ThrottleEvent:
        """Record a refused new session; call after releasing the refused slot."""
        with self._condition:
            if self.adaptive:
                self._lower(max(1, min(self.limit, self.open)))
            return self._record("session refused", code, reply)

    def throttled(self, code: int | None, reply: str) -> ThrottleEvent:
        """Record throttling inside a session."""
        with self._condition:
            if self.adaptive:
                self._lower(max(1, min(self.limit, self.open) // 2))
            return self._record("throttled in session", code, reply)

    def accepted(self) -> None:
        """Count an accepted message; enough of them raise the limit by one."""
        with self._condition:
            self._accepted_since_change += 1
            if not self.adaptive or self.limit >= self.maximum:
                return
            if self._accepted_since_change >= self._recover_after(self.limit):
                self.limit += 1
                self._accepted_since_change = 0
                logger.debug("connection limit raised to %d", self.limit)
                self._condition.notify_all()

    def _lower(self, limit: int) -> None:
        self._accepted_since_change = 0
        if limit < self.limit:
            self.limit = limit
            self.lowest_limit = min(self.lowest_limit, limit)

    def _record(self, kind: str, code: int | None, reply: str) -> ThrottleEvent:
        self.throttle_count += 1
        event = ThrottleEvent(
            at_s=round(time.monotonic() - self._created, 3),
            kind=kind,
            code=code,
            reply=reply,
            limit=self.limit,
        )
        if len(self.events) < _MAX_EVENTS_KEPT:
            self.events.append(event)
        return event
