"""A capture SMTP server on 127.0.0.1 that waits before accepting each message.

Tests use it to keep a batch running long enough to observe it (the Send button
disabled, a Stop taking effect). The wait is asynchronous, so several sessions
wait in parallel, as they would against a slow real server.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One accepted message: envelope and DATA bytes."""

    envelope_from: str
    recipients: tuple[str, ...]
    data: bytes


class _Handler:
    def __init__(self, owner: DelayedSMTPServer) -> None:
        self._owner = owner

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(self._owner.delay)
        self._owner._store(
            Received(
                envelope_from=envelope.mail_from or "",
                recipients=tuple(envelope.rcpt_tos),
                data=envelope.original_content or b"",
            )
        )
        return "250 2.0.0 accepted"


class _Controller(Controller):
    def _trigger_server(self) -> None:
        # Bound to port 0: the readiness check must connect to the real port.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class DelayedSMTPServer:
    """Accept every message after ``delay`` seconds; use as a context manager."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._lock = threading.Lock()
        self._messages: list[Received] = []
        self._controller = _Controller(
            _Handler(self), hostname=HOST, port=0, ready_timeout=10.0
        )

    @property
    def url(self) -> str:
        return f"smtp://{HOST}:{self._controller.port}"

    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    def _store(self, received: Received) -> None:
        with self._lock:
            self._messages.append(received)

    def __enter__(self) -> DelayedSMTPServer:
        self._controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._controller.stop()
