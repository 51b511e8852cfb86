"""One SMTP connection on top of :mod:`smtplib`, and the outcome of one transaction.

The transaction is driven command by command rather than with
``SMTP.sendmail`` so that the code knows whether the final "." was sent: a
failure before it means the server cannot have accepted the message, a failure
after it means the outcome is unknown.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
import time
import warnings
from dataclasses import dataclass, field

from .capabilities import ServerCapabilities
from .compose import Outgoing
from .config import SMTPConfig
from .errors import (
    AuthenticationError,
    ConfigurationError,
    MailkitError,
    SMTPConnectError,
    SMTPError,
    SMTPTimeoutError,
)

__all__ = ["Connection", "Outcome", "make_ssl_context"]

logger = logging.getLogger(__name__)

SENT = "sent"
FAILED = "failed"
DEFERRED = "deferred"
PARTIAL = "partial"
UNKNOWN = "unknown"
SKIPPED = "skipped"


@dataclass
class Outcome:
    """What one transaction did to one row.

    ``handed_over`` is True once the final "." was sent, after which the message
    must not be sent again automatically. ``reconnect`` asks the caller to drop
    the connection before the next message.
    """

    status: str
    code: int | None = None
    reply: str = ""
    error: str = ""
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    handed_over: bool = False
    reconnect: bool = False


def make_ssl_context(config: SMTPConfig) -> ssl.SSLContext:
    """Return a client context that verifies certificates and host names by default.

    smtplib does not verify anything when it is given no context, so mailkit always
    passes one.
    """
    context = ssl.create_default_context(cafile=config.cafile)
    if not config.tls_verify:
        warnings.warn(
            f"TLS certificate verification is off for {config.host}: anyone on the "
            "path can read the messages and the password.",
            stacklevel=2,
        )
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _decode(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")
    return str(reply)


def classify(code: int) -> str:
    """Map a reply code to a row status: 2xx sent, 4xx deferred, 5xx failed."""
    if 200 <= code < 300:
        return SENT
    if 400 <= code < 500:
        return DEFERRED
    return FAILED


_DOT_AT_LINE_START = re.compile(rb"(?m)^\.")


class Connection:
    """One logged-in SMTP session that sends many messages, one at a time.

    Not thread-safe: each worker owns its own Connection.
    """

    def __init__(self, config: SMTPConfig, ssl_context: ssl.SSLContext | None = None):
        self.config = config
        self._ssl_context = ssl_context
        self._smtp: smtplib.SMTP | None = None
        #: What the server offered after the last EHLO; None before open().
        self.capabilities: ServerCapabilities | None = None
        self.messages_sent = 0
        self.opened_at: float | None = None

    @property
    def is_open(self) -> bool:
        return self._smtp is not None

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = make_ssl_context(self.config)
        return self._ssl_context

    def open(self) -> None:
        """Connect, say EHLO, start TLS when configured and log in.

        Raises AuthenticationError, ConfigurationError (a setting that cannot work
        with this server), SMTPConnectError or SMTPTimeoutError.
        """
        config = self.config
        try:
            smtp = self._connect()
        except socket.timeout as exc:
            raise SMTPTimeoutError(
                f"Timed out after {config.connect_timeout:g} s connecting to "
                f"{config.host}:{config.port} or waiting for its greeting."
            ) from exc
        except ssl.SSLError as exc:
            raise _tls_error(config, exc) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise SMTPConnectError(
                f"Cannot connect to {config.host}:{config.port}: {exc}."
            ) from exc
        try:
            smtp.sock.settimeout(config.timeout)
            self._start_session(smtp)
        except Exception:
            _close_quietly(smtp)
            raise
        except BaseException:
            # An interrupt must not wait for a QUIT reply from a server that may
            # be the reason for the wait.
            smtp.close()
            raise
        self._smtp = smtp
        self.capabilities = ServerCapabilities.from_ehlo(smtp)
        self.messages_sent = 0
        self.opened_at = time.monotonic()
        logger.debug("connected to %s:%s", config.host, config.port)

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        if config.security == "tls":
            return smtplib.SMTP_SSL(
                config.host,
                config.port,
                local_hostname=config.local_hostname,
                timeout=config.connect_timeout,
                context=self._context(),
            )
        return smtplib.SMTP(
            config.host,
            config.port,
            local_hostname=config.local_hostname,
            timeout=config.connect_timeout,
        )

    def _start_session(self, smtp: smtplib.SMTP) -> None:
        config = self.config
        try:
            smtp.ehlo()
            if config.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise ConfigurationError(
                        f"{config.host}:{config.port} does not offer STARTTLS; use "
                        "smtps:// (implicit TLS, usually port 465) or, for a local test "
                        "server only, smtp://."
                    )
                smtp.starttls(context=self._context())
                smtp.ehlo()
            if config.username:
                self._login(smtp)
        except ssl.SSLError as exc:
            raise _tls_error(config, exc) from exc
        except socket.timeout as exc:
            raise SMTPTimeoutError(
                f"{config.host}:{config.port} did not answer within {config.timeout:g} s "
                "while opening the session."
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise SMTPConnectError(
                f"{config.host}:{config.port} refused the session: {exc.smtp_code} "
                f"{_decode(exc.smtp_error)}",
                code=exc.smtp_code,
                reply=_decode(exc.smtp_error),
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise SMTPConnectError(
                f"The session with {config.host}:{config.port} failed: {exc}."
            ) from exc

    def _login(self, smtp: smtplib.SMTP) -> None:
        config = self.config
        encrypted = config.security != "none"
        if not encrypted and not config.allow_insecure_auth:
            raise ConfigurationError(
                f"Refusing to send the password for {config.username!r} to "
                f"{config.host} without TLS: use smtp+starttls:// or smtps://, or set "
                "allow_insecure_auth=True for a test server."
            )
        try:
            smtp.login(config.username, config.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            reply = _decode(exc.smtp_error)
            raise AuthenticationError(
                f"{config.host} rejected the login for {config.username!r}: "
                f"{exc.smtp_code} {reply}. Check the user name and password"
                f"{_auth_hint(config.host)}.",
                code=exc.smtp_code,
                reply=reply,
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise ConfigurationError(
                f"{config.host}:{config.port} does not offer AUTH on this connection; "
                "many servers offer it only after STARTTLS."
            ) from exc

    def send(self, outgoing: Outgoing) -> Outcome:
        """Run one MAIL, RCPT, DATA transaction and classify what happened."""
        if self._smtp is None:
            raise SMTPError("The connection is not open.")
        smtp = self._smtp
        handed_over = False
        try:
            code, reply = smtp.mail(outgoing.envelope_from, list(outgoing.mail_options))
            if code != 250:
                return self._refused_transaction("MAIL FROM", code, reply)
            refused: dict[str, tuple[int, str]] = {}
            for recipient in outgoing.recipients:
                code, reply = smtp.rcpt(recipient)
                if code not in (250, 251):
                    refused[recipient] = (code, _decode(reply))
            if len(refused) == len(outgoing.recipients):
                code, text = next(iter(refused.values()))
                outcome = self._refused_transaction("RCPT TO", code, text)
                outcome.refused = refused
                return outcome
            smtp.putcmd("data")
            code, reply = smtp.getreply()
            if code != 354:
                return self._refused_transaction("DATA", code, reply)
            smtp.send(_DOT_AT_LINE_START.sub(b"..", outgoing.data) + b".\r\n")
            handed_over = True
            code, reply = smtp.getreply()
        except smtplib.SMTPNotSupportedError as exc:
            # The message needs SMTPUTF8 and this connection's server lacks it,
            # which happens only if a reconnect reached another server.
            return Outcome(FAILED, error=f"The message cannot be sent here: {exc}.")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.discard()
            if handed_over:
                return Outcome(
                    UNKNOWN,
                    error="The connection was lost after the message was sent and "
                    "before the server replied, so it may have been delivered; it is "
                    f"not sent again automatically ({exc}).",
                    handed_over=True,
                    reconnect=True,
                )
            return Outcome(
                DEFERRED,
                error=f"The connection was lost before the message was sent ({exc}).",
                reconnect=True,
            )
        self.messages_sent += 1
        text = _decode(reply)
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
            )
        error = "" if status == SENT else f"The server did not accept the message: {code} {text}"
        return Outcome(status, code, text, error=error, handed_over=True)

    def _refused_transaction(self, command: str, code: int, reply: bytes | str) -> Outcome:
        text = _decode(reply)
        try:
            self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self.discard()
        return Outcome(
            classify(code),
            code,
            text,
            error=f"The server refused {command}: {code} {text}",
            reconnect=self._smtp is None,
        )

    def abort(self) -> None:
        """Shut the socket down from another thread.

        A worker blocked on a reply then gets an error at once instead of
        waiting for the timeout; the worker still closes the connection itself.
        """
        smtp = self._smtp
        sock = getattr(smtp, "sock", None) if smtp is not None else None
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def discard(self) -> None:
        """Forget a connection that is broken, closing its socket."""
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def close(self) -> None:
        """Say QUIT and close; an error here never changes a row's status."""
        if self._smtp is not None:
            _close_quietly(self._smtp)
            self._smtp = None


def _close_quietly(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _auth_hint(host: str) -> str:
    host = host.lower()
    if host.endswith(("gmail.com", "googlemail.com")):
        return "; Gmail accepts only an app password or OAuth, not the account password"
    if host.endswith(("office365.com", "outlook.com")):
        return (
            "; Microsoft 365 answers 535 5.7.139 when SMTP AUTH is disabled for the "
            "mailbox or tenant"
        )
    return ""


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

