"""A capture SMTP server on 127.0.0.1 that waits before accepting each message.

Tests use it to keep a batch running long enough to observe it (the Send button
disabled, a Stop taking effect). The wait is asynchronous, so several sessions
wait in parallel, as they would against a slow real server. It can also refuse
chosen recipients with 550 and offer AUTH PLAIN and LOGIN for one user and
password, offered without TLS.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

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

    async def handle_RCPT(
        self,
        smtp: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self._owner.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

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
    """Accept each message after ``delay`` seconds; use as a context manager.

    Recipients in ``refuse`` get 550 at RCPT. With ``login`` (user, password),
    the server offers AUTH on the plain connection and accepts only that pair;
    ``logins`` records each attempt as (user, accepted).
    """

    def __init__(
        self,
        delay: float = 0.0,
        *,
        refuse: frozenset[str] = frozenset(),
        login: tuple[str, str] | None = None,
    ) -> None:
        self.delay = delay
        self.refuse = refuse
        self.login = login
        self.logins: list[tuple[str, bool]] = []
        self._lock = threading.Lock()
        self._messages: list[Received] = []
        auth = {}
        if login is not None:
            auth = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = _Controller(
            _Handler(self), hostname=HOST, port=0, ready_timeout=10.0, **auth
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
        auth_data: object,
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode()
        accepted = (user, auth_data.password.decode()) == self.login
        with self._lock:
            self.logins.append((user, accepted))
        # handled=False lets aiosmtpd send the 235 or 535 reply itself.
        return AuthResult(success=accepted, handled=False)

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
