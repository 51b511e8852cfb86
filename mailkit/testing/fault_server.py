"""Scriptable SMTP server on aiosmtpd that injects faults, delays and provider limits.

:class:`FaultSMTPServer` runs in its own thread with its own asyncio event loop and
records every session: commands, replies, TLS and AUTH state, and each message's
envelope and raw data. Tests use it to drive a client into rejected recipients,
dropped connections, stalls and rate limits. Benchmarks use its per-command delays
to model the latency of a mail provider.

Example::

    import smtplib
    from mailkit.testing import FaultSMTPServer, reject_recipient

    with FaultSMTPServer(rules=[reject_recipient("gone@example.com")]) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            recipients = ["a@example.com", "gone@example.com"]
            message = b"Subject: hi\\r\\n\\r\\nHi\\r\\n"
            client.sendmail("me@example.com", recipients, message)
    assert server.messages[0].rcpt_tos == ("a@example.com",)

Delay model: the reply to a command is due its delay after the server started
on the command, so the server's own work on the command is part of the delay,
as it is in a provider's latency. When the client pipelines commands (RFC 2920),
the server queues the replies to MAIL, RCPT and RSET while the next command is
already in its input buffer, and sends the whole group when the last of its
replies is due, so a pipelined MAIL, RCPT, DATA costs about the largest of their
delays, one round trip instead of three. Without PIPELINING in the EHLO reply
every reply gets its own delay.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import hmac
import logging
import math
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from .certificates import CertificateAuthority, ServerCertificate
from .rules import CommandContext, Extensions, Rule, normalize_delays

if TYPE_CHECKING:
    from ._smtp_protocol import FaultSMTPProtocol

__all__ = [
    "AuthAttempt",
    "FaultSMTPServer",
    "RecordedMessage",
    "SessionRecord",
]

logger = logging.getLogger(__name__)

TLSMode = Literal["none", "starttls", "implicit"]
CloseReason = Literal[
    "quit",
    "client",
    "rule",
    "limit",
    "idle_timeout",
    "tls_failed",
    "error",
    "server_stopped",
]

_START_TIMEOUT = 10.0
#: Seconds that stop() waits for aborted connections to report connection_lost.
_SHUTDOWN_GRACE = 2.0


@dataclass(frozen=True)
class AuthAttempt:
    """One AUTH exchange that reached the credential check."""

    mechanism: str
    login: str | None
    success: bool


@dataclass(frozen=True)
class RecordedMessage:
    """One message whose data the server received up to the final "." line."""

    session_id: int
    transaction_number: int
    mail_from: str
    rcpt_tos: tuple[str, ...]
    #: MAIL FROM parameters as aiosmtpd stores them (uppercased), such as "SIZE=123".
    mail_options: tuple[str, ...]
    #: Message data exactly as received, with CRLF line endings, dot-unstuffed,
    #: without the final ".\r\n".
    data: bytes
    #: True when the server replied to the end of data with a 2xx code.
    accepted: bool
    #: Reply to the end of data, or None when the connection was closed before it.
    reply: str | None
    tls_active: bool
    login: str | None
    #: Wall-clock time (time.time()) at which the final "." arrived.
    received_at: float

    @property
    def smtputf8(self) -> bool:
        """Whether MAIL FROM carried the SMTPUTF8 parameter."""
        return "SMTPUTF8" in self.mail_options

    @property
    def body_type(self) -> str | None:
        """Value of the MAIL FROM BODY parameter, such as "8BITMIME", or None."""
        return self._option_value("BODY")

    @property
    def declared_size(self) -> int | None:
        """Value of the MAIL FROM SIZE parameter, or None if absent or not a number."""
        value = self._option_value("SIZE")
        if value is None or not value.isdigit():
            return None
        return int(value)

    def _option_value(self, name: str) -> str | None:
        for option in self.mail_options:
            key, separator, value = option.partition("=")
            if key == name and separator:
                return value
        return None


@dataclass
class SessionRecord:
    """Everything the server observed in one connection.

    The server's accessors return copies, so a record does not change after it was
    read.
    """

    #: 1-based number of the connection on this server.
    session_id: int
    #: Client address as (host, port).
    peer: Any
    #: Wall-clock times (time.time()) at which the connection opened and closed.
    started_at: float
    ended_at: float | None = None
    #: Commands in order as (verb, argument), such as
    #: ("MAIL", "FROM:<a@example.com> SIZE=123"). AUTH credentials are masked.
    #: Lines that aiosmtpd rejects before dispatch (too long, empty, or a verb that
    #: is not ASCII) are not listed.
    commands: list[tuple[str, str]] = field(default_factory=list)
    #: Reply lines in the order the server produced them, without CRLF.
    replies: list[str] = field(default_factory=list)
    tls_active: bool = False
    #: Negotiated TLS version, such as "TLSv1.3", or None without TLS.
    tls_version: str | None = None
    #: Mechanism and login name of the successful AUTH, or None.
    auth_mechanism: str | None = None
    login: str | None = None
    auth_attempts: list[AuthAttempt] = field(default_factory=list)
    #: Decoded XOAUTH2 initial response ("user=...\\x01auth=Bearer ...\\x01\\x01").
    #: It contains the access token, so repr() leaves it out.
    xoauth2_string: str | None = field(default=None, repr=False)
    #: Every message received in full, accepted or not.
    messages: list[RecordedMessage] = field(default_factory=list)
    #: Why the connection closed: "quit", "client" (closed or reset by the client),
    #: "rule", "limit", "idle_timeout", "tls_failed", "error" (an exception at the
    #: greeting, see ``errors``) or "server_stopped".
    close_reason: CloseReason | None = None
    #: Errors raised while the server handled this session, such as a failed TLS
    #: handshake or an exception in a rule predicate.
    errors: list[str] = field(default_factory=list)


class FaultSMTPServer:
    """SMTP server for tests that records sessions and injects faults.

    All parameters are keyword-only:

    host, port
        Address to listen on. Port 0 picks a free port, see :attr:`port`.
    hostname
        Name in the greeting and EHLO reply.
    rules
        :class:`~mailkit.testing.rules.Rule` objects, tried in order per event.
    delays, delay_scale
        Seconds to wait before the reply to each command, keyed by the names in
        :data:`~mailkit.testing.rules.DELAY_NAMES`, and a factor for all of them.
        See the module docstring for how pipelined commands are delayed.
    extensions
        What EHLO advertises, see :class:`~mailkit.testing.rules.Extensions`.
    tls
        "none", "starttls" (plain connection, STARTTLS offered) or "implicit"
        (TLS from the first byte, like port 465).
    certificate
        Server certificate for TLS. Without one, a test CA and a certificate for
        localhost and 127.0.0.1 are made, and :meth:`client_ssl_context` trusts it.
    require_tls
        Reject every command except EHLO, HELO, STARTTLS, NOOP, RSET and QUIT with
        "530 5.7.0 Must issue a STARTTLS command first" until TLS is active.
    require_tls_for_auth
        The same for AUTH only. With either option AUTH is advertised only over TLS.
    credentials
        Accepted login names and passwords for PLAIN and LOGIN. None accepts any.
        Wrong ones get "535 5.7.8 Username and Password not accepted".
    auth_required
        Reject MAIL, RCPT and DATA with "530 5.7.0 Authentication required"
        until AUTH succeeds.
    basic_auth_disabled
        Reply to every PLAIN and LOGIN attempt with "535 5.7.139", as Microsoft 365
        does when basic authentication is turned off.
    xoauth2_validator
        Called as ``validator(user, token)`` for XOAUTH2, returns whether to accept.
        None accepts any non-empty token.
    max_message_size
        Largest message in bytes. A larger MAIL SIZE= or message data gets
        "552 5.3.4". None means no limit.
    concurrent_session_limit
        Connections beyond this many open ones get "421 4.7.0 Too many concurrent
        SMTP connections" and are closed.
    login_attempt_limit, login_window
        AUTH commands beyond this many in any ``login_window`` seconds, over all
        sessions, get "454 4.7.0 Too many login attempts, try again later".
    session_message_limit
        After this many accepted messages in one session, the next MAIL gets
        "421 4.7.0" and the connection is closed.
    throttle_message_limit, throttle_window
        After this many accepted messages in any ``throttle_window`` seconds, over
        all sessions, MAIL gets "421 4.7.0 Try again later, closing connection"
        and the connection is closed.
    idle_timeout
        Seconds without a command after which the server sends "421 4.4.2" and
        closes the connection. The time to send message data counts too.
    max_stall
        Upper bound in seconds for every rule stall.
    stop_timeout
        Seconds that :meth:`stop` waits for the server thread.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        hostname: str = "mx.mailkit.test",
        rules: Iterable[Rule] = (),
        delays: Mapping[str, float] | None = None,
        delay_scale: float = 1.0,
        extensions: Extensions | None = None,
        tls: TLSMode = "none",
        certificate: ServerCertificate | None = None,
        require_tls: bool = False,
        require_tls_for_auth: bool = False,
        credentials: Mapping[str, str] | None = None,
        auth_required: bool = False,
        basic_auth_disabled: bool = False,
        xoauth2_validator: Callable[[str, str], bool] | None = None,
        max_message_size: int | None = None,
        concurrent_session_limit: int | None = None,
        login_attempt_limit: int | None = None,
        login_window: float = 60.0,
        session_message_limit: int | None = None,
        throttle_message_limit: int | None = None,
        throttle_window: float = 60.0,
        idle_timeout: float = 300.0,
        max_stall: float = 60.0,
        stop_timeout: float = 5.0,
    ) -> None:
        if tls not in ("none", "starttls", "implicit"):
            raise ValueError(
                f"Invalid tls mode {tls!r}: use 'none', 'starttls' or 'implicit'."
            )
        if (require_tls or require_tls_for_auth) and tls != "starttls":
            raise ValueError(
                "require_tls and require_tls_for_auth need tls='starttls', "
                f"but tls is {tls!r}."
            )
        if not 0 <= port <= 65535:
            raise ValueError(
                f"Invalid port {port!r}: use 0 to 65535 (0 picks a free port)."
            )
        for name, value in (
            ("max_message_size", max_message_size),
            ("concurrent_session_limit", concurrent_session_limit),
            ("login_attempt_limit", login_attempt_limit),
            ("session_message_limit", session_message_limit),
            ("throttle_message_limit", throttle_message_limit),
        ):
            if value is not None and value < 0:
                raise ValueError(f"Invalid {name} {value!r}: use an int >= 0 or None.")
        for name, seconds in (
            ("login_window", login_window),
            ("throttle_window", throttle_window),
            ("idle_timeout", idle_timeout),
            ("max_stall", max_stall),
            ("stop_timeout", stop_timeout),
        ):
            if not math.isfinite(seconds) or seconds <= 0:
                raise ValueError(
                    f"Invalid {name} {seconds!r}: use a finite number of seconds > 0."
                )

        self._host = host
        self._requested_port = port
        self.hostname = hostname
        self.extensions = extensions or Extensions()
        self.tls: TLSMode = tls
        if tls != "none" and certificate is None:
            certificate = CertificateAuthority.create().issue()
        self._certificate = certificate
        self.require_tls = require_tls
        self.require_tls_for_auth = require_tls_for_auth
        # Kept private and out of repr() because it contains passwords.
        self._credentials = dict(credentials) if credentials is not None else None
        self.auth_required = auth_required
        self.basic_auth_disabled = basic_auth_disabled
        self._xoauth2_validator = xoauth2_validator
        self.max_message_size = max_message_size
        self.concurrent_session_limit = concurrent_session_limit
        self.login_attempt_limit = login_attempt_limit
        self.login_window = login_window
        self.session_message_limit = session_message_limit
        self.throttle_message_limit = throttle_message_limit
        self.throttle_window = throttle_window
        self.idle_timeout = idle_timeout
        self.max_stall = max_stall
        self._stop_timeout = stop_timeout
        self._delays = normalize_delays(delays, delay_scale)

        # _lock guards everything below. It is reentrant so that a wait_until()
        # condition may call the public accessors.
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._rules: list[Rule] = list(rules)
        self._rule_use_counts: list[int] = [0] * len(self._rules)
        self._sessions: list[SessionRecord] = []
        self._messages: list[RecordedMessage] = []
        self._connection_count = 0
        self._open_connections = 0
        self._admitted_sessions = 0
        self._peak_connections = 0
        self._login_count = 0
        self._login_attempt_count = 0
        self._transaction_count = 0
        self._login_attempt_times: deque[float] = deque()
        self._accepted_times: deque[float] = deque()

        # Used only on the server thread.
        self._protocols: set[FaultSMTPProtocol] = set()
        self._starttls_context: ssl.SSLContext | None = None

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listener: asyncio.base_events.Server | None = None
        self._bound_port: int | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    def __repr__(self) -> str:
        state = "running" if self._thread is not None else "stopped"
        address = f"{self._host}:{self._bound_port or self._requested_port}"
        return f"<FaultSMTPServer {address} tls={self.tls} {state}>"

    # Lifecycle

    def start(self) -> FaultSMTPServer:
        """Start listening in a new thread and return once connections are accepted.

        Raises RuntimeError when the server is already running or cannot listen.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self!r} is already running; call stop() first.")
        server_context = None
        if self._certificate is not None:
            server_context = self._certificate.server_context()
        self._starttls_context = server_context if self.tls == "starttls" else None
        implicit_context = server_context if self.tls == "implicit" else None

        self._loop = asyncio.new_event_loop()
        self._ready.clear()
        self._startup_error = None
        self._thread = threading.Thread(
            target=self._run_loop,
            args=(implicit_context,),
            name=f"FaultSMTPServer-{self._host}:{self._requested_port}",
            daemon=True,
        )
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT) or self._startup_error is not None:
            error = self._startup_error
            self._join_thread()
            if error is None:
                raise RuntimeError(
                    f"FaultSMTPServer did not start listening on {self._host}:"
                    f"{self._requested_port} within {_START_TIMEOUT:.0f} s."
                )
            raise RuntimeError(
                f"FaultSMTPServer failed to listen on {self._host}:"
                f"{self._requested_port}: {error}"
            ) from error
        logger.info("FaultSMTPServer listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Close all connections, stop the server thread and wait for it.

        Stalled sessions are aborted, so this returns within about ``stop_timeout``
        seconds. Calling stop() on a stopped server does nothing. Raises
        RuntimeError when the thread is still alive after ``stop_timeout``.
        """
        loop = self._loop
        if self._thread is None or loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shut_down(), loop)
        try:
            future.result(timeout=self._stop_timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            logger.error(
                "FaultSMTPServer on %s: closing connections timed out after %.1f s",
                self.url,
                self._stop_timeout,
            )
        except Exception:
            logger.exception(
                "FaultSMTPServer on %s: closing connections failed", self.url
            )
        loop.call_soon_threadsafe(loop.stop)
        self._join_thread()
        logger.info("FaultSMTPServer on %s stopped", self.url)

    def __enter__(self) -> FaultSMTPServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _join_thread(self) -> None:
        thread = self._thread
        if thread is None:
            return
        thread.join(self._stop_timeout)
        if thread.is_alive():
            raise RuntimeError(
                f"FaultSMTPServer thread {thread.name} is still running "
                f"{self._stop_timeout:.1f} s after stop()."
            )
        self._thread = None
        self._loop = None
        self._listener = None

    def _run_loop(self, implicit_context: ssl.SSLContext | None) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(self._log_loop_exception)
        try:
            self._listener = loop.run_until_complete(
                loop.create_server(
                    self._create_protocol,
                    host=self._host,
                    port=self._requested_port,
                    ssl=implicit_context,
                    ssl_handshake_timeout=min(self.idle_timeout, 30.0)
                    if implicit_context
                    else None,
                )
            )
        except Exception as error:  # usually an OSError for an address in use
            self._startup_error = error
            self._ready.set()
            loop.close()
            return
        self._bound_port = self._listener.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._cancel_remaining_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    @staticmethod
    def _cancel_remaining_tasks(loop: asyncio.AbstractEventLoop) -> None:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.wait(tasks, timeout=_SHUTDOWN_GRACE))

    async def _shut_down(self) -> None:
        loop = asyncio.get_running_loop()
        listener = self._listener
        if listener is not None:
            listener.close()
        for protocol in list(self._protocols):
            protocol.abort_connection("server_stopped")
        # Aborted transports report connection_lost on a later loop iteration.
        deadline = loop.time() + _SHUTDOWN_GRACE
        while self._protocols and loop.time() < deadline:
            await asyncio.sleep(0.01)
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_SHUTDOWN_GRACE)
        if listener is not None:
            try:
                await asyncio.wait_for(listener.wait_closed(), _SHUTDOWN_GRACE)
            except asyncio.TimeoutError:
                logger.warning(
                    "FaultSMTPServer on %s: listener did not close in time", self.url
                )

    def _create_protocol(self) -> FaultSMTPProtocol:
        from ._smtp_protocol import FaultSMTPProtocol

        assert self._loop is not None
        return FaultSMTPProtocol(self, self._loop)

    def _log_loop_exception(
        self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]
    ) -> None:
        error = context.get("exception")
        # aiosmtpd lets a reset end a session task when a client disappears, and
        # stop() cancels TLS handshakes that are still pending.
        if isinstance(
            error, (ConnectionResetError, BrokenPipeError, asyncio.CancelledError)
        ):
            logger.debug("FaultSMTPServer: %s: %r", context.get("message"), error)
            return
        logger.warning(
            "FaultSMTPServer event loop error: %s",
            context.get("message"),
            exc_info=error,
        )

    # Address

    @property
    def host(self) -> str:
        """Address the server listens on."""
        return self._host

    @property
    def port(self) -> int:
        """Port the server listens on, or listened on before stop().

        Raises RuntimeError before the first start().
        """
        if self._bound_port is None:
            raise RuntimeError("FaultSMTPServer has no port yet: call start() first.")
        return self._bound_port

    @property
    def url(self) -> str:
        """Server URL in mailkit's form, such as "smtp://127.0.0.1:2525".

        The scheme is "smtps" for implicit TLS, "smtp+starttls" when the server
        requires STARTTLS (``require_tls`` or ``require_tls_for_auth``), else "smtp".
        """
        if self.tls == "implicit":
            scheme = "smtps"
        elif self.tls == "starttls" and (self.require_tls or self.require_tls_for_auth):
            scheme = "smtp+starttls"
        else:
            scheme = "smtp"
        port = (
            self._bound_port if self._bound_port is not None else self._requested_port
        )
        return f"{scheme}://{self._host}:{port}"

    @property
    def certificate(self) -> ServerCertificate | None:
        """Certificate that the server presents, or None without TLS."""
        return self._certificate

    def client_ssl_context(self) -> ssl.SSLContext:
        """Create a client SSL context that trusts the server's certificate.

        It verifies the certificate chain and the host name. Raises RuntimeError
        when the server has no TLS.
        """
        if self._certificate is None:
            raise RuntimeError(
                "FaultSMTPServer runs with tls='none', so it has no certificate."
            )
        return self._certificate.client_context()

    # Configuration changes while running

    def add_rule(self, rule: Rule) -> None:
        """Append a rule. It applies to events that happen after this call."""
        with self._lock:
            self._rules.append(rule)
            self._rule_use_counts.append(0)

    def clear_rules(self) -> None:
        """Remove all rules."""
        with self._lock:
            self._rules.clear()
            self._rule_use_counts.clear()

    def set_delays(
        self, delays: Mapping[str, float] | None, scale: float = 1.0
    ) -> None:
        """Replace all command delays. They apply to replies sent after this call."""
        self._delays = normalize_delays(delays, scale)

    def reset(self) -> None:
        """Forget recorded sessions, messages, counters, rule uses and limit windows.

        Session and transaction numbers start again at 1. Raises RuntimeError
        while connections are open, so call :meth:`wait_for_idle` first.
        """
        with self._recording():
            if self._open_connections:
                raise RuntimeError(
                    f"Cannot reset FaultSMTPServer with {self._open_connections} open "
                    "connections: close the clients and call wait_for_idle() first."
                )
            self._sessions.clear()
            self._messages.clear()
            self._rule_use_counts = [0] * len(self._rules)
            self._connection_count = 0
            self._peak_connections = 0
            self._login_count = 0
            self._login_attempt_count = 0
            self._transaction_count = 0
            self._login_attempt_times.clear()
            self._accepted_times.clear()

    # Recorded data

    @property
    def sessions(self) -> list[SessionRecord]:
        """Copies of all session records in connection order."""
        with self._lock:
            return [copy.deepcopy(record) for record in self._sessions]

    @property
    def messages(self) -> list[RecordedMessage]:
        """Messages that the server accepted, in the order of their final ".".

        Messages that got a 4xx or 5xx, or no reply at all, are listed only in
        their session's ``messages``.
        """
        with self._lock:
            return list(self._messages)

    @property
    def max_concurrent_sessions(self) -> int:
        """Peak number of simultaneously open connections, including rejected ones."""
        with self._lock:
            return self._peak_connections

    @property
    def active_session_count(self) -> int:
        """Number of connections open now."""
        with self._lock:
            return self._open_connections

    @property
    def connection_count(self) -> int:
        """Number of connections accepted since start or reset()."""
        with self._lock:
            return self._connection_count

    @property
    def login_count(self) -> int:
        """Number of successful AUTH commands."""
        with self._lock:
            return self._login_count

    @property
    def login_attempt_count(self) -> int:
        """Number of AUTH commands that passed the login limit and TLS checks."""
        with self._lock:
            return self._login_attempt_count

    def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until ``condition()`` returns True.

        The condition is checked again whenever the server records something, and
        may use the server's accessors. Raises TimeoutError after ``timeout``
        seconds.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"Condition not met within {timeout} s. The server recorded "
                        f"{len(self._sessions)} sessions "
                        f"({self._open_connections} open) and "
                        f"{len(self._messages)} accepted messages."
                    )
                self._changed.wait(remaining)

    def wait_for_messages(
        self, count: int, timeout: float = 5.0
    ) -> list[RecordedMessage]:
        """Wait until ``count`` or more messages were accepted, and return them all."""
        self.wait_until(lambda: len(self._messages) >= count, timeout)
        return self.messages

    def wait_for_idle(self, timeout: float = 5.0) -> None:
        """Wait until no connection is open, so every session record is complete."""
        self.wait_until(lambda: self._open_connections == 0, timeout)

    # Called by FaultSMTPProtocol on the server thread

    @contextmanager
    def _recording(self) -> Iterator[None]:
        with self._changed:
            yield
            self._changed.notify_all()

    def _open_session(
        self, protocol: FaultSMTPProtocol, peer: Any, tls_version: str | None
    ) -> tuple[SessionRecord, bool]:
        """Register a new connection.

        Returns its record and whether it is over the concurrent session limit.
        """
        self._protocols.add(protocol)
        with self._recording():
            self._connection_count += 1
            self._open_connections += 1
            self._peak_connections = max(self._peak_connections, self._open_connections)
            limit = self.concurrent_session_limit
            over_limit = limit is not None and self._admitted_sessions >= limit
            if not over_limit:
                self._admitted_sessions += 1
            record = SessionRecord(
                session_id=self._connection_count,
                peer=peer,
                started_at=time.time(),
                tls_active=tls_version is not None,
                tls_version=tls_version,
            )
            self._sessions.append(record)
        return record, over_limit

    def _close_session(
        self,
        protocol: FaultSMTPProtocol,
        record: SessionRecord,
        reason: CloseReason,
        admitted: bool,
    ) -> None:
        self._protocols.discard(protocol)
        with self._recording():
            self._open_connections -= 1
            if admitted:
                self._admitted_sessions -= 1
            record.ended_at = time.time()
            record.close_reason = reason

    def _record_command(self, record: SessionRecord, verb: str, argument: str) -> None:
        with self._recording():
            record.commands.append((verb, argument))

    def _record_reply(self, record: SessionRecord, line: str) -> None:
        with self._recording():
            record.replies.append(line)

    def _record_tls(self, record: SessionRecord, tls_version: str | None) -> None:
        with self._recording():
            record.tls_active = True
            record.tls_version = tls_version

    def _record_error(self, record: SessionRecord, error: str) -> None:
        with self._recording():
            record.errors.append(error)

    def _record_auth(
        self,
        record: SessionRecord,
        mechanism: str,
        login: str | None,
        success: bool,
        xoauth2_string: str | None = None,
    ) -> None:
        with self._recording():
            record.auth_attempts.append(AuthAttempt(mechanism, login, success))
            if xoauth2_string is not None:
                record.xoauth2_string = xoauth2_string
            if success:
                self._login_count += 1
                record.auth_mechanism = mechanism
                record.login = login

    def _record_message(self, record: SessionRecord, message: RecordedMessage) -> None:
        with self._recording():
            record.messages.append(message)
            if message.accepted:
                self._messages.append(message)
                self._accepted_times.append(time.monotonic())

    def _start_transaction(self) -> int:
        with self._lock:
            self._transaction_count += 1
            return self._transaction_count

    def _take_login_slot(self) -> bool:
        """Count an AUTH command against the login limit.

        Returns whether the command may proceed.
        """
        with self._recording():
            now = time.monotonic()
            _drop_older(self._login_attempt_times, now - self.login_window)
            limit = self.login_attempt_limit
            if limit is not None and len(self._login_attempt_times) >= limit:
                return False
            self._login_attempt_times.append(now)
            self._login_attempt_count += 1
            return True

    def _is_throttled(self) -> bool:
        limit = self.throttle_message_limit
        if limit is None:
            return False
        with self._lock:
            _drop_older(self._accepted_times, time.monotonic() - self.throttle_window)
            return len(self._accepted_times) >= limit

    def _accepted_message_count(self) -> int:
        with self._lock:
            return len(self._messages)

    def _match_rule(self, context: CommandContext) -> Rule | None:
        """Return the first rule that matches ``context`` and count its use."""
        with self._lock:
            candidates = list(enumerate(self._rules))
        for index, rule in candidates:
            # Predicates run without the lock because they are user code.
            if not rule.matches(context):
                continue
            with self._lock:
                if index >= len(self._rules) or self._rules[index] is not rule:
                    continue  # clear_rules() ran meanwhile
                if (
                    rule.times is not None
                    and self._rule_use_counts[index] >= rule.times
                ):
                    continue
                self._rule_use_counts[index] += 1
            return rule
        return None

    def _delay_for(self, event: str, implicit_tls: bool) -> float:
        delays = self._delays
        if event == "GREETING":
            seconds = delays.get("greeting", 0.0)
            if implicit_tls:
                seconds += delays.get("tls_handshake", 0.0)
            return seconds
        if event == "STARTTLS":
            return delays.get("starttls", 0.0) + delays.get("tls_handshake", 0.0)
        if event == "HELO":
            return delays.get("ehlo", 0.0)
        return delays.get(event.lower(), 0.0)

    def _check_password(self, login: str, password: bytes) -> bool:
        if self._credentials is None:
            return True
        expected = self._credentials.get(login)
        if expected is None:
            return False
        return hmac.compare_digest(expected.encode("utf-8"), password)

    def _check_xoauth2(self, user: str, token: str) -> bool:
        if self._xoauth2_validator is None:
            return bool(token)
        return bool(self._xoauth2_validator(user, token))

    def _ehlo_keywords(self, tls_active: bool) -> list[str]:
        extensions = self.extensions
        keywords = []
        if extensions.size:
            value = extensions.size_value
            if value == "limit":
                value = self.max_message_size or 0
            keywords.append("SIZE" if value is None else f"SIZE {value}")
        if extensions.eightbitmime:
            keywords.append("8BITMIME")
        if extensions.pipelining:
            keywords.append("PIPELINING")
        if extensions.smtputf8:
            keywords.append("SMTPUTF8")
        if self.tls == "starttls" and extensions.starttls and not tls_active:
            keywords.append("STARTTLS")
        auth_needs_tls = self.require_tls or self.require_tls_for_auth
        if extensions.auth_mechanisms and (tls_active or not auth_needs_tls):
            keywords.append("AUTH " + " ".join(extensions.auth_mechanisms))
        if extensions.enhanced_status_codes:
            keywords.append("ENHANCEDSTATUSCODES")
        return keywords


def _drop_older(times: deque[float], cutoff: float) -> None:
    while times and times[0] <= cutoff:
        times.popleft()
