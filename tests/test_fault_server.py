"""Tests for mailkit.testing.FaultSMTPServer, driven by smtplib and raw sockets.

Timing checks use generous bounds because CI machines vary. Where possible the
tests assert on what the server recorded instead.
"""

from __future__ import annotations

import base64
import shutil
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest

from mailkit.testing import (
    CertificateAuthority,
    Extensions,
    FaultSMTPServer,
    Rule,
    TestCertificates,
    defer_recipient,
    drop_at,
    make_test_certificates,
    quota_exceeded_after,
    reject_recipient,
    reply_to_transaction,
    stall_at,
)

pytestmark = pytest.mark.timeout(60)

SENDER = "sender@example.com"
RECIPIENT = "rcpt@example.com"
MESSAGE = b"Subject: test\r\n\r\nHello\r\n"


class RawClient:
    """Line-based SMTP client on a plain socket, for byte-exact and pipelined input."""

    def __init__(self, server: FaultSMTPServer, timeout: float = 5.0) -> None:
        self.socket = socket.create_connection(
            (server.host, server.port), timeout=timeout
        )
        self.file = self.socket.makefile("rb")

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def read_reply(self) -> list[str]:
        """Read one reply, which may span several lines, and return its lines."""
        lines: list[str] = []
        for _ in range(100):
            line = self.file.readline()
            if not line:
                raise ConnectionError(f"server closed the connection after {lines!r}")
            text = line.decode("utf-8").rstrip("\r\n")
            lines.append(text)
            if text[3:4] != "-":
                return lines
        raise AssertionError(f"reply has more than 100 lines: {lines[:5]!r} ...")

    def close(self) -> None:
        self.file.close()
        self.socket.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@pytest.fixture(scope="module")
def certificates() -> TestCertificates:
    return make_test_certificates()


@pytest.fixture
def server() -> Iterator[FaultSMTPServer]:
    with FaultSMTPServer() as running:
        yield running


def connect(server: FaultSMTPServer, timeout: float = 5.0) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, timeout=timeout)


def send_one(server: FaultSMTPServer, recipients: list[str] | None = None) -> dict:
    with connect(server) as client:
        return client.sendmail(SENDER, recipients or [RECIPIENT], MESSAGE)


# Recording


def test_records_commands_and_raw_data(server: FaultSMTPServer) -> None:
    data = b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\nlast line\r\n"
    with connect(server) as client:
        client.ehlo("client.example")
        client.sendmail(SENDER, [RECIPIENT], data, mail_options=["BODY=8BITMIME"])
    server.wait_for_idle()

    [session] = server.sessions
    assert session.session_id == 1
    assert session.peer[0] == "127.0.0.1"
    assert session.tls_active is False
    assert session.close_reason == "quit"
    assert session.ended_at is not None
    assert session.commands == [
        ("EHLO", "client.example"),
        ("MAIL", f"FROM:<{SENDER}> size={len(data)} BODY=8BITMIME"),
        ("RCPT", f"TO:<{RECIPIENT}>"),
        ("DATA", ""),
        ("QUIT", ""),
    ]
    assert session.replies[0] == "220 mx.mailkit.test ESMTP mailkit FaultSMTPServer"
    assert session.replies[-3:] == [
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 OK: queued as 1.1",
        "221 2.0.0 Bye",
    ]

    [message] = server.messages
    assert message.data == data
    assert message.mail_from == SENDER
    assert message.rcpt_tos == (RECIPIENT,)
    assert message.declared_size == len(data)
    assert message.body_type == "8BITMIME"
    assert message.smtputf8 is False
    assert message.accepted is True
    assert message.transaction_number == 1
    assert session.messages == [message]


def test_records_are_copies(server: FaultSMTPServer) -> None:
    send_one(server)
    server.wait_for_idle()

    server.sessions[0].commands.clear()

    assert len(server.sessions[0].commands) == 5


def test_counters_track_connections(server: FaultSMTPServer) -> None:
    send_one(server)
    send_one(server)
    server.wait_for_idle()

    assert server.connection_count == 2
    assert server.active_session_count == 0
    assert server.max_concurrent_sessions == 1
    assert [session.session_id for session in server.sessions] == [1, 2]
    assert len(server.wait_for_messages(2)) == 2


def test_reset_forgets_records() -> None:
    with FaultSMTPServer(rules=[quota_exceeded_after(1)]) as server:
        send_one(server)
        with connect(server) as client:
            with pytest.raises(RuntimeError, match="1 open connections"):
                server.reset()
            client.noop()
        server.wait_for_idle()
        server.reset()
        send_one(server)
        server.wait_for_idle()

    assert [session.session_id for session in server.sessions] == [1]
    assert [message.transaction_number for message in server.messages] == [1]
    assert server.connection_count == 1


def test_unknown_command_is_recorded(server: FaultSMTPServer) -> None:
    with connect(server) as client:
        code, reply = client.docmd("XFOO", "bar")
    server.wait_for_idle()

    assert code == 500
    assert b"XFOO" in reply
    assert ("XFOO", "bar") in server.sessions[0].commands


# Reply rules


def test_rejected_recipient_is_not_recorded() -> None:
    rules = [reject_recipient("Gone@Example.com")]
    with FaultSMTPServer(rules=rules) as server:
        refused = send_one(server, ["gone@example.com", RECIPIENT])

    assert refused == {
        "gone@example.com": (
            550,
            b"5.1.1 The email account that you tried to reach does not exist",
        )
    }
    assert server.messages[0].rcpt_tos == (RECIPIENT,)


def test_deferred_recipient_accepted_after_retries() -> None:
    with FaultSMTPServer(rules=[defer_recipient(RECIPIENT, times=2)]) as server:
        with connect(server) as client:
            for _ in range(2):
                with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
                    client.sendmail(SENDER, [RECIPIENT], MESSAGE)
                assert caught.value.recipients[RECIPIENT][0] == 451
            client.sendmail(SENDER, [RECIPIENT], MESSAGE)

    assert len(server.messages) == 1
    assert server.messages[0].transaction_number == 3


def test_transaction_reply_rejects_message() -> None:
    rules = [reply_to_transaction(2, "451 4.3.0 Try again later")]
    with FaultSMTPServer(rules=rules) as server:
        with connect(server) as client:
            client.sendmail(SENDER, [RECIPIENT], MESSAGE)
            with pytest.raises(smtplib.SMTPDataError) as caught:
                client.sendmail(SENDER, [RECIPIENT], MESSAGE)
            client.sendmail(SENDER, [RECIPIENT], MESSAGE)
        server.wait_for_idle()

    assert caught.value.smtp_code == 451
    assert [message.transaction_number for message in server.messages] == [1, 3]
    rejected = server.sessions[0].messages[1]
    assert rejected.accepted is False
    assert rejected.reply == "451 4.3.0 Try again later"


def test_transaction_reply_replaces_success_text() -> None:
    rules = [reply_to_transaction(1, "250 2.0.0 OK id=custom-42")]
    with FaultSMTPServer(rules=rules) as server, connect(server) as client:
        client.ehlo()
        client.mail(SENDER)
        client.rcpt(RECIPIENT)
        code, reply = client.data(MESSAGE)

    assert code == 250
    assert reply == b"2.0.0 OK id=custom-42"
    assert server.messages[0].reply == "250 2.0.0 OK id=custom-42"


def test_multiline_rule_reply() -> None:
    rule = Rule("MAIL", reply="550 5.7.1 Rejected\n550 5.7.1 See the policy page")
    with FaultSMTPServer(rules=[rule]) as server, connect(server) as client:
        client.ehlo()
        code, reply = client.mail(SENDER)

    assert code == 550
    assert reply == b"5.7.1 Rejected\n5.7.1 See the policy page"


def test_quota_rejects_mail_after_count() -> None:
    with FaultSMTPServer(rules=[quota_exceeded_after(2)]) as server:
        send_one(server)
        send_one(server)
        with pytest.raises(smtplib.SMTPSenderRefused) as caught:
            send_one(server)

    assert caught.value.smtp_code == 550
    assert caught.value.smtp_error == b"5.4.5 Daily sending quota exceeded"
    assert len(server.messages) == 2


def failing_predicate(context: object) -> bool:
    raise KeyError("broken predicate")


def test_predicate_error_is_reported() -> None:
    rules = [
        Rule("RCPT", reply="550 5.1.1 No", when=failing_predicate),
        Rule("GREETING", session=2, when=failing_predicate),
    ]
    with FaultSMTPServer(rules=rules) as server:
        with connect(server) as client:
            client.ehlo()
            client.mail(SENDER)
            code, reply = client.rcpt(RECIPIENT)
        with pytest.raises(smtplib.SMTPConnectError) as caught:
            connect(server)
        server.wait_for_idle()

    assert code == 451
    assert reply.startswith(b"4.3.0 Internal error in FaultSMTPServer: KeyError")
    assert caught.value.smtp_code == 421
    first, second = server.sessions
    assert first.errors == ["KeyError: 'broken predicate'"]
    assert second.errors == ["KeyError: 'broken predicate'"]
    assert second.close_reason == "error"


def test_rule_validation_errors() -> None:
    with pytest.raises(ValueError, match="Invalid rule event 'BOGUS'"):
        Rule("BOGUS")
    with pytest.raises(ValueError, match="Invalid SMTP reply"):
        Rule("RCPT", reply="five fifty")
    with pytest.raises(ValueError, match="same code"):
        Rule("RCPT", reply="550 a\n551 b")
    with pytest.raises(ValueError, match="Invalid drop point"):
        Rule("EOD", drop="later")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="can only match MAIL or RCPT"):
        Rule("DATA", address=RECIPIENT)
    with pytest.raises(ValueError, match="Invalid delay name 'helo'"):
        FaultSMTPServer(delays={"helo": 1.0})
    with pytest.raises(ValueError, match="Invalid delay for 'mail'"):
        FaultSMTPServer(delays={"mail": -1.0})


# Drops and stalls


def test_drop_after_final_dot_is_unknown_outcome() -> None:
    with FaultSMTPServer(rules=[drop_at("EOD")]) as server:
        client = connect(server)
        try:
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.sendmail(SENDER, [RECIPIENT], MESSAGE)
        finally:
            client.close()
        server.wait_for_idle()

    [session] = server.sessions
    assert session.close_reason == "rule"
    assert session.replies[-1].startswith("354 ")
    [message] = session.messages
    assert message.data == MESSAGE
    assert message.accepted is False
    assert message.reply is None
    assert server.messages == []


def test_drop_after_mail_reply() -> None:
    with FaultSMTPServer(rules=[drop_at("MAIL", after_reply=True)]) as server:
        client = connect(server)
        try:
            client.ehlo()
            assert client.mail(SENDER)[0] == 250
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.rcpt(RECIPIENT)
        finally:
            client.close()
        server.wait_for_idle()

    [session] = server.sessions
    assert session.close_reason == "rule"
    assert session.replies[-1] == "250 2.1.0 OK"


def test_drop_only_in_chosen_session() -> None:
    with FaultSMTPServer(rules=[drop_at("GREETING", session=1)]) as server:
        with pytest.raises(smtplib.SMTPServerDisconnected):
            connect(server)
        send_one(server)
        server.wait_for_idle()

    assert [session.close_reason for session in server.sessions] == ["rule", "quit"]
    assert server.sessions[0].replies == []


def test_stall_delays_rcpt_reply() -> None:
    with (
        FaultSMTPServer(rules=[stall_at("RCPT", 0.5)]) as server,
        connect(server) as client,
    ):
        client.ehlo()
        client.mail(SENDER)
        started = time.monotonic()
        code, _ = client.rcpt(RECIPIENT)
        elapsed = time.monotonic() - started

    assert code == 250
    assert 0.45 <= elapsed < 3.0


def test_stalled_greeting_times_out_client() -> None:
    with FaultSMTPServer(rules=[stall_at("GREETING")]) as server:
        with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
            connect(server, timeout=0.3)
        server.wait_for_idle()

    assert server.sessions[0].close_reason == "client"


def test_client_closing_during_greeting_delay_ends_session() -> None:
    # The closed session must not count against the session limit any more.
    with FaultSMTPServer(delays={"greeting": 0.3}, concurrent_session_limit=1) as server:
        socket.create_connection((server.host, server.port), timeout=2).close()
        server.wait_until(lambda: server.connection_count == 1)
        # Less than the greeting delay, so the session ends on the client's close.
        server.wait_for_idle(timeout=0.2)
        with connect(server, timeout=2) as client:
            code, _ = client.noop()

    assert server.sessions[0].close_reason == "client"
    assert server.sessions[1].close_reason == "quit"
    assert code == 250


def test_stop_is_fast_with_stalled_session() -> None:
    server = FaultSMTPServer(rules=[stall_at("GREETING")], max_stall=60.0)
    server.start()
    with RawClient(server) as client:
        server.wait_until(lambda: server.active_session_count == 1)
        started = time.monotonic()
        server.stop()
        elapsed = time.monotonic() - started
        assert client.socket.recv(100) == b""

    assert elapsed < 3.0
    assert server.sessions[0].close_reason == "server_stopped"


def test_stop_leaves_no_thread_or_listener() -> None:
    threads_before = set(threading.enumerate())
    server = FaultSMTPServer().start()
    port = server.port
    send_one(server)
    server.stop()
    server.stop()

    assert set(threading.enumerate()) <= threads_before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_restart_after_stop() -> None:
    server = FaultSMTPServer()
    with server:
        send_one(server)
    with server:
        send_one(server)

    assert len(server.messages) == 2


# Limits


def test_session_cap_rejects_extra_connection() -> None:
    with FaultSMTPServer(concurrent_session_limit=2) as server:
        first = connect(server)
        second = connect(server)
        with pytest.raises(smtplib.SMTPConnectError) as caught:
            connect(server)
        first.quit()
        second.quit()
        server.wait_for_idle()
        send_one(server)

    assert caught.value.smtp_code == 421
    assert caught.value.smtp_error == b"4.7.0 Too many concurrent SMTP connections"
    assert server.max_concurrent_sessions == 3
    assert [session.close_reason for session in server.sessions] == [
        "quit",
        "quit",
        "limit",
        "quit",
    ]


def test_login_limit_rejects_extra_attempts() -> None:
    server = FaultSMTPServer(credentials={"user": "secret-pw"}, login_attempt_limit=2)
    with server:
        for _ in range(2):
            with connect(server) as client:
                client.login("user", "secret-pw")
        with connect(server) as client:
            with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
                client.login("user", "secret-pw")

    assert caught.value.smtp_code == 454
    assert caught.value.smtp_error == b"4.7.0 Too many login attempts, try again later"
    assert server.login_count == 2
    assert server.login_attempt_count == 2
    assert server.sessions[2].login is None


def test_session_message_limit_closes_connection() -> None:
    with FaultSMTPServer(session_message_limit=2) as server:
        with connect(server) as client:
            client.sendmail(SENDER, [RECIPIENT], MESSAGE)
            client.sendmail(SENDER, [RECIPIENT], MESSAGE)
            with pytest.raises(smtplib.SMTPSenderRefused) as caught:
                client.sendmail(SENDER, [RECIPIENT], MESSAGE)
        server.wait_for_idle()

    assert caught.value.smtp_code == 421
    assert len(server.messages) == 2
    assert server.sessions[0].close_reason == "limit"


def test_throttle_window_rejects_extra_messages() -> None:
    with FaultSMTPServer(throttle_message_limit=2, throttle_window=60.0) as server:
        send_one(server)
        send_one(server)
        with pytest.raises(smtplib.SMTPSenderRefused) as caught:
            send_one(server)

    assert caught.value.smtp_code == 421
    assert caught.value.smtp_error == b"4.7.0 Try again later, closing connection"
    assert len(server.messages) == 2


def test_idle_timeout_closes_connection() -> None:
    with FaultSMTPServer(idle_timeout=0.3) as server:
        client = connect(server)
        try:
            client.ehlo()
            server.wait_until(lambda: server.active_session_count == 0, timeout=5.0)
        finally:
            client.close()

    [session] = server.sessions
    assert session.close_reason == "idle_timeout"
    assert session.replies[-1] == "421 4.4.2 mx.mailkit.test Error: timeout exceeded"


def test_size_limit_enforced_at_mail_and_data() -> None:
    big_message = MESSAGE + b"x" * 200 + b"\r\n"
    with FaultSMTPServer(max_message_size=100) as server, connect(server) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as caught:
            client.sendmail(SENDER, [RECIPIENT], big_message)
        client.mail(SENDER)
        client.rcpt(RECIPIENT)
        code, reply = client.data(big_message)

    assert caught.value.smtp_code == 552
    assert code == 552
    assert reply == b"5.3.4 Message size exceeds fixed maximum message size"
    assert server.messages == []


# EHLO extensions


@pytest.mark.parametrize(
    ("max_message_size", "extensions", "expected"),
    [
        (1000, Extensions(), "1000"),
        (None, Extensions(), "0"),
        (1000, Extensions(size_value=0), "0"),
        (None, Extensions(size_value=None), ""),
        (None, Extensions(size=False), None),
    ],
)
def test_size_advertisement(
    max_message_size: int | None, extensions: Extensions, expected: str | None
) -> None:
    server = FaultSMTPServer(max_message_size=max_message_size, extensions=extensions)
    with server, connect(server) as client:
        client.ehlo()

    assert client.esmtp_features.get("size") == expected


def test_extensions_can_be_hidden() -> None:
    extensions = Extensions(
        pipelining=False,
        smtputf8=False,
        eightbitmime=False,
        auth_mechanisms=(),
        enhanced_status_codes=False,
    )
    with FaultSMTPServer(extensions=extensions) as server, connect(server) as client:
        client.ehlo()

    assert sorted(client.esmtp_features) == ["size"]


def test_unadvertised_parameters_are_rejected() -> None:
    extensions = Extensions(smtputf8=False, eightbitmime=False, size=False)
    with FaultSMTPServer(extensions=extensions) as server, connect(server) as client:
        client.ehlo()
        replies = [
            client.docmd("MAIL", f"FROM:<{SENDER}> SMTPUTF8"),
            client.docmd("MAIL", f"FROM:<{SENDER}> BODY=8BITMIME"),
            client.docmd("MAIL", f"FROM:<{SENDER}> SIZE=10"),
        ]

    assert [code for code, _ in replies] == [555, 555, 555]


def test_non_ascii_address_needs_smtputf8() -> None:
    with FaultSMTPServer(extensions=Extensions(smtputf8=False)) as server:
        with RawClient(server) as client:
            client.read_reply()
            client.send(b"EHLO client.example\r\n")
            client.read_reply()
            client.send("MAIL FROM:<jörg@example.com>\r\n".encode())
            reply = client.read_reply()

    assert reply == ["553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter"]


def test_smtputf8_message_is_recorded() -> None:
    with FaultSMTPServer() as server, connect(server) as client:
        client.sendmail(
            "jörg@example.com", ["zoë@example.com"], MESSAGE, mail_options=["SMTPUTF8"]
        )

    [message] = server.messages
    assert message.mail_from == "jörg@example.com"
    assert message.rcpt_tos == ("zoë@example.com",)
    assert message.smtputf8 is True


# AUTH


def test_wrong_password_rejected_and_masked() -> None:
    with (
        FaultSMTPServer(credentials={"user": "right-pw"}) as server,
        connect(server) as client,
    ):
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            client.login("user", "wrong-pw")
    server.wait_for_idle()

    assert caught.value.smtp_code == 535
    assert caught.value.smtp_error == b"5.7.8 Username and Password not accepted"
    [session] = server.sessions
    assert [(a.mechanism, a.login, a.success) for a in session.auth_attempts] == [
        ("PLAIN", "user", False),
        ("LOGIN", "user", False),
    ]
    auth_commands = [argument for verb, argument in session.commands if verb == "AUTH"]
    assert auth_commands == ["PLAIN ********", "LOGIN ********"]
    assert "wrong-pw" not in repr(session)
    assert "right-pw" not in repr(server)
    encoded = base64.b64encode(b"\0user\0wrong-pw").decode()
    assert encoded not in repr(session)


def test_login_records_mechanism_and_name() -> None:
    with FaultSMTPServer(credentials={"user": "pw"}, auth_required=True) as server:
        with connect(server) as client:
            client.ehlo()
            assert client.mail(SENDER)[0] == 530
            client.rset()
            client.login("user", "pw")
            client.sendmail(SENDER, [RECIPIENT], MESSAGE)

    [session] = server.sessions
    assert session.auth_mechanism == "PLAIN"
    assert session.login == "user"
    assert server.login_count == 1
    assert server.messages[0].login == "user"


def test_basic_auth_disabled_reply() -> None:
    extensions = Extensions(auth_mechanisms=("LOGIN", "XOAUTH2"))
    server = FaultSMTPServer(extensions=extensions, basic_auth_disabled=True)
    with server, connect(server) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            client.login("user@example.com", "pw")

    assert caught.value.smtp_code == 535
    assert caught.value.smtp_error == (
        b"5.7.139 Authentication unsuccessful, basic authentication is disabled"
    )


def xoauth2_authobject(user: str, token: str):  # type: ignore[no-untyped-def]
    initial = f"user={user}\x01auth=Bearer {token}\x01\x01"

    def authobject(challenge: bytes | None = None) -> str:
        # A client responds to the error challenge with an empty line.
        return "" if challenge is not None else initial

    return authobject


def test_xoauth2_token_validation() -> None:
    tokens = {"user@example.com": "good-token"}
    server = FaultSMTPServer(
        extensions=Extensions(auth_mechanisms=("XOAUTH2",)),
        xoauth2_validator=lambda user, token: tokens.get(user) == token,
    )
    with server:
        with connect(server) as client:
            client.ehlo()
            code, _ = client.auth(
                "XOAUTH2", xoauth2_authobject("user@example.com", "good-token")
            )
        with connect(server) as client:
            client.ehlo()
            with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
                client.auth(
                    "XOAUTH2", xoauth2_authobject("user@example.com", "bad-token")
                )
        server.wait_for_idle()

    assert code == 235
    assert caught.value.smtp_code == 535
    accepted, rejected = server.sessions
    assert accepted.auth_mechanism == "XOAUTH2"
    assert accepted.login == "user@example.com"
    assert (
        accepted.xoauth2_string
        == "user=user@example.com\x01auth=Bearer good-token\x01\x01"
    )
    assert "good-token" not in repr(accepted)
    assert rejected.login is None
    assert rejected.auth_attempts[0].success is False


# Delays and pipelining


def test_delays_scaled_per_command() -> None:
    delays = {"greeting": 0.4, "mail": 0.4, "rcpt": 0.4, "data": 0.4, "eod": 0.4}
    with FaultSMTPServer(delays=delays, delay_scale=0.25) as server:
        started = time.monotonic()
        client = connect(server)
        greeting_seconds = time.monotonic() - started
        with client:
            client.ehlo()
            started = time.monotonic()
            client.sendmail(SENDER, [RECIPIENT], MESSAGE)
            transaction_seconds = time.monotonic() - started

    # 0.1 s for the greeting, and 4 x 0.1 s for MAIL, RCPT, DATA and end of data.
    assert 0.09 <= greeting_seconds < 1.0
    assert 0.38 <= transaction_seconds < 2.0


def test_auth_delay_applies_once_per_login() -> None:
    # AUTH LOGIN takes three round trips, and only the final reply is delayed.
    with FaultSMTPServer(delays={"auth": 0.3}) as server, connect(server) as client:
        client.ehlo()
        client.user, client.password = "user", "pw"
        started = time.monotonic()
        code, _ = client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        elapsed = time.monotonic() - started

    assert code == 235
    assert 0.28 <= elapsed < 0.6
    assert server.sessions[0].replies[-4:-1] == [
        "334 VXNlciBOYW1lAA==",
        "334 UGFzc3dvcmQA",
        "235 2.7.0 Authentication successful",
    ]


def pipelined_group_seconds(server: FaultSMTPServer) -> tuple[float, list[str]]:
    """Send MAIL, RCPT and DATA in one write and return the time until the 354 reply."""
    with RawClient(server) as client:
        client.read_reply()
        client.send(b"EHLO client.example\r\n")
        client.read_reply()
        started = time.monotonic()
        client.send(
            f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RECIPIENT}>\r\nDATA\r\n".encode()
        )
        replies = [client.read_reply()[0] for _ in range(3)]
        elapsed = time.monotonic() - started
        client.send(MESSAGE + b".\r\nQUIT\r\n")
        replies.append(client.read_reply()[0])
        replies.append(client.read_reply()[0])
    return elapsed, replies


def test_pipelined_group_costs_one_delay() -> None:
    delays = {"mail": 0.3, "rcpt": 0.3, "data": 0.3}
    with FaultSMTPServer(delays=delays) as server:
        elapsed, replies = pipelined_group_seconds(server)
        server.wait_for_idle()

    assert replies == [
        "250 2.1.0 OK",
        "250 2.1.5 OK",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 OK: queued as 1.1",
        "221 2.0.0 Bye",
    ]
    assert 0.28 <= elapsed < 0.6
    assert server.messages[0].data == MESSAGE


def test_delays_add_up_without_pipelining() -> None:
    delays = {"mail": 0.3, "rcpt": 0.3, "data": 0.3}
    with FaultSMTPServer(
        delays=delays, extensions=Extensions(pipelining=False)
    ) as server:
        elapsed, replies = pipelined_group_seconds(server)

    assert replies[:3] == [
        "250 2.1.0 OK",
        "250 2.1.5 OK",
        "354 End data with <CR><LF>.<CR><LF>",
    ]
    assert elapsed >= 0.85


def test_pipelined_rejection_keeps_order() -> None:
    rules = [reject_recipient(RECIPIENT)]
    with FaultSMTPServer(rules=rules, delays={"mail": 0.2, "rcpt": 0.2}) as server:
        with RawClient(server) as client:
            client.read_reply()
            client.send(b"EHLO client.example\r\n")
            client.read_reply()
            group = f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RECIPIENT}>\r\nDATA\r\nQUIT\r\n"
            client.send(group.encode())
            replies = [client.read_reply()[0] for _ in range(4)]

    assert replies[0] == "250 2.1.0 OK"
    assert replies[1].startswith("550 5.1.1 ")
    assert replies[2].startswith("503 ")
    assert replies[3] == "221 2.0.0 Bye"


# TLS


def test_starttls_with_test_ca(certificates: TestCertificates) -> None:
    server = FaultSMTPServer(
        tls="starttls",
        certificate=certificates.server,
        require_tls_for_auth=True,
        credentials={"user": "pw"},
    )
    with server, connect(server) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")
        code, reply = client.docmd(
            "AUTH", "PLAIN " + base64.b64encode(b"\0user\0pw").decode()
        )
        assert (code, reply) == (530, b"5.7.0 Must issue a STARTTLS command first")
        client.starttls(context=certificates.authority.client_context())
        client.ehlo()
        assert client.has_extn("auth")
        assert not client.has_extn("starttls")
        client.login("user", "pw")
        client.sendmail(SENDER, [RECIPIENT], MESSAGE)

    assert server.url.startswith("smtp+starttls://127.0.0.1:")
    [session] = server.sessions
    assert session.tls_active is True
    assert session.tls_version is not None
    assert session.tls_version.startswith("TLS")
    assert session.login == "user"
    assert server.messages[0].tls_active is True


@pytest.mark.parametrize("certificate_name", ["self_signed", "wrong_host"])
def test_starttls_rejects_bad_certificate(
    certificates: TestCertificates, certificate_name: str
) -> None:
    certificate = getattr(certificates, certificate_name)
    with FaultSMTPServer(tls="starttls", certificate=certificate) as server:
        client = connect(server)
        try:
            client.ehlo()
            with pytest.raises(ssl.SSLCertVerificationError):
                client.starttls(context=certificates.authority.client_context())
        finally:
            client.close()
        server.wait_for_idle()

    [session] = server.sessions
    assert session.tls_active is False
    assert session.close_reason == "tls_failed"
    assert session.errors[0].startswith("TLS handshake failed")


def test_implicit_tls_session(certificates: TestCertificates) -> None:
    server = FaultSMTPServer(tls="implicit", certificate=certificates.server)
    with server:
        context = certificates.authority.client_context()
        with smtplib.SMTP_SSL(
            server.host, server.port, context=context, timeout=5
        ) as client:
            client.ehlo()
            assert not client.has_extn("starttls")
            client.sendmail(SENDER, [RECIPIENT], MESSAGE)

    assert server.url.startswith("smtps://127.0.0.1:")
    assert server.sessions[0].tls_active is True
    assert server.messages[0].tls_active is True


def test_generated_certificate_is_trusted() -> None:
    server = FaultSMTPServer(tls="starttls")
    with server, connect(server) as client:
        client.starttls(context=server.client_ssl_context())
        client.sendmail(SENDER, [RECIPIENT], MESSAGE)

    assert server.url.startswith("smtp://")
    assert server.messages[0].tls_active is True


@pytest.mark.parametrize("backend", ["openssl", "cryptography"])
def test_certificate_backend_handshake(backend: str) -> None:
    if backend == "cryptography":
        pytest.importorskip("cryptography")
    elif shutil.which("openssl") is None:
        pytest.skip("no openssl command on PATH")
    authority = CertificateAuthority.create(backend=backend)  # type: ignore[arg-type]
    server = FaultSMTPServer(tls="implicit", certificate=authority.issue())
    with server:
        context = authority.client_context()
        context.verify_flags |= ssl.VERIFY_X509_STRICT
        with smtplib.SMTP_SSL(
            "localhost", server.port, context=context, timeout=5
        ) as client:
            code, _ = client.noop()

    assert code == 250
    assert server.sessions[0].tls_active is True
