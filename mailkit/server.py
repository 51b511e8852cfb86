"""A local capture SMTP server on 127.0.0.1, for demos, tests and dry runs.

It accepts every message, keeps the envelope and the raw bytes in memory and,
when given a folder, stores each message in a Maildir there. It never relays.
"""

from __future__ import annotations

import email
import email.policy
import logging
import mailbox
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from .errors import ConfigurationError

__all__ = ["CapturedMessage", "LocalSMTPServer"]

logger = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"


@dataclass(frozen=True)
class CapturedMessage:
    """One message as the server received it: envelope and DATA bytes (CRLF kept)."""

    envelope_from: str
    recipients: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...] = ()
    session: int = 0
    received_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def message(self) -> EmailMessage:
        """The bytes parsed with ``email.policy.default``."""
        return email.message_from_bytes(self.data, policy=email.policy.default)


class _Handler:
    def __init__(self, server: LocalSMTPServer) -> None:
        self._server = server

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        captured = CapturedMessage(
            envelope_from=envelope.mail_from or "",
            recipients=tuple(envelope.rcpt_tos),
            data=data,
            mail_options=tuple(envelope.mail_options),
            session=getattr(session, "mailkit_session", 0),
        )
        self._server._store(captured)
        return "250 2.0.0 Message accepted for delivery"


class _CountingSMTP(SMTP):
    """aiosmtpd's SMTP protocol, counting sessions for the tests and the log."""

    def __init__(self, *args: Any, owner: LocalSMTPServer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner = owner

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.session.mailkit_session = self._owner._session_opened()

    def connection_lost(self, error: Exception | None) -> None:
        self._owner._session_closed()
        super().connection_lost(error)


class _Controller(Controller):
    """A Controller that can listen on port 0 and report the port it got."""

    def __init__(self, owner: LocalSMTPServer, port: int) -> None:
        self._owner = owner
        super().__init__(
            _Handler(owner),
            hostname=LOCALHOST,
            port=port,
            ready_timeout=10.0,
            server_hostname="mailkit-capture.localhost",
            enable_SMTPUTF8=True,
            data_size_limit=0,
        )

    def factory(self) -> SMTP:
        return _CountingSMTP(self.handler, owner=self._owner, **self.SMTP_kwargs)

    def _run(self, ready_event: threading.Event) -> None:
        super()._run(ready_event)
        # aiosmtpd 1.4 returns without setting ready_event when the bind fails, so
        # start() would wait the whole ready_timeout and leave the loop open.
        if self._thread_exception is not None:
            self.loop.close()
            ready_event.set()

    def _trigger_server(self) -> None:
        if self._thread_exception is not None:
            raise self._thread_exception
        # The server was bound to port 0; the readiness check must use the real one.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def _open_maildir(path: Path) -> mailbox.Maildir:
    # mailbox.Maildir(create=True) leaves an existing empty folder without the
    # tmp, new and cur subfolders it needs.
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return mailbox.Maildir(path, create=False)


class LocalSMTPServer:
    """An SMTP server on 127.0.0.1 that captures every message it receives.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. ``port=0``
    picks a free port; ``url`` is the value to pass as ``send_bulk(smtp=...)``.
    With ``maildir``, each message is also stored in that Maildir folder.
    """

    def __init__(self, maildir: str | Path | None = None, port: int = 0) -> None:
        valid = isinstance(port, int) and not isinstance(port, bool)
        if not valid or not 0 <= port <= 65535:
            raise ConfigurationError(
                f"Invalid port {port!r}: use 0 to 65535 (0 picks a free port)."
            )
        self.maildir = Path(maildir) if maildir is not None else None
        self._requested_port = port
        self._controller: _Controller | None = None
        self._lock = threading.Lock()
        self._messages: list[CapturedMessage] = []
        self._mailbox = _open_maildir(self.maildir) if self.maildir else None
        self.sessions = 0
        self.active_sessions = 0
        self.max_active_sessions = 0

    @property
    def host(self) -> str:
        return LOCALHOST

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("The server is not running; call start() first.")
        return self._controller.port

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def messages(self) -> list[CapturedMessage]:
        """Every message received so far, in order."""
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        """Forget the messages and session counts held in memory."""
        with self._lock:
            self._messages.clear()
            self.sessions = 0
            self.max_active_sessions = self.active_sessions

    def start(self) -> LocalSMTPServer:
        if self._controller is not None:
            raise RuntimeError("The server is already running.")
        controller = _Controller(self, self._requested_port)
        controller.start()
        self._controller = controller
        self.clear()
        logger.info("capture server listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._controller is None:
            return
        self._controller.stop()
        self._controller = None
        logger.info("capture server stopped after %d message(s)", len(self._messages))

    def __enter__(self) -> LocalSMTPServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._controller else "stopped"
        return f"LocalSMTPServer({where}, messages={len(self._messages)})"

    # -- called from the server's event loop thread ----------------------------

    def _store(self, captured: CapturedMessage) -> None:
        with self._lock:
            self._messages.append(captured)
        if self._mailbox is not None:
            self._mailbox.add(captured.data)

    def _session_opened(self) -> int:
        with self._lock:
            self.sessions += 1
            self.active_sessions += 1
            self.max_active_sessions = max(self.max_active_sessions, self.active_sessions)
            return self.sessions

    def _session_closed(self) -> None:
        with self._lock:
            self.active_sessions -= 1
