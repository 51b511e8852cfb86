"""One SMTP connection on top of :mod:`smtplib`, and the outcome of one transaction.

The transaction is driven command by command rather than with
``SMTP.sendmail`` so that the code records whether the final "." was sent: a
failure before it means the server cannot have accepted the message, a failure
after it means the outcome is unknown. When the server offers PIPELINING (RFC
2920), MAIL, every RCPT and DATA go out in one write and their replies are read
in order, so the envelope costs one round trip instead of two or more.
"""

from __future__ import annotations

import logging
import os
import re
import select
import smtplib
import socket
import ssl
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

from .auth import log_in
from .capabilities import ServerCapabilities
from .compose import Outgoing
from .config import SMTPConfig
from .errors import (
    AuthenticationError,
    ConfigurationError,
    MailkitError,
    SMTPConnectError,
    SMTPError,
    SMTPSessionRefusedError,
    SMTPTimeoutError,
)
from .logins import recent_logins
from .replies import DEFERRED, FAILED, PARTIAL, SENT, SKIPPED, UNKNOWN, classify

__all__ = ["Connection", "LoginCancelled", "Outcome", "classify", "make_ssl_context"]

logger = logging.getLogger(__name__)

# Re-exported so that callers can take the statuses from the transport.
__all__ += ["DEFERRED", "FAILED", "PARTIAL", "SENT", "SKIPPED", "UNKNOWN"]

#: Seconds a connection may stay unused before it is checked with NOOP before
#: its next message. A connection that the server closed in the meantime is
#: found without NOOP, because its socket turns readable.
DEFAULT_IDLE_CHECK_S = 10.0
#: Seconds a connection may stay unused before its socket is checked at all.
#: A connection that sends back to back skips the check, because every system
#: call can wait for the GIL. A server that closes a connection within this time
#: is noticed at MAIL, before the message is handed over, and the message goes
#: again on a new connection.
STALE_CHECK_AFTER_S = 0.05

class LoginCancelled(Exception):
    """Connection.open() stopped before AUTH because ``before_login`` said so."""


@dataclass
class Outcome:
    """What one transaction did to one row.

    ``handed_over`` is True once the final "." was sent, after which the message
    must not be sent again automatically. ``reconnect`` asks the caller to drop
    the connection before the next message. ``command`` names the command whose
    reply decided the status ("MAIL", "RCPT", "DATA", or "EOD" for the reply
    after the final "."), and is empty when there was no reply.
    ``connection_lost`` is True when the connection broke or timed out before
    the hand-over, ``timed_out`` when the server stopped answering.
    """

    status: str
    code: int | None = None
    reply: str = ""
    error: str = ""
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    handed_over: bool = False
    reconnect: bool = False
    command: str = ""
    connection_lost: bool = False
    timed_out: bool = False


def make_ssl_context(config: SMTPConfig) -> ssl.SSLContext:
    """Return a client context that verifies certificates and host names by default.

    smtplib does not verify anything when it is given no context, so mailkit always
    passes one. Contexts are shared between batches: loading the system's CA
    certificates takes about 20 ms. A changed ``cafile`` gives a new context.
    """
    if not config.tls_verify:
        warnings.warn(
            f"TLS certificate verification is off for {config.host}: anyone on the "
            "path can read the messages and the password.",
            stacklevel=2,
        )
    key = (config.cafile, _file_version(config.cafile), config.tls_verify)
    with _CONTEXTS_LOCK:
        context = _CONTEXTS.get(key)
        if context is None:
            try:
                context = ssl.create_default_context(cafile=config.cafile)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigurationError(
                    f"Cannot load the CA certificates in cafile={config.cafile!r}: "
                    f"{getattr(exc, 'strerror', None) or exc}. Give the path of a PEM "
                    "file with the certificate of the CA that signed the server's "
                    "certificate."
                ) from exc
            if not config.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            _CONTEXTS[key] = context
    return context


def _file_version(path: str | None) -> tuple[int, ...] | None:
    """Return what changes when the file at ``path`` is written or replaced.

    The status change time is included because tools that copy a file with
    its times (cp -p, rsync -t, tar -x) keep the modification time, and
    nothing but the kernel sets the change time.
    """
    if path is None:
        return None
    try:
        status = os.stat(path)
    except OSError:
        # Loading the file reports the error.
        return None
    return (status.st_mtime_ns, status.st_ctime_ns, status.st_size, status.st_ino)


_CONTEXTS: dict[tuple[str | None, tuple[int, ...] | None, bool], ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def _decode(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")
    return str(reply)


def _is_timeout(exc: BaseException) -> bool:
    """Return whether ``exc`` is, or was raised while handling, a socket timeout.

    smtplib turns a timeout while reading a reply into SMTPServerDisconnected,
    with the TimeoutError as its context.
    """
    return isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError)


_DOT_AT_LINE_START = re.compile(rb"(?m)^\.")

Reply = tuple[int, bytes]


class _ConnectHook:
    """Turns Nagle's algorithm off and calls ``on_socket`` and ``after_connect``
    between making the socket and reading the greeting.

    smtplib connects and reads the greeting in its constructor, with no way in
    between otherwise. Every command group and every message goes out in one
    write. Nagle's algorithm would then only hold back the last segment of a
    message until the server acknowledges the one before it. With delayed
    acknowledgements that can add tens of milliseconds per message.
    """

    def __init__(
        self,
        *args: Any,
        after_connect: Callable[[], None] | None = None,
        on_socket: Callable[[socket.socket], None] | None = None,
        **kwargs: Any,
    ) -> None:
        self._after_connect = after_connect
        self._on_socket = on_socket
        super().__init__(*args, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        try:
            if self._on_socket is not None:
                self._on_socket(sock)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._after_connect is not None:
                self._after_connect()
        except BaseException:
            sock.close()
            raise
        return sock


class _SMTP(_ConnectHook, smtplib.SMTP):
    pass


class _SMTPSSL(_ConnectHook, smtplib.SMTP_SSL):
    pass


class Connection:
    """One logged-in SMTP session that sends many messages, one at a time.

    Not thread-safe: each worker owns its own Connection.
    """

    def __init__(
        self,
        config: SMTPConfig,
        ssl_context: ssl.SSLContext | None = None,
        *,
        idle_check_s: float = DEFAULT_IDLE_CHECK_S,
    ) -> None:
        self.config = config
        self.idle_check_s = idle_check_s
        self._ssl_context = ssl_context
        self._smtp: smtplib.SMTP | None = None
        self._opening: smtplib.SMTP | None = None
        # The socket of a session whose greeting is being read: smtplib reads it
        # in its constructor, before ``_opening`` can be set.
        self._connecting: socket.socket | None = None
        # Guards ``_smtp``, ``_opening`` and ``_connecting`` against
        # abort_opening() from another thread.
        self._state_lock = threading.Lock()
        self._handed_over = False
        self.messages_sent = 0
        self.opened_at: float | None = None
        self.last_used: float | None = None
        #: EHLO keywords (lower case) and their parameters, from the last open().
        self.extensions: dict[str, str] = {}
        #: What the server offered after the last EHLO; None before open().
        self.capabilities: ServerCapabilities | None = None
        #: Whether the server offers PIPELINING (RFC 2920).
        self.pipelining = False

    @property
    def is_open(self) -> bool:
        return self._smtp is not None

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = make_ssl_context(self.config)
        return self._ssl_context

    # -- opening ------------------------------------------------------------------

    def open(
        self,
        *,
        after_connect: Callable[[], None] | None = None,
        after_greeting: Callable[[], None] | None = None,
        on_capabilities: Callable[[ServerCapabilities], None] | None = None,
        before_login: Callable[[], bool] | None = None,
    ) -> None:
        """Connect, say EHLO, start TLS when configured and log in.

        ``after_connect`` is called once the TCP connection (and for implicit
        TLS the handshake) is made, before the greeting is read;
        ``after_greeting`` once the server has greeted.
        ``on_capabilities`` is called with what the server offers once the
        last EHLO (the one after STARTTLS) is answered, before AUTH.
        ``before_login`` is called before AUTH; when it returns False the
        connection is closed and LoginCancelled raised, so that other
        connections can wait for one login to succeed before they try theirs.

        Raises AuthenticationError, ConfigurationError (a setting that cannot work
        with this server), SMTPSessionRefusedError (421, 454 or a refused TCP
        connection: try again later with fewer connections), SMTPConnectError or
        SMTPTimeoutError.
        """
        config = self.config
        try:
            smtp = self._connect(after_connect)
        except BaseException:
            # smtplib leaves the socket open when reading the greeting is
            # interrupted (KeyboardInterrupt), so it is closed here.
            with self._state_lock:
                sock, self._connecting = self._connecting, None
            if sock is not None:
                sock.close()
            raise
        with self._state_lock:
            # Kept so that abort() from another thread reaches a session that
            # is still opening.
            self._opening = smtp
            self._connecting = None
        try:
            smtp.sock.settimeout(config.timeout)
            if after_greeting is not None:
                after_greeting()
            self._start_session(smtp, on_capabilities, before_login)
        except Exception:
            _close_quietly(smtp)
            raise
        except BaseException:
            # An interrupt must not wait for a QUIT reply from a server that may
            # be the reason for the wait.
            smtp.close()
            raise
        else:
            with self._state_lock:
                self._smtp = smtp
                self._opening = None
        finally:
            with self._state_lock:
                self._opening = None
        self.extensions = dict(smtp.esmtp_features)
        self.capabilities = ServerCapabilities.from_ehlo(smtp)
        self.pipelining = "pipelining" in self.extensions
        self.messages_sent = 0
        self.opened_at = self.last_used = time.monotonic()
        logger.debug(
            "connected to %s:%s (pipelining %s, size limit %s)",
            config.host,
            config.port,
            self.pipelining,
            self.capabilities.size_limit,
        )

    def _connect(self, after_connect: Callable[[], None] | None) -> smtplib.SMTP:
        config = self.config
        where = f"{config.host}:{config.port}"
        try:
            if config.security == "tls":
                return _SMTPSSL(
                    config.host,
                    config.port,
                    local_hostname=config.local_hostname,
                    timeout=config.connect_timeout,
                    context=self._context(),
                    after_connect=after_connect,
                    on_socket=self._track_socket,
                )
            return _SMTP(
                config.host,
                config.port,
                local_hostname=config.local_hostname,
                timeout=config.connect_timeout,
                after_connect=after_connect,
                on_socket=self._track_socket,
            )
        except ssl.SSLError as exc:
            raise _tls_error(config, exc) from exc
        except smtplib.SMTPConnectError as exc:
            # The greeting was not 220, for example "421 Too many connections".
            raise _session_refused(where, exc) from exc
        except (ConnectionRefusedError, ConnectionResetError) as exc:
            raise SMTPSessionRefusedError(f"Cannot connect to {where}: {exc}.") from exc
        except smtplib.SMTPServerDisconnected as exc:
            if _is_timeout(exc):
                raise SMTPTimeoutError(_no_greeting_message(config)) from exc
            raise SMTPSessionRefusedError(
                f"{where} closed the connection before its greeting."
            ) from exc
        except TimeoutError as exc:
            raise SMTPTimeoutError(
                f"Timed out after {config.connect_timeout:g} s connecting to {where}."
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise SMTPConnectError(f"Cannot connect to {where}: {exc}.") from exc

    def _track_socket(self, sock: socket.socket) -> None:
        with self._state_lock:
            self._connecting = sock

    def _start_session(
        self,
        smtp: smtplib.SMTP,
        on_capabilities: Callable[[ServerCapabilities], None] | None,
        before_login: Callable[[], bool] | None,
    ) -> None:
        config = self.config
        where = f"{config.host}:{config.port}"
        try:
            self._ehlo(smtp)
            if config.security == "starttls":
                self._starttls(smtp)
            if on_capabilities is not None:
                on_capabilities(ServerCapabilities.from_ehlo(smtp))
            if config.username:
                if before_login is not None and not before_login():
                    raise LoginCancelled("The login was cancelled: the run stopped.")
                self._login(smtp)
        except MailkitError:
            raise
        except ssl.SSLError as exc:
            raise _tls_error(config, exc) from exc
        except smtplib.SMTPResponseException as exc:
            raise _session_refused(where, exc) from exc
        except (OSError, smtplib.SMTPException) as exc:
            if _is_timeout(exc):
                raise SMTPTimeoutError(
                    f"{where} did not reply within {config.timeout:g} s while "
                    "opening the session."
                ) from exc
            raise SMTPConnectError(f"The session with {where} failed: {exc}.") from exc

    def _ehlo(self, smtp: smtplib.SMTP) -> None:
        code, reply = smtp.ehlo()
        if code == 250:
            return
        text = _decode(reply)
        if 400 <= code < 500:
            raise SMTPSessionRefusedError(
                f"{self.config.host}:{self.config.port} refused EHLO: {code} {text}",
                code=code,
                reply=text,
            )
        # A server without ESMTP replies to EHLO with 500 or 502; HELO still works,
        # without extensions such as PIPELINING and SIZE.
        code, reply = smtp.helo()
        if code != 250:
            raise SMTPConnectError(
                f"{self.config.host}:{self.config.port} refused EHLO and HELO: "
                f"{code} {_decode(reply)}",
                code=code,
                reply=_decode(reply),
            )

    def _starttls(self, smtp: smtplib.SMTP) -> None:
        config = self.config
        if not smtp.has_extn("starttls"):
            raise ConfigurationError(
                f"{config.host}:{config.port} does not offer STARTTLS; use "
                "smtps:// (implicit TLS, usually port 465) or, for a local test "
                "server only, smtp://."
            )
        code, reply = smtp.starttls(context=self._context())
        if code != 220:
            text = _decode(reply)
            error_type = SMTPSessionRefusedError if 400 <= code < 500 else SMTPConnectError
            raise error_type(
                f"{config.host}:{config.port} refused STARTTLS: {code} {text}",
                code=code,
                reply=text,
            )
        self._ehlo(smtp)

    def _login(self, smtp: smtplib.SMTP) -> None:
        config = self.config
        encrypted = config.security != "none"
        if not encrypted and not config.allow_insecure_auth:
            raise ConfigurationError(
                f"Refusing to send the credentials of {config.username!r} to "
                f"{config.host} without TLS: use smtp+starttls:// or smtps://, or set "
                "allow_insecure_auth=True for a test server."
            )
        try:
            mechanism = log_in(smtp, config)
        except AuthenticationError:
            recent_logins.rejected(config)
            raise
        recent_logins.succeeded(config)
        logger.debug("logged in to %s as %r with %s", config.host, config.username, mechanism)

    # -- reuse --------------------------------------------------------------------

    def is_usable(self) -> bool:
        """Check an open connection before its next message; False means reconnect.

        A readable socket between transactions means that the server closed the
        connection or sent an unsolicited reply (usually "421 ... closing"), so
        NOOP decides which. A connection unused for ``idle_check_s`` seconds is
        checked with NOOP too, and one used less than STALE_CHECK_AFTER_S
        seconds ago not at all. A connection that fails the check is discarded.
        """
        smtp = self._smtp
        if smtp is None:
            return False
        idle = time.monotonic() - (self.last_used or 0.0)
        if idle < STALE_CHECK_AFTER_S:
            return True
        try:
            if not self._socket_readable(smtp) and idle < self.idle_check_s:
                return True
            code, reply = smtp.noop()
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            logger.info(
                "the connection to %s was closed by the server (%s); reconnecting",
                self.config.host,
                exc,
            )
            self.discard()
            return False
        if code != 250:
            logger.info(
                "the server closed or refused the idle connection to %s (%s %s); "
                "reconnecting",
                self.config.host,
                code,
                _decode(reply),
            )
            self.discard()
            return False
        self.last_used = time.monotonic()
        return True

    @staticmethod
    def _socket_readable(smtp: smtplib.SMTP) -> bool:
        sock = smtp.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)

    # -- sending ------------------------------------------------------------------

    def send(self, outgoing: Outgoing) -> Outcome:
        """Run one MAIL, RCPT, DATA transaction and classify what happened.

        A message over this server's advertised SIZE fails before MAIL. The MAIL
        FROM parameters are the message's ``mail_options`` (SMTPUTF8) and SIZE
        when the server offers it.
        """
        if self._smtp is None:
            raise SMTPError("The connection is not open.")
        size = len(outgoing.data)
        limit = self.capabilities.size_limit if self.capabilities else None
        # Composing checks the limit of the first connection; a reconnect may
        # reach another server of the same name with a lower one.
        if limit is not None and size > limit:
            return Outcome(
                FAILED,
                error=f"The message is {size} bytes, over the server's limit (SIZE) "
                f"of {limit} bytes; it was not sent.",
            )
        options = list(outgoing.mail_options)
        if "SMTPUTF8" in options and not self._smtp.has_extn("smtputf8"):
            # Composing checked the first connection's server; a reconnect
            # reached one without SMTPUTF8.
            return Outcome(
                FAILED,
                error="The message cannot be sent here: this server does not offer "
                "SMTPUTF8, which the message needs.",
            )
        if "size" in self.extensions:
            options.append(f"SIZE={size}")
        self._handed_over = False
        try:
            if self.pipelining:
                return self._transact_pipelined(outgoing, options)
            return self._transact(outgoing, options)
        except (smtplib.SMTPException, OSError) as exc:
            return self._lost(exc)

    def _transact(self, outgoing: Outgoing, options: list[str]) -> Outcome:
        smtp = self._smtp
        assert smtp is not None
        mail = smtp.mail(outgoing.envelope_from, options)
        if mail[0] != 250:
            return self._envelope_outcome(outgoing, mail, [], None)
        replies: list[Reply] = []
        for recipient in outgoing.recipients:
            replies.append(smtp.rcpt(recipient))
            if replies[-1][0] == 421:
                return self._envelope_outcome(outgoing, mail, replies, None)
        if not any(code in (250, 251) for code, _ in replies):
            return self._envelope_outcome(outgoing, mail, replies, None)
        smtp.putcmd("data")
        return self._envelope_outcome(outgoing, mail, replies, smtp.getreply())

    def _transact_pipelined(self, outgoing: Outgoing, options: list[str]) -> Outcome:
        smtp = self._smtp
        assert smtp is not None
        smtputf8 = any(option.lower() == "smtputf8" for option in options)
        smtp.command_encoding = "utf-8" if smtputf8 else "ascii"
        option_text = "".join(" " + option for option in options)
        commands = [f"MAIL FROM:{smtplib.quoteaddr(outgoing.envelope_from)}{option_text}"]
        commands += [f"RCPT TO:{smtplib.quoteaddr(rcpt)}" for rcpt in outgoing.recipients]
        commands.append("DATA")
        smtp.send("".join(command + "\r\n" for command in commands))
        # Replies come in command order (RFC 2920 section 3.1). After a 421 the
        # server closes the connection, so no further reply will come.
        mail = smtp.getreply()
        if mail[0] == 421:
            return self._envelope_outcome(outgoing, mail, [], None)
        replies: list[Reply] = []
        for _ in outgoing.recipients:
            replies.append(smtp.getreply())
            if replies[-1][0] == 421:
                return self._envelope_outcome(outgoing, mail, replies, None)
        return self._envelope_outcome(outgoing, mail, replies, smtp.getreply())

    def _envelope_outcome(
        self,
        outgoing: Outgoing,
        mail: Reply,
        rcpt_replies: list[Reply],
        data: Reply | None,
    ) -> Outcome:
        """Finish the transaction from the MAIL, RCPT and DATA replies.

        ``data`` is None when DATA was not sent. Under pipelining the server
        replies 354 to DATA only when MAIL and at least one RCPT succeeded (RFC
        2920 section 3.1). A server that replies 354 anyway is waiting for the
        message, so the connection is dropped instead of sending one.
        """
        in_data_mode = data is not None and data[0] == 354
        if mail[0] != 250:
            if in_data_mode:
                self.discard()
            return self._refused_transaction("MAIL", *mail)
        refused = {
            recipient: (code, _decode(reply))
            for recipient, (code, reply) in zip(outgoing.recipients, rcpt_replies)
            if code not in (250, 251)
        }
        if len(rcpt_replies) < len(outgoing.recipients) or len(refused) == len(
            outgoing.recipients
        ):
            if in_data_mode:
                self.discard()
            code, text = _deciding_reply(refused)
            outcome = self._refused_transaction("RCPT", code, text)
            outcome.refused = refused
            return outcome
        assert data is not None
        if not in_data_mode:
            return self._refused_transaction("DATA", *data)
        return self._send_data(outgoing, refused)

    def _send_data(self, outgoing: Outgoing, refused: dict[str, tuple[int, str]]) -> Outcome:
        smtp = self._smtp
        assert smtp is not None
        data = _DOT_AT_LINE_START.sub(b"..", outgoing.data)
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        smtp.send(data + b".\r\n")
        self._handed_over = True
        code, reply = smtp.getreply()
        self.messages_sent += 1
        self.last_used = time.monotonic()
        text = _decode(reply)
        if code == 421:
            self.discard()
        status = classify(code)
        if status == SENT and refused:
            names = ", ".join(refused)
            return Outcome(
                PARTIAL,
                code,
                text,
                error=f"The server refused {names}; the other recipients were accepted.",
                refused=refused,
                handed_over=True,
                command="EOD",
            )
        error = "" if status == SENT else f"The server did not accept the message: {code} {text}"
        return Outcome(
            status,
            code,
            text,
            error=error,
            refused=refused,
            handed_over=True,
            reconnect=self._smtp is None,
            command="EOD",
        )

    def _refused_transaction(self, command: str, code: int, reply: bytes | str) -> Outcome:
        text = _decode(reply)
        if code == 421:
            # 421 means the server is closing the channel (RFC 5321 section 3.8).
            self.discard()
        elif self._smtp is not None:
            try:
                self._smtp.rset()
            except (smtplib.SMTPException, OSError):
                self.discard()
        command_text = {"MAIL": "MAIL FROM", "RCPT": "RCPT TO"}.get(command, command)
        return Outcome(
            classify(code),
            code,
            text,
            error=f"The server refused {command_text}: {code} {text}",
            reconnect=self._smtp is None,
            command=command,
        )

    def _lost(self, exc: BaseException) -> Outcome:
        timed_out = _is_timeout(exc)
        self.discard()
        timeout = self.config.timeout
        if self._handed_over:
            if timed_out:
                error = (
                    f"The server did not reply within {timeout:g} s after the "
                    "message was sent, so it may have been delivered; it is not sent "
                    "again automatically."
                )
            else:
                error = (
                    "The connection was lost after the message was sent and before "
                    "the server replied, so it may have been delivered; it is not "
                    f"sent again automatically ({exc})."
                )
            return Outcome(
                UNKNOWN,
                error=error,
                handed_over=True,
                reconnect=True,
                timed_out=timed_out,
            )
        if timed_out:
            error = (
                f"The server did not reply within {timeout:g} s before the message "
                "was sent, so it was not delivered."
            )
        else:
            error = f"The connection was lost before the message was sent ({exc})."
        return Outcome(
            DEFERRED,
            error=error,
            reconnect=True,
            connection_lost=True,
            timed_out=timed_out,
        )

    # -- closing ------------------------------------------------------------------

    def abort(self) -> None:
        """Shut the socket down from another thread.

        A worker blocked on a reply then gets an error at once instead of
        waiting for the timeout; the worker still closes the connection itself.
        """
        with self._state_lock:
            _shut_down_socket(self._socket_in_use())

    def abort_opening(self) -> None:
        """Shut the socket down from another thread if the session is still
        being opened (greeting, EHLO, STARTTLS or AUTH), and only then."""
        with self._state_lock:
            if self._smtp is None:
                _shut_down_socket(self._socket_in_use())

    def _socket_in_use(self) -> socket.socket | None:
        smtp = self._smtp or self._opening
        if smtp is None:
            return self._connecting
        return getattr(smtp, "sock", None)

    def discard(self) -> None:
        """Forget a connection that is broken, closing its socket."""
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def close(self) -> None:
        """Say QUIT and close without waiting for the reply; an error here never
        changes a row's status."""
        if self._smtp is not None:
            _close_quietly(self._smtp)
            self._smtp = None


def _deciding_reply(refused: dict[str, tuple[int, str]]) -> tuple[int, str]:
    """Return the reply that decides a transaction whose recipients were all refused.

    A 421 wins because the server closed the connection with it; then a temporary
    (4xx) refusal, so that the row is retried rather than failed.
    """
    replies = list(refused.values())
    for code, text in replies:
        if code == 421:
            return code, text
    for code, text in replies:
        if 400 <= code < 500:
            return code, text
    return replies[0]


def _no_greeting_message(config: SMTPConfig) -> str:
    text = (
        f"{config.host}:{config.port} accepted the connection but sent no greeting "
        f"within {config.connect_timeout:g} s."
    )
    if config.security != "tls" and config.port == 465:
        return text + (
            " Port 465 expects implicit TLS from the first byte: use smtps:// "
            "(security='tls')."
        )
    if config.security != "tls":
        return text + (
            " If the server expects implicit TLS from the first byte (usually port "
            "465), use smtps:// (security='tls'); otherwise raise connect_timeout."
        )
    return text + " Raise connect_timeout if the server is slow to greet."


def _shut_down_socket(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _session_refused(
    where: str, exc: smtplib.SMTPResponseException
) -> SMTPConnectError:
    """Return the error for a reply that ended the session setup.

    A 4xx reply is temporary (try again later, with fewer connections).
    """
    reply = _decode(exc.smtp_error)
    temporary = 400 <= exc.smtp_code < 500
    error_type = SMTPSessionRefusedError if temporary else SMTPConnectError
    return error_type(
        f"{where} refused the session: {exc.smtp_code} {reply}",
        code=exc.smtp_code,
        reply=reply,
    )


def _close_quietly(smtp: smtplib.SMTP) -> None:
    """Send QUIT and close the connection without waiting for the reply.

    Every message of the session had its reply before, so the 221 carries no
    information, and waiting for it would add one round trip to the end of every batch.
    Postfix's SMTP client does the same by default (smtp_skip_quit_response).
    """
    try:
        smtp.send("QUIT\r\n")
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()


def _tls_error(config: SMTPConfig, exc: ssl.SSLError) -> MailkitError:
    reason = getattr(exc, "reason", "") or str(exc)
    if reason == "WRONG_VERSION_NUMBER":
        return ConfigurationError(
            f"{config.host}:{config.port} did not answer with TLS. Port {config.port} "
            "usually expects STARTTLS (smtp+starttls://), while implicit TLS "
            "(smtps://) is usually on port 465."
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConfigurationError(
            f"The TLS certificate of {config.host} could not be verified "
            f"({exc.verify_message}). If the server uses a private CA, pass "
            "cafile='ca.pem'; tls_verify=False turns verification off."
        )
    return SMTPConnectError(f"TLS with {config.host}:{config.port} failed: {reason}.")

