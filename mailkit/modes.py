"""The three sending modes, as settings of the one engine.

``instant`` runs several workers, each with its own connection; ``fast`` runs one
worker with no pauses; ``safe`` runs one worker at a rate of one message per
``delay`` seconds, plus up to ``jitter`` seconds. ``rate`` caps the messages per
second over all workers together in any mode.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from .errors import ConfigurationError
from .ratelimit import parse_rate

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_WORKERS",
    "DEFAULT_MODE",
    "DEFAULT_SAFE_DELAY",
    "MODES",
    "RunSettings",
    "resolve_mode",
]

MODES = ("instant", "fast", "safe")
#: The mode of send_bulk and of ``mailkit send`` when none is given.
DEFAULT_MODE = "instant"
DEFAULT_MAX_WORKERS = 10
#: Concurrent SMTP sessions at most, unless the caller or a provider preset sets
#: another cap. Small, because providers cap sessions per account (Microsoft 365
#: at 3) and reply 421 or 432 to more.
DEFAULT_MAX_CONNECTIONS = 10
DEFAULT_SAFE_DELAY = 1.0


@dataclass(frozen=True)
class RunSettings:
    """How many connections send, and how fast.

    ``workers`` is the number of connections (one worker thread each) at most.
    ``rate`` is messages per second over all workers, or None for no limit;
    ``burst`` messages may start back to back within it. ``adaptive`` lowers the
    number of connections when the server throttles, and raises it again
    gradually. ``max_messages_per_connection`` closes a connection after that
    many messages and opens a new one.
    """

    mode: str
    workers: int
    rate: float | None
    jitter: float
    burst: int = 1
    adaptive: bool = True
    max_messages_per_connection: int | None = None

    @property
    def interval(self) -> float:
        """Seconds between message starts at the rate limit (0 for no limit)."""
        return 1.0 / self.rate if self.rate else 0.0


def _check_count(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(
            f"Invalid {name} {value!r}: give a whole number of 1 or more."
        )


def resolve_mode(
    mode: str,
    *,
    max_workers: int = DEFAULT_MAX_WORKERS,
    max_connections: int | None = None,
    delay: float | None = None,
    jitter: float = 0.0,
    rate: float | str | None = None,
    burst: int = 1,
    adaptive: bool = True,
    max_messages_per_connection: int | None = None,
    default_rate: float | None = None,
) -> RunSettings:
    """Return the settings of ``mode``.

    ``rate`` (messages per second as a number, or a string such as "30/min")
    holds over all workers together; None or 0 means no limit. ``delay`` is
    the pause of safe mode in seconds. ``default_rate`` (a provider's
    published rate) applies when ``rate`` is not given. A rate only ever slows
    sending down: safe mode takes the lower of the rate and one message per
    ``delay``. Instant mode
    opens ``min(max_workers, max_connections)`` connections;
    ``max_connections`` defaults to :data:`DEFAULT_MAX_CONNECTIONS`.
    """
    if mode not in MODES:
        raise ConfigurationError(
            f"Invalid mode {mode!r}: use 'instant', 'fast' or 'safe'."
        )
    _check_count("max_workers", max_workers)
    _check_count("max_connections", max_connections, allow_none=True)
    _check_count("burst", burst)
    _check_count(
        "max_messages_per_connection", max_messages_per_connection, allow_none=True
    )
    for name, value in (("delay", delay), ("jitter", jitter)):
        if value is None:
            continue
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not (
            0 <= value < float("inf")
        ):
            raise ConfigurationError(
                f"Invalid {name} {value!r}: give a finite number of 0 or more."
            )
    if delay is not None and mode != "safe":
        raise ConfigurationError(
            f"delay= applies to mode='safe' only; for mode={mode!r} use rate= "
            "(messages per second, or a string such as '30/min') instead."
        )
    if not isinstance(adaptive, bool):
        raise ConfigurationError(f"Invalid adaptive {adaptive!r}: give True or False.")
    messages_per_second = parse_rate(rate) if rate is not None else default_rate
    cap = DEFAULT_MAX_CONNECTIONS if max_connections is None else max_connections
    workers = min(max_workers, cap) if mode == "instant" else 1
    if mode == "safe":
        pause = DEFAULT_SAFE_DELAY if delay is None else float(delay)
        safe_rate = 1.0 / pause if pause > 0 else None
        rates = [value for value in (safe_rate, messages_per_second) if value]
        messages_per_second = min(rates) if rates else None
    return RunSettings(
        mode=mode,
        workers=workers,
        rate=messages_per_second,
        jitter=float(jitter),
        burst=burst,
        adaptive=adaptive,
        max_messages_per_connection=max_messages_per_connection,
    )
