"""The three sending modes, as settings of the one engine.

``instant`` runs several workers, each with its own connection; ``fast`` runs one
worker with no pauses; ``safe`` runs one worker and waits ``delay`` seconds (plus
up to ``jitter`` seconds) between the starts of two messages.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

from .errors import ConfigurationError

__all__ = ["MODES", "Pacer", "RunSettings", "resolve_mode"]

MODES = ("instant", "fast", "safe")
DEFAULT_MAX_WORKERS = 10
DEFAULT_SAFE_DELAY = 1.0


@dataclass(frozen=True)
class RunSettings:
    """How many workers send, and the minimum seconds between message starts."""

    mode: str
    workers: int
    interval: float
    jitter: float


def resolve_mode(
    mode: str,
    *,
    max_workers: int = DEFAULT_MAX_WORKERS,
    delay: float | None = None,
    jitter: float = 0.0,
    rate: float | None = None,
) -> RunSettings:
    """Return the settings of ``mode``.

    ``rate`` (messages per second, over all workers together) overrides the
    interval of any mode; ``delay`` is the pause of safe mode in seconds.
    """
    if mode not in MODES:
        raise ConfigurationError(
            f"Invalid mode {mode!r}: use 'instant', 'fast' or 'safe'."
        )
    if not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1:
        raise ConfigurationError(
            f"Invalid max_workers {max_workers!r}: give a whole number of 1 or more."
        )
    for name, value in (("delay", delay), ("jitter", jitter), ("rate", rate)):
        if value is not None and not (0 <= value < float("inf")):
            raise ConfigurationError(
                f"Invalid {name} {value!r}: give a finite number of 0 or more."
            )
    if delay is not None and mode != "safe":
        raise ConfigurationError(
            f"delay= applies to mode='safe' only; for mode={mode!r} use rate= "
            "(messages per second) instead."
        )
    workers = max_workers if mode == "instant" else 1
    interval = 0.0
    if mode == "safe":
        interval = DEFAULT_SAFE_DELAY if delay is None else float(delay)
    if rate:
        interval = 1.0 / rate
    return RunSettings(mode=mode, workers=workers, interval=interval, jitter=float(jitter))


class Pacer:
    """Spaces message starts at least ``interval`` seconds apart over all workers."""

    def __init__(self, interval: float, jitter: float = 0.0) -> None:
        self.interval = interval
        self.jitter = jitter
        self._next_start = time.monotonic()
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event) -> bool:
        """Block until this worker may start a message; False if ``stop`` was set."""
        if self.interval <= 0 and self.jitter <= 0:
            return not stop.is_set()
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self.interval + random.uniform(0, self.jitter)
        if start > now:
            return not stop.wait(start - now)
        return not stop.is_set()
