"""How often and after how long a temporary failure is tried again."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import ConfigurationError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of temporary failures that happen before the hand-over.

    The n-th retry waits ``backoff * 2 ** (n - 1)`` seconds plus up to
    ``backoff`` seconds of jitter, at most ``max_delay`` seconds. The same
    delays space the attempts to open a connection after a refusal and the
    pauses after throttling. A row whose outcome is unknown (the connection was
    lost after the final ".") is never retried, because the message may
    already have been delivered.
    """

    max_retries: int = 3
    backoff: float = 1.0
    max_delay: float = 300.0

    def __post_init__(self) -> None:
        if (
            not isinstance(self.max_retries, int)
            or isinstance(self.max_retries, bool)
            or self.max_retries < 0
        ):
            raise ConfigurationError(
                f"Invalid max_retries {self.max_retries!r}: give a whole number of 0 "
                "or more."
            )
        for name in ("backoff", "max_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (
                isinstance(value, (int, float)) and 0 <= value < float("inf")
            ):
                raise ConfigurationError(
                    f"Invalid {name} {value!r}: give a finite number of seconds of 0 "
                    "or more."
                )

    def delay(self, retry: int) -> float:
        """Return the seconds to wait before the ``retry``-th retry (1 for the first)."""
        base = self.backoff * 2 ** min(max(retry, 1) - 1, 30)
        return min(base + random.uniform(0, self.backoff), self.max_delay)
