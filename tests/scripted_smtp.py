"""An SMTP server on 127.0.0.1 for journal and interrupt tests.

It records the time of every MAIL FROM and every message whose content arrived.
It can delay each reply, and stall chosen messages or the EHLO reply until
released. It can also drop the connection after the content instead of
replying, and refuse chosen recipients. It runs in the test process, so it outlives a
sending subprocess that the test kills. Every stall ends by itself after
``max_stall`` seconds.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from dataclasses import dataclass
from typing import Callable

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One message whose content reached the server (whether or not it replied)."""

    number: int
    envelope_from: str
    recipients: tuple[str, ...]
    data: bytes
    at: float

    @property
    def message_id(self) -> str:
        message = email.message_from_bytes(self.data, policy=email.policy.default)
        return str(message["Message-ID"])


class _Handler:
    def __init__(self, owner: ScriptedSMTPServer) -> None:
        self._owner = owner

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        owner = self._owner
        owner.ehlo_seen.set()
        if owner.stall_ehlo:
            await owner._wait_for_release()
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self._owner._record_mail()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self._owner.refuse.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope):
        owner = self._owner
        received = owner._store(envelope)
        if owner.delay:
            await asyncio.sleep(owner.delay)
        if received.number in owner.stall:
            owner.stalled.set()
            await owner._wait_for_release()
        if owner.drop is not None and owner.drop(received):
            # Close without a reply: the client cannot know if the message went.
            server.transport.close()
            return "421 closing"
        owner._accept(received)
        return "250 2.0.0 accepted"


class _Controller(Controller):
    def _trigger_server(self) -> None:
        # Bound to port 0: the readiness check must connect to the real port.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class ScriptedSMTPServer:
    """A recording SMTP server whose misbehaviour each test chooses.

    ``delay`` is the pause before every DATA reply, in seconds. ``stall`` lists
    message numbers (1 for the first message that arrives) whose reply waits
    for :meth:`release`. ``stall_ehlo`` delays every EHLO reply the same way.
    ``drop(received)`` returning True closes the connection instead of
    replying. ``refuse`` maps recipients to the reply their RCPT TO gets.
    ``on_accept(count)`` runs in the server's thread after each accepted message.
    """

    def __init__(
        self,
        *,
        delay: float = 0.0,
        stall: set[int] | None = None,
        stall_ehlo: bool = False,
        drop: Callable[[Received], bool] | None = None,
        refuse: dict[str, str] | None = None,
        on_accept: Callable[[int], None] | None = None,
        max_stall: float = 20.0,
    ) -> None:
        self.delay = delay
        self.stall = set(stall or ())
        self.stall_ehlo = stall_ehlo
        self.drop = drop
        self.refuse = dict(refuse or {})
        self.on_accept = on_accept
        self.max_stall = max_stall
        self.stalled = threading.Event()
        self.ehlo_seen = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._accepted: list[Received] = []
        self._mail_times: list[float] = []
        self._controller = _Controller(
            _Handler(self), hostname=HOST, port=0, ready_timeout=10.0
        )

    @property
    def url(self) -> str:
        return f"smtp://{HOST}:{self._controller.port}"

    @property
    def received(self) -> list[Received]:
        """Every message whose content arrived, in order of arrival."""
        with self._lock:
            return list(self._received)

    @property
    def accepted(self) -> list[Received]:
        """Every message the server accepted with a 250 reply."""
        with self._lock:
            return list(self._accepted)

    @property
    def mail_times(self) -> list[float]:
        """The ``time.monotonic()`` of every MAIL FROM command."""
        with self._lock:
            return list(self._mail_times)

    def wait_for_received(self, count: int, timeout: float = 20.0) -> None:
        """Block until ``count`` messages arrived; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"fewer than {count} messages arrived"
            time.sleep(0.005)

    def release(self) -> None:
        """End every stall, now and for the rest of the server's life."""
        self._released.set()

    def __enter__(self) -> ScriptedSMTPServer:
        self._controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
        self._controller.stop()

    # -- called in the server's event loop thread --------------------------------

    async def _wait_for_release(self) -> None:
        deadline = time.monotonic() + self.max_stall
        while not self._released.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def _record_mail(self) -> None:
        with self._lock:
            self._mail_times.append(time.monotonic())

    def _store(self, envelope: Envelope) -> Received:
        with self._lock:
            received = Received(
                number=len(self._received) + 1,
                envelope_from=envelope.mail_from or "",
                recipients=tuple(envelope.rcpt_tos),
                data=envelope.original_content or b"",
                at=time.monotonic(),
            )
            self._received.append(received)
        return received

    def _accept(self, received: Received) -> None:
        with self._lock:
            self._accepted.append(received)
            count = len(self._accepted)
        if self.on_accept is not None:
            self.on_accept(count)
