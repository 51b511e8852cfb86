"""An aiosmtpd server on 127.0.0.1 whose EHLO reply the test chooses.

It offers SMTPUTF8 only when asked, can advertise any SIZE value (also
``SIZE 0``, which aiosmtpd itself never writes), can answer 451 to the first
RCPT of chosen addresses, and records each message with its MAIL FROM
parameters and raw bytes.
"""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Received:
    envelope_from: str
    recipients: tuple[str, ...]
    mail_options: tuple[str, ...]
    data: bytes

    @property
    def message(self):
        return email.message_from_bytes(self.data, policy=email.policy.default)


class _Handler:
    def __init__(self, owner: ExtensionServer) -> None:
        self._owner = owner

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        with self._owner._lock:
            self._owner.sessions += 1
        if self._owner.size is not None:
            responses.insert(-1, f"250-SIZE {self._owner.size}")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self._owner._lock:
            seen = self._owner._rcpt_counts.get(address, 0)
            self._owner._rcpt_counts[address] = seen + 1
        if address in self._owner.defer_first_rcpt and seen == 0:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        received = Received(
            envelope_from=envelope.mail_from or "",
            recipients=tuple(envelope.rcpt_tos),
            mail_options=tuple(envelope.mail_options),
            data=envelope.original_content or b"",
        )
        with self._owner._lock:
            self._owner.messages.append(received)
        return "250 2.0.0 accepted"


class ExtensionServer:
    """Use as a context manager; ``url`` goes to ``send_bulk(smtp=...)``."""

    def __init__(
        self,
        *,
        smtputf8: bool = False,
        size: int | None = None,
        defer_first_rcpt: frozenset[str] = frozenset(),
    ) -> None:
        self.smtputf8 = smtputf8
        self.size = size
        self.defer_first_rcpt = defer_first_rcpt
        self._rcpt_counts: dict[str, int] = {}
        self.sessions = 0
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        assert self._controller is not None
        return f"smtp://127.0.0.1:{self._controller.port}"

    def __enter__(self) -> ExtensionServer:
        controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=0,
            ready_timeout=10.0,
            enable_SMTPUTF8=self.smtputf8,
            data_size_limit=0,
        )
        # Controller binds port 0; read the real port before its readiness check.
        original = controller._trigger_server

        def trigger() -> None:
            controller.port = controller.server.sockets[0].getsockname()[1]
            original()

        controller._trigger_server = trigger
        controller.start()
        self._controller = controller
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
