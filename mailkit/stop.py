"""Stopping a running batch from another thread: :class:`StopToken`."""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

__all__ = ["USER_STOP_REASON", "StopSignal", "StopToken", "check_stop_signal"]

#: The reason recorded for rows that were not sent because the caller set the token.
USER_STOP_REASON = "stopped by the user"


@runtime_checkable
class StopSignal(Protocol):
    """Anything with ``is_set()``, such as :class:`threading.Event`."""

    def is_set(self) -> bool: ...


class StopToken(threading.Event):
    """A request to stop a batch, set from any thread.

    Pass it as ``send_bulk(..., stop=token)`` and call ``token.set()`` from
    another thread (a Stop button, a signal handler, a timer). The batch then
    starts no new message and stops waiting on pauses and retries; messages
    already in an SMTP transaction finish. ``send_bulk`` returns the results as
    usual: rows that were not sent have status ``skipped`` and the error
    "Not sent: stopped by the user.", and ``results.attrs["stop_reason"]`` is
    set. A plain :class:`threading.Event` works the same way; a token set before
    the call sends nothing and opens no connection.
    """

    def __repr__(self) -> str:
        return f"StopToken(set={self.is_set()})"


def check_stop_signal(stop: object) -> StopSignal | None:
    """Return ``stop`` when it can be used as ``send_bulk(stop=...)``, else raise."""
    if stop is None or isinstance(stop, StopSignal):
        return stop  # type: ignore[return-value]
    raise TypeError(
        f"Invalid stop={stop!r}: pass a mailkit.StopToken or a threading.Event."
    )
