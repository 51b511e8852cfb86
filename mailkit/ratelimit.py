"""A message rate shared by all workers: a token bucket, and pauses after throttling.

:class:`RateLimiter` is a token bucket kept as the time at which the bucket is
next full (the "generic cell rate algorithm" form): each message start takes one
token, tokens come back at ``rate`` per second, and at most ``burst`` messages
may start back to back. One lock covers every worker, so the limit applies to
all workers together.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time

from .errors import ConfigurationError

__all__ = ["RateLimiter", "parse_rate"]

# How often a worker waiting for the limiter checks the stop event, in seconds.
_LOCK_POLL_S = 0.1

_RATE = re.compile(
    r"^\s*(?P<count>\d+(?:\.\d*)?|\.\d+)\s*(?:/|per\s+)\s*"
    r"(?P<unit>s|sec|second|m|min|minute|h|hr|hour|d|day)s?\s*$",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"^\s*(\d+(\.\d*)?|\.\d+)\s*$")
_UNIT_SECONDS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}


def parse_rate(rate: float | str | None) -> float | None:
    """Return ``rate`` in messages per second; None or 0 means no limit.

    A number, or a string with only a number, is messages per second; a string
    may give its unit, such as ``"30/min"``, ``"0.5/s"`` or ``"1000 per hour"``.
    """
    if rate is None:
        return None
    if isinstance(rate, bool):
        raise ConfigurationError(f"Invalid rate {rate!r}: give messages per second.")
    if isinstance(rate, (int, float)):
        value = float(rate)
    elif isinstance(rate, str) and _NUMBER.match(rate):
        value = float(rate)
    elif isinstance(rate, str):
        match = _RATE.match(rate)
        if match is None:
            raise ConfigurationError(
                f"Invalid rate {rate!r}: give a number of messages per second, or a "
                "string such as '30/min', '2/s' or '1000/hour'."
            )
        value = float(match["count"]) / _UNIT_SECONDS[match["unit"].lower()]
    else:
        raise ConfigurationError(
            f"Invalid rate {rate!r}: give a number of messages per second or a "
            "string such as '30/min'."
        )
    if not math.isfinite(value) or value < 0:
        raise ConfigurationError(
            f"Invalid rate {rate!r}: give a finite number of 0 or more."
        )
    return value or None


class RateLimiter:
    """Spaces message starts over all workers: ``rate`` per second, ``burst`` at once.

    ``rate`` None means no rate limit, but pauses still apply. Each start waits
    an extra random 0 to ``jitter`` seconds. :meth:`pause` holds every start
    back for a while, which the engine does when the server throttles.

    Workers wait one at a time, and the bucket is updated with the time at
    which a worker actually woke up. A worker that wakes up late therefore
    delays the next start instead of letting two starts come closer together
    than the rate allows.
    """

    def __init__(
        self, rate: float | None = None, *, burst: int = 1, jitter: float = 0.0
    ) -> None:
        if burst < 1:
            raise ConfigurationError(f"Invalid burst {burst!r}: give 1 or more.")
        self.rate = rate
        self.burst = burst
        self.jitter = jitter
        self._interval = 1.0 / rate if rate else 0.0
        # The time at which the bucket is next full: a start at time t conforms
        # when t >= self._full_at - (burst - 1) * interval.
        self._full_at = time.monotonic()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    @property
    def limited(self) -> bool:
        return self._interval > 0 or self.jitter > 0

    def _earliest_start(self) -> float:
        start = self._paused_until
        if self.limited:
            start = max(start, self._full_at - (self.burst - 1) * self._interval)
        return start

    def wait(self, stop: threading.Event) -> bool:
        """Block until this worker may start a message; False if ``stop`` was set."""
        while not self._lock.acquire(timeout=_LOCK_POLL_S):
            if stop.is_set():
                return False
        try:
            while True:
                if stop.is_set():
                    return False
                delay = self._earliest_start() - time.monotonic()
                if delay <= 0:
                    break
                # A pause() during the wait moves the earliest start, so the
                # loop checks again after the wait.
                stop.wait(min(delay, _LOCK_POLL_S * 10))
            if self.limited:
                gap = self._interval
                if self.jitter:
                    gap += random.uniform(0, self.jitter)
                self._full_at = max(self._full_at, time.monotonic()) + gap
            return True
        finally:
            self._lock.release()

    def pause(self, seconds: float) -> None:
        """Start no message for ``seconds`` from now (longer pauses win)."""
        until = time.monotonic() + seconds
        # Not under the lock, because a waiting worker holds it while it sleeps.
        self._paused_until = max(self._paused_until, until)
