"""Per-connection SMTP protocol of :class:`~mailkit.testing.FaultSMTPServer`.

:class:`FaultSMTPProtocol` subclasses aiosmtpd's ``SMTP`` and leaves parsing and
the command state machine to it. It hooks in at these points:

- Every ``smtp_*`` command method is wrapped to record the command, start its
  delay, apply limits and rules, and then run the original method.
- ``push()`` records each reply line, applies delays and reply substitutions,
  and queues pipelined replies (see the delay model in ``fault_server``).
- The ``handle_EHLO`` and ``handle_DATA`` hooks build the EHLO reply and decide
  on the end of data.
- ``_handle_client()`` runs the greeting checks before aiosmtpd's command loop.

NOTE: besides its public API this relies on aiosmtpd 1.4 internals that its own
subclasses and docs use: ``_smtp_methods``, ``_handle_client``, ``_timeout_cb``,
``_reset_timeout``, ``_handler_coroutine``, ``_original_transport``, and the
private ``_buffer`` of asyncio's StreamReader to see pipelined input. Recheck
them when upgrading aiosmtpd.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import (
    MISSING,
    SMTP,
    AuthResult,
    Envelope,
    LoginPassword,
    Session,
    TLSSetupException,
)

from .fault_server import CloseReason, RecordedMessage, SessionRecord
from .rules import CommandContext, Rule, reply_lines

if TYPE_CHECKING:
    from .fault_server import FaultSMTPServer

logger = logging.getLogger("mailkit.testing.fault_server")

CommandMethod = Callable[[Any], Awaitable[None]]

#: Replies to MAIL, RCPT and RSET may be held while the client's next command is
#: already buffered. RFC 2920 lets these commands appear anywhere in a pipelined
#: group, while EHLO, DATA, NOOP and QUIT end a group.
_PIPELINABLE_VERBS = frozenset({"MAIL", "RCPT", "RSET"})
#: Commands allowed before STARTTLS when the server requires TLS. RFC 3207 allows
#: NOOP, EHLO, STARTTLS and QUIT, and HELO and RSET reveal nothing either.
_ALLOWED_BEFORE_TLS = frozenset({"EHLO", "HELO", "STARTTLS", "NOOP", "RSET", "QUIT"})
#: aiosmtpd's plain success replies and their equivalents with enhanced status
#: codes (RFC 3463), per command.
#: NOTE: aiosmtpd's syntax and sequence errors (501, 503) keep their plain text
#: even when ENHANCEDSTATUSCODES is advertised.
_ENHANCED_SUCCESS = {
    ("MAIL", "250 OK"): "250 2.1.0 OK",
    ("RCPT", "250 OK"): "250 2.1.5 OK",
    ("RSET", "250 OK"): "250 2.0.0 OK",
    ("NOOP", "250 OK"): "250 2.0.0 OK",
    ("QUIT", "221 Bye"): "221 2.0.0 Bye",
}
_BUILTIN_MECHANISMS = ("PLAIN", "LOGIN", "XOAUTH2")
_XOAUTH2_ERROR_CHALLENGE = base64.b64encode(
    json.dumps({"status": "400", "schemes": "Bearer"}).encode("ascii")
).decode("ascii")

REPLY_TOO_MANY_SESSIONS = "421 4.7.0 Too many concurrent SMTP connections"
REPLY_GREETING_ERROR = "421 4.3.0 Internal error in FaultSMTPServer, closing connection"
REPLY_TOO_MANY_LOGINS = "454 4.7.0 Too many login attempts, try again later"
REPLY_TLS_REQUIRED = "530 5.7.0 Must issue a STARTTLS command first"
REPLY_AUTH_REQUIRED = "530 5.7.0 Authentication required"
REPLY_SESSION_MESSAGE_LIMIT = (
    "421 4.7.0 Too many messages in this session, closing connection"
)
REPLY_THROTTLED = "421 4.7.0 Try again later, closing connection"
REPLY_TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
REPLY_BAD_CREDENTIALS = "535 5.7.8 Username and Password not accepted"
REPLY_BASIC_AUTH_DISABLED = (
    "535 5.7.139 Authentication unsuccessful, basic authentication is disabled"
)
REPLY_NON_ASCII_ADDRESS = "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter"


class _CommandTable(dict[str, CommandMethod]):
    """aiosmtpd's verb-to-method table, with a handler for unknown verbs.

    aiosmtpd looks commands up with ``get()``. Returning a handler for unknown
    verbs lets the server record them like any other command.
    """

    def __init__(
        self,
        commands: dict[str, CommandMethod],
        unknown: Callable[[str, Any], Awaitable[None]],
    ) -> None:
        super().__init__(commands)
        self._unknown = unknown

    def get(self, verb: str, default: Any = None) -> Any:  # type: ignore[override]
        method = super().get(verb)
        if method is not None:
            return method
        return functools.partial(self._unknown, verb)


class _Hooks:
    """aiosmtpd handler object that forwards its hooks to the protocol."""

    async def handle_EHLO(  # noqa: N802 - aiosmtpd looks hooks up by this name
        self,
        protocol: FaultSMTPProtocol,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        return protocol.build_ehlo_reply(hostname)

    async def handle_DATA(  # noqa: N802 - aiosmtpd looks hooks up by this name
        self, protocol: FaultSMTPProtocol, session: Session, envelope: Envelope
    ) -> str:
        return await protocol.finish_data(envelope)


_HOOKS = _Hooks()


class _Session(Session):
    """aiosmtpd session without the deprecation warning on ``login_data``.

    aiosmtpd 1.4 sets ``login_data`` itself after every successful AUTH and logs
    a deprecation warning each time, which floods benchmark output.
    """

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class FaultSMTPProtocol(SMTP):
    """One SMTP connection of a :class:`FaultSMTPServer`."""

    def __init__(
        self, server: FaultSMTPServer, loop: asyncio.AbstractEventLoop
    ) -> None:
        # Set before SMTP.__init__, which inspects every attribute of self.
        self._server = server
        self._record: SessionRecord | None = None
        self._admitted = False
        self._connection_closed = False
        self._close_reason: CloseReason | None = None
        self._implicit_tls = False
        self._verb = "GREETING"
        # Loop times at which the current command's reply, and the queued
        # replies, are due; 0.0 when no delay applies.
        self._command_due = 0.0
        self._pending_due = 0.0
        self._received_at: float | None = None
        self._replied_at = 0.0
        self._reply_substitute: str | None = None
        self._drop_after_reply = False
        self._output: list[bytes] = []
        self._transaction_number = 0
        self._session_transactions = 0
        self._session_accepted = 0
        self._login: str | None = None

        excluded = [
            mechanism
            for mechanism in _BUILTIN_MECHANISMS
            if mechanism not in server.extensions.auth_mechanisms
        ]
        super().__init__(
            _HOOKS,
            hostname=server.hostname,
            ident="ESMTP mailkit FaultSMTPServer",
            # The server enforces its own size limit and SMTPUTF8 rules so that
            # it can send the replies of a strict provider.
            data_size_limit=None,
            enable_SMTPUTF8=True,
            decode_data=False,
            tls_context=server._starttls_context,
            require_starttls=False,
            timeout=server.idle_timeout,
            auth_required=False,
            auth_require_tls=False,
            auth_exclude_mechanism=excluded,
            authenticator=self._verify_login,
            loop=loop,
        )
        # aiosmtpd keeps this table on the class and grows it per EHLO. An
        # instance copy keeps servers in other threads out of it.
        self.command_size_limits = collections.defaultdict(
            lambda: SMTP.command_size_limit
        )
        self._smtp_methods = _CommandTable(
            {
                verb: self._wrap_command(verb, method)
                for verb, method in self._smtp_methods.items()
            },
            self._run_unknown_command,
        )

    def _create_session(self) -> Session:
        return _Session(self.loop)

    # Connection lifecycle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # aiosmtpd calls connection_made a second time, with the TLS transport,
        # once a STARTTLS handshake has finished.
        upgrading = self._original_transport is not None
        super().connection_made(transport)
        tls_version = _tls_version(transport)
        if upgrading:
            assert self._record is not None
            self._server._record_tls(self._record, tls_version)
            return
        self._implicit_tls = tls_version is not None
        peer = transport.get_extra_info("peername")
        self._record, over_limit = self._server._open_session(self, peer, tls_version)
        self._admitted = not over_limit

    def data_received(self, data: bytes) -> None:
        # A command's delay counts from when its bytes arrived: with many
        # sessions, the loop may get to a command some time later.
        self._received_at = self.loop.time()
        super().data_received(data)

    def connection_lost(self, error: Exception | None) -> None:
        # aiosmtpd calls this itself after a failed STARTTLS handshake, and
        # asyncio calls it again later, so only the first call is recorded.
        if not self._connection_closed and self._record is not None:
            self._connection_closed = True
            reason = self._close_reason or "client"
            self._server._close_session(self, self._record, reason, self._admitted)
        super().connection_lost(error)

    def abort_connection(self, reason: CloseReason) -> None:
        """Close the connection at once, discarding unsent replies."""
        self._set_close_reason(reason)
        if isinstance(self.transport, asyncio.Transport):
            self.transport.abort()
        elif self.transport is not None:
            self.transport.close()

    def _timeout_cb(self) -> None:
        self._set_close_reason("idle_timeout")
        line = f"421 4.4.2 {self.hostname} Error: timeout exceeded"
        self._note_reply(line)
        if self.transport is not None and not self.transport.is_closing():
            pending = b"".join(self._output)
            self._output.clear()
            self.transport.write(pending + line.encode("utf-8") + b"\r\n")  # type: ignore[attr-defined]
        logger.info(
            "session %s: idle timeout, closing the connection", self._session_id()
        )
        super()._timeout_cb()

    async def _handle_client(self) -> None:
        try:
            proceed = await self._prepare_greeting()
        except asyncio.CancelledError:
            # aiosmtpd's command loop closes the transport when its task is
            # cancelled, for example on EOF from the client. Before that loop
            # has started, this method must close it.
            if self.transport is not None:
                self.transport.close()
            raise
        except Exception as error:  # a rule predicate is user code
            await self.handle_exception(error)
            await self._send_and_close(REPLY_GREETING_ERROR, "error")
            return
        if not proceed:
            return
        try:
            await super()._handle_client()
        except asyncio.CancelledError:
            # aiosmtpd's command loop does not close the transport when the
            # task is cancelled while it sends the greeting, which waits for
            # the greeting delay. Closing a closed transport does nothing.
            if self.transport is not None:
                self.transport.close()
            raise

    async def _prepare_greeting(self) -> bool:
        """Apply the session limit and greeting rules.

        Returns False when the session has ended.
        """
        self._start_event("GREETING")
        if not self._admitted:
            logger.info(
                "session %s: rejected, over the concurrent session limit of %s",
                self._session_id(),
                self._server.concurrent_session_limit,
            )
            await self._send_and_close(REPLY_TOO_MANY_SESSIONS, "limit")
            return False
        rule = self._server._match_rule(self._context("GREETING", "", None))
        # A rule reply always replaces the greeting, whatever its code.
        if rule is not None and await self._apply_rule(
            rule, error_replaces_command=False
        ):
            return False
        return True

    # Commands

    def _wrap_command(self, verb: str, method: CommandMethod) -> CommandMethod:
        async def run_command(argument: Any) -> None:
            await self._run_command(verb, argument, method)

        # aiosmtpd's HELP reads these attributes from the command method.
        for attribute in (
            "__smtp_syntax__",
            "__smtp_syntax_extended__",
            "__smtp_syntax_when__",
        ):
            if hasattr(method, attribute):
                setattr(run_command, attribute, getattr(method, attribute))
        return run_command

    async def _run_command(
        self, verb: str, argument: str | None, method: CommandMethod
    ) -> None:
        text = _mask_credentials(verb, argument or "")
        assert self._record is not None
        self._server._record_command(self._record, verb, text)
        self._start_event(verb)

        address = None
        if verb == "MAIL":
            self._transaction_number = self._server._start_transaction()
            self._session_transactions += 1
            address, _ = _split_path(argument or "", "FROM:")
        elif verb == "RCPT":
            address, _ = _split_path(argument or "", "TO:")

        rejection = self._check_limits(verb)
        if rejection is not None:
            reply, close = rejection
            if close:
                await self._send_and_close(reply, "limit")
            else:
                await self._send_reply(reply)
            return

        rule = self._server._match_rule(self._context(verb, text, address))
        if rule is not None and await self._apply_rule(
            rule, error_replaces_command=True
        ):
            return
        await method(argument)
        if verb == "QUIT":
            self._set_close_reason("quit")

    async def _run_unknown_command(self, verb: str, argument: str | None) -> None:
        assert self._record is not None
        self._server._record_command(self._record, verb, argument or "")
        self._start_event(verb)
        await self.push(f'500 5.5.2 Error: command "{verb}" not recognized')

    def _check_limits(self, verb: str) -> tuple[str, bool] | None:
        """Return (reply, close) when a limit or requirement rejects ``verb``.

        The requirements are TLS before commands or AUTH, and AUTH before MAIL.
        """
        server = self._server
        tls_active = self._tls_active()
        if verb == "STARTTLS" and tls_active:
            return "554 5.5.1 Error: TLS already active", False
        if server.require_tls and not tls_active and verb not in _ALLOWED_BEFORE_TLS:
            return REPLY_TLS_REQUIRED, False
        if verb == "AUTH":
            if server.require_tls_for_auth and not tls_active:
                return REPLY_TLS_REQUIRED, False
            if not server._take_login_slot():
                logger.info(
                    "session %s: AUTH rejected by the login limit", self._session_id()
                )
                return REPLY_TOO_MANY_LOGINS, False
        if (
            verb in ("MAIL", "RCPT", "DATA")
            and server.auth_required
            and not self._login
        ):
            return REPLY_AUTH_REQUIRED, False
        if verb == "MAIL":
            limit = server.session_message_limit
            if limit is not None and self._session_accepted >= limit:
                logger.info(
                    "session %s: MAIL rejected after %d messages in the session",
                    self._session_id(),
                    self._session_accepted,
                )
                return REPLY_SESSION_MESSAGE_LIMIT, True
            if server._is_throttled():
                logger.info(
                    "session %s: MAIL rejected by the throttle", self._session_id()
                )
                return REPLY_THROTTLED, True
        return None

    async def _apply_rule(self, rule: Rule, *, error_replaces_command: bool) -> bool:
        """Apply a matching rule's stall, drop and reply.

        With ``error_replaces_command``, a 4xx or 5xx reply is sent instead of
        running the command. Otherwise every reply only replaces the normal reply
        text. Returns True when the rule handled the event, so the command must
        not run.
        """
        logger.debug("session %s: %s matched %r", self._session_id(), self._verb, rule)
        if rule.stall > 0:
            await self._stall(rule.stall)
        if rule.drop == "before_reply":
            await self._close("rule")
            return True
        if rule.drop == "after_reply":
            self._drop_after_reply = True
            self._set_close_reason("rule")
        if rule.reply is None:
            return False
        code = rule.reply_code
        assert code is not None
        if code >= 400 and error_replaces_command:
            await self._send_reply(rule.reply)
            return True
        self._reply_substitute = rule.reply
        return False

    async def smtp_MAIL(self, arg: str | None) -> None:  # noqa: N802 - aiosmtpd's name
        assert self.session is not None
        if arg is not None and self.session.host_name:
            problem = self._check_mail_parameters(arg)
            if problem is not None:
                await self.push(problem)
                return
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:  # noqa: N802 - aiosmtpd's name
        address, _ = _split_path(arg or "", "TO:")
        envelope = self.envelope
        assert envelope is not None
        if (
            address
            and not address.isascii()
            and envelope.mail_from
            and not envelope.smtp_utf8
        ):
            await self.push(REPLY_NON_ASCII_ADDRESS)
            return
        await super().smtp_RCPT(arg)

    def _check_mail_parameters(self, argument: str) -> str | None:
        """Return a strict server's reply to MAIL parameters that were not advertised.

        Returns None when the parameters are acceptable.
        """
        extensions = self._server.extensions
        address, parameters = _split_path(argument, "FROM:")
        options = {}
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            options[name.upper()] = value
        if "SMTPUTF8" in options and not extensions.smtputf8:
            return "555 5.5.4 SMTPUTF8 is not supported by this server"
        if (
            options.get("BODY", "").upper() == "8BITMIME"
            and not extensions.eightbitmime
        ):
            return "555 5.5.4 BODY=8BITMIME is not supported by this server"
        if "SIZE" in options:
            if not extensions.size:
                return "555 5.5.4 SIZE is not supported by this server"
            declared = options["SIZE"]
            limit = self._server.max_message_size
            if limit is not None and declared.isdigit() and int(declared) > limit:
                return REPLY_TOO_BIG
        if address and not address.isascii() and "SMTPUTF8" not in options:
            return REPLY_NON_ASCII_ADDRESS
        return None

    def build_ehlo_reply(self, client_name: str) -> list[str]:
        """Return the EHLO reply lines, or a rule's substitute reply."""
        assert self.session is not None
        # aiosmtpd expects an EHLO hook to store the client's name itself.
        self.session.host_name = client_name
        if self._reply_substitute is not None:
            substitute = self._reply_substitute
            self._reply_substitute = None
            return reply_lines(substitute)
        lines = [f"{self.hostname} Hello {client_name}"]
        lines.extend(self._server._ehlo_keywords(self._tls_active()))
        continuation = [f"250-{line}" for line in lines[:-1]]
        return [*continuation, f"250 {lines[-1]}"]

    async def finish_data(self, envelope: Envelope) -> str:
        """Decide on a received message, record it and return the last reply line.

        Called by aiosmtpd after the final "." line. Earlier lines of a multi-line
        reply are pushed here.
        """
        self._start_event("EOD")
        data = envelope.original_content or b""
        limit = self._server.max_message_size
        reply: str | None = None
        if limit is not None and len(data) > limit:
            reply = REPLY_TOO_BIG
        else:
            rule = self._server._match_rule(self._context("EOD", "", None, data))
            if rule is not None:
                if rule.stall > 0:
                    await self._stall(rule.stall)
                if rule.drop == "before_reply":
                    self._store_message(envelope, data, None)
                    await self._close("rule")
                    # Not sent, because _close() has ended the session task.
                    return "451 4.3.0 Connection closed"
                if rule.drop == "after_reply":
                    self._drop_after_reply = True
                    self._set_close_reason("rule")
                reply = rule.reply
        if reply is None:
            queue_id = f"{self._session_id()}.{self._transaction_number}"
            reply = f"250 2.0.0 OK: queued as {queue_id}"
        self._store_message(envelope, data, reply)
        lines = reply_lines(reply)
        for line in lines[:-1]:
            await self.push(line)
        return lines[-1]

    def _store_message(
        self, envelope: Envelope, data: bytes, reply: str | None
    ) -> None:
        assert self._record is not None
        accepted = reply is not None and reply.startswith("2")
        message = RecordedMessage(
            session_id=self._record.session_id,
            transaction_number=self._transaction_number,
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            mail_options=tuple(envelope.mail_options),
            data=bytes(data),
            accepted=accepted,
            reply=reply,
            tls_active=self._tls_active(),
            login=self._login,
            received_at=time.time(),
        )
        if accepted:
            self._session_accepted += 1
        self._server._record_message(self._record, message)

    async def handle_exception(self, error: Exception) -> str:
        """Record an error that aiosmtpd caught and return the reply it sends."""
        assert self._record is not None
        if isinstance(error, TLSSetupException):
            # aiosmtpd closes the connection after a failed handshake and does
            # not send this reply.
            cause = error.__cause__ or error
            self._set_close_reason("tls_failed")
            self._server._record_error(self._record, f"TLS handshake failed: {cause!r}")
            logger.info(
                "session %s: TLS handshake failed: %r", self._session_id(), cause
            )
            return "454 4.7.0 TLS handshake failed"
        self._server._record_error(self._record, f"{type(error).__name__}: {error}")
        logger.error(
            "session %s: error while handling %s",
            self._session_id(),
            self._verb,
            exc_info=error,
        )
        error_text = f"{type(error).__name__}: {error}"
        return f"451 4.3.0 Internal error in FaultSMTPServer: {error_text}"

    # AUTH

    def _verify_login(
        self,
        protocol: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        """Check PLAIN and LOGIN credentials for aiosmtpd (its ``authenticator``)."""
        assert isinstance(auth_data, LoginPassword)
        assert self._record is not None
        login = auth_data.login.decode("utf-8", errors="replace")
        if self._server.basic_auth_disabled:
            success = False
            failure_reply = REPLY_BASIC_AUTH_DISABLED
        else:
            success = self._server._check_password(login, auth_data.password)
            failure_reply = REPLY_BAD_CREDENTIALS
        self._server._record_auth(self._record, mechanism, login, success)
        if success:
            self._login = login
            return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False, message=failure_reply)

    async def auth_XOAUTH2(self, _: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        """Handle AUTH XOAUTH2 with the server's token validator.

        aiosmtpd finds this method by its ``auth_`` prefix. On failure the server
        sends a 334 challenge with a base64 JSON error, reads one line from the
        client (usually empty) and then replies 535.
        """
        assert self._record is not None
        if len(args) == 1:
            response = await self.challenge_auth("", encode_to_b64=False)
            if response is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                response = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                await self.push("501 5.5.2 Cannot decode base64")
                return AuthResult(success=False, handled=True)
        assert isinstance(response, bytes)
        decoded = response.decode("utf-8", errors="replace")
        user, token = _parse_xoauth2(decoded)
        success = (
            user is not None
            and token is not None
            and self._server._check_xoauth2(user, token)
        )
        self._server._record_auth(
            self._record, "XOAUTH2", user, success, xoauth2_string=decoded
        )
        if success:
            self._login = user
            return AuthResult(success=True, auth_data=user)
        await self.push(f"334 {_XOAUTH2_ERROR_CHALLENGE}")
        await self._reader.readline()
        return AuthResult(success=False, handled=False, message=REPLY_BAD_CREDENTIALS)

    # Replies, delays and connection control

    async def push(self, status: str | bytes) -> None:  # type: ignore[override]
        """Queue one reply line, then send the queue unless the reply is held.

        The first final line of a command (not a continuation line and not a 334
        AUTH challenge) takes the command's delay and a rule's substitute text.
        """
        text = (
            status
            if isinstance(status, str)
            else status.decode("utf-8", "surrogateescape")
        )
        is_last_line = len(text) < 4 or text[3] != "-"
        is_challenge = text.startswith("334")
        lines = [text]
        if is_last_line and not is_challenge:
            if self._reply_substitute is not None:
                lines = reply_lines(self._reply_substitute)
                self._reply_substitute = None
            elif self._server.extensions.enhanced_status_codes:
                lines = [_ENHANCED_SUCCESS.get((self._verb, text), text)]
            self._pending_due = max(self._pending_due, self._command_due)
            self._command_due = 0.0
        for line in lines:
            self._note_reply(line)
            self._output.append(line.encode("utf-8", "surrogateescape") + b"\r\n")
        if not is_last_line or self._should_queue_reply():
            return
        await self._flush()
        if self._drop_after_reply and not is_challenge:
            self._drop_after_reply = False
            await self._close(self._close_reason or "rule")

    async def _send_reply(self, reply: str) -> None:
        for line in reply_lines(reply):
            await self.push(line)

    async def _send_and_close(self, reply: str, reason: CloseReason) -> None:
        self._set_close_reason(reason)
        self._drop_after_reply = True
        await self._send_reply(reply)

    def _note_reply(self, line: str) -> None:
        if self._record is not None:
            self._server._record_reply(self._record, line)

    def _should_queue_reply(self) -> bool:
        """Return whether a pipelined reply should wait for the rest of its group."""
        if not self._server.extensions.pipelining or self._drop_after_reply:
            return False
        if self._verb not in _PIPELINABLE_VERBS:
            return False
        # A complete line in the input buffer means the client pipelined the next
        # command. aiosmtpd reads it right after this reply, and readuntil()
        # returns at once for a buffered line, so a queued reply cannot deadlock.
        buffer = getattr(self._reader, "_buffer", None)
        return buffer is not None and b"\n" in buffer

    async def _flush(self) -> None:
        """Wait until the queued replies are due, then send them all."""
        if self._pending_due > 0:
            wait = self._pending_due - asyncio.get_running_loop().time()
            self._pending_due = 0.0
            if wait > 0:
                await self._sleep(wait)
        if not self._output:
            return
        self._replied_at = self.loop.time()
        data = b"".join(self._output)
        self._output.clear()
        if self.transport is None or self.transport.is_closing():
            return
        self._writer.write(data)
        await self._writer.drain()
        self._reset_timeout()

    async def _sleep(self, seconds: float) -> None:
        # The idle timer must not fire while the server itself is waiting.
        self._reset_timeout(seconds + self._timeout_duration)
        await asyncio.sleep(seconds)

    async def _stall(self, seconds: float) -> None:
        duration = min(seconds, self._server.max_stall)
        await self._flush()
        logger.debug(
            "session %s: stalling %s for %.3f s",
            self._session_id(),
            self._verb,
            duration,
        )
        await self._sleep(duration)

    async def _close(self, reason: CloseReason) -> None:
        """Send queued replies, close the connection and end the session task."""
        self._set_close_reason(reason)
        await self._flush()
        logger.info(
            "session %s: closing the connection at %s (%s)",
            self._session_id(),
            self._verb,
            reason,
        )
        if self.transport is not None:
            self.transport.close()
        # Cancelling the session task is how aiosmtpd's own QUIT ends a session.
        # The cancellation takes effect at the await below.
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()
        await asyncio.sleep(0)

    def _start_event(self, event: str) -> None:
        self._verb = event
        # A delay counts from the arrival of the command's last bytes, or from
        # the previous reply when the command was waiting behind it, and from
        # now for the greeting. The server's own work on the command is then
        # part of the delay, as it is in a provider's latency.
        delay = self._server._delay_for(event, self._implicit_tls)
        now = self.loop.time()
        start = now
        if self._received_at is not None:
            start = min(now, max(self._received_at, self._replied_at))
        self._command_due = start + delay if delay > 0 else 0.0
        self._reply_substitute = None
        self._drop_after_reply = False

    def _set_close_reason(self, reason: CloseReason) -> None:
        if self._close_reason is None:
            self._close_reason = reason

    def _tls_active(self) -> bool:
        return self._implicit_tls or self._tls_protocol is not None

    def _session_id(self) -> int | None:
        return self._record.session_id if self._record is not None else None

    def _context(
        self, event: str, argument: str, address: str | None, data: bytes | None = None
    ) -> CommandContext:
        assert self._record is not None
        return CommandContext(
            event=event,
            argument=argument,
            address=address,
            session_id=self._record.session_id,
            transaction_number=self._transaction_number,
            session_transaction_number=self._session_transactions,
            accepted_messages=self._server._accepted_message_count(),
            session_accepted_messages=self._session_accepted,
            tls_active=self._tls_active(),
            login=self._login,
            data=data,
        )


def _tls_version(transport: asyncio.BaseTransport) -> str | None:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    version: str | None = ssl_object.version()
    return version


def _mask_credentials(verb: str, argument: str) -> str:
    """Replace the initial response of an AUTH command with asterisks."""
    if verb != "AUTH":
        return argument
    mechanism, separator, _ = argument.partition(" ")
    return f"{mechanism} ********" if separator else mechanism


def _split_path(argument: str, keyword: str) -> tuple[str | None, list[str]]:
    """Split "FROM:<address> PARAM=value ..." into the address and the parameters.

    Returns (None, []) when ``keyword`` is missing or the angle bracket is not closed.
    """
    if argument[: len(keyword)].upper() != keyword:
        return None, []
    rest = argument[len(keyword) :].strip()
    if rest.startswith("<"):
        end = rest.find(">")
        if end < 0:
            return None, []
        return rest[1:end], rest[end + 1 :].split()
    path, _, parameters = rest.partition(" ")
    return path, parameters.split()


def _parse_xoauth2(decoded: str) -> tuple[str | None, str | None]:
    """Return (user, token) from "user=...\\x01auth=Bearer ...\\x01\\x01"."""
    user = None
    token = None
    for part in decoded.split("\x01"):
        if part.startswith("user="):
            user = part[len("user=") :]
        elif part.lower().startswith("auth=bearer "):
            token = part[len("auth=bearer ") :]
    return user, token
