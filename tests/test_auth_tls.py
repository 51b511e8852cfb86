"""Logins, XOAUTH2 tokens, TLS modes and certificate checks, on the server's record."""

from __future__ import annotations

import base64
import logging
import os
import socket
import ssl
import time
import warnings

import pytest

import mailkit
from fault_helpers import accepted_recipients, commands, frame, send, statuses
from mailkit.testing import Extensions, FaultSMTPServer, Rule, make_test_certificates
from mailkit.transport import Connection, make_ssl_context

USER = "sender@example.com"
PASSWORD = "app-password-123"

GMAIL_BAD_CREDENTIALS = (
    "535 5.7.8 Username and Password not accepted. For more information, go to\n"
    "535 5.7.8 https://support.google.com/mail/?p=BadCredentials x1-20020a17"
)


@pytest.fixture(scope="module")
def certificates():
    return make_test_certificates()


@pytest.fixture(scope="module")
def cafile(certificates, tmp_path_factory):
    return str(certificates.authority.write_certificate(tmp_path_factory.mktemp("ca") / "ca.pem"))


def _config(server, security="starttls", **settings):
    settings.setdefault("username", USER)
    settings.setdefault("password", PASSWORD)
    return mailkit.SMTPConfig(host="127.0.0.1", port=server.port, security=security, **settings)


def _auth_commands(server):
    return commands(server, "AUTH")


# -- C22: TLS mode versus port, STARTTLS before AUTH, rejected credentials -------------


def test_c22_implicit_tls_against_starttls_port(certificates, cafile):
    with FaultSMTPServer(tls="starttls", certificate=certificates.server) as server:
        with pytest.raises(mailkit.ConfigurationError) as caught:
            send(frame(3), _config(server, security="tls", cafile=cafile))

    message = str(caught.value)
    assert "did not answer with TLS" in message
    assert "STARTTLS (smtp+starttls://)" in message
    assert "465" in message
    assert not _auth_commands(server)
    assert not commands(server, "MAIL")


def test_c22_starttls_against_implicit_tls_port(certificates, cafile):
    with FaultSMTPServer(tls="implicit", certificate=certificates.server) as server:
        config = _config(server, cafile=cafile, connect_timeout=0.4)
        with pytest.raises(mailkit.SMTPTimeoutError) as caught:
            send(frame(3), config)

    message = str(caught.value)
    assert "sent no greeting within 0.4 s" in message
    assert "implicit TLS from the first byte" in message
    assert "smtps://" in message
    assert not server.messages


def test_c22_port_465_hint_names_implicit_tls():
    from mailkit.transport import _no_greeting_message

    config = mailkit.SMTPConfig("smtp.example.com", port=465, security="starttls")
    assert "Port 465 expects implicit TLS" in _no_greeting_message(config)


def test_c22_no_credentials_before_tls(certificates):
    server = FaultSMTPServer(
        tls="starttls", certificate=certificates.server, require_tls_for_auth=True
    )
    with server:
        with pytest.raises(mailkit.ConfigurationError) as caught:
            send(frame(2), _config(server, security="none"))

    assert "without TLS" in str(caught.value)
    assert not _auth_commands(server)
    assert PASSWORD not in str(caught.value)


def test_c22_auth_offered_only_after_starttls(certificates):
    server = FaultSMTPServer(
        tls="starttls", certificate=certificates.server, require_tls_for_auth=True
    )
    with server:
        config = _config(server, security="none", allow_insecure_auth=True)
        with pytest.raises(mailkit.ConfigurationError) as caught:
            send(frame(2), config)

    assert "does not offer AUTH" in str(caught.value)
    assert "STARTTLS" in str(caught.value)
    assert not _auth_commands(server)


def test_c22_gmail_535_stops_once_before_any_row(certificates, cafile, caplog):
    rules = [Rule("AUTH", reply=GMAIL_BAD_CREDENTIALS)]
    server = FaultSMTPServer(tls="starttls", certificate=certificates.server, rules=rules)
    with server:
        with pytest.raises(mailkit.AuthenticationError) as caught:
            send(frame(10), _config(server, cafile=cafile), max_workers=5)

    message = str(caught.value)
    assert caught.value.code == 535
    assert "rejected the login for 'sender@example.com'" in message
    assert "app password" in message
    assert "OAuth" in message
    # The other workers connect while the first logs in, but never send AUTH.
    assert len(_auth_commands(server)) == 1
    assert len(server.sessions) <= 5
    assert not commands(server, "MAIL")
    assert PASSWORD not in message
    assert PASSWORD not in caplog.text


def test_c22_wrong_password_one_auth_command(certificates, cafile):
    server = FaultSMTPServer(
        tls="starttls", certificate=certificates.server, credentials={USER: "other"}
    )
    with server:
        with pytest.raises(mailkit.AuthenticationError) as caught:
            send(frame(4), _config(server, cafile=cafile), max_workers=4)

    assert "Check the user name and password" in str(caught.value)
    # smtplib.SMTP.login would try PLAIN and then LOGIN.
    assert [attempt.mechanism for s in server.sessions for attempt in s.auth_attempts] == [
        "PLAIN"
    ]


def test_c22_login_rejected_on_reconnect_stops_run(certificates, cafile):
    rules = [Rule("AUTH", reply="535 5.7.8 Username and Password not accepted", session=2)]
    server = FaultSMTPServer(tls="starttls", certificate=certificates.server, rules=rules)
    with server:
        with pytest.raises(mailkit.BatchStopped) as caught:
            send(frame(6), _config(server, cafile=cafile), mode="fast",
                 max_messages_per_connection=2)

    results = caught.value.results
    assert statuses(results) == {"sent": 2, "failed": 1, "skipped": 3}
    failed = results.loc[2]
    assert failed["smtp_code"] == 535
    assert failed["error"].startswith("Not sent, because the login on a new connection")
    assert len(server.sessions) == 2
    second_session_verbs = [verb for verb, _ in server.sessions[1].commands]
    assert second_session_verbs.count("AUTH") == 1
    assert "MAIL" not in second_session_verbs
    assert "rejected the login on a new connection" in str(caught.value)


# -- C36: Microsoft 365 basic auth off, XOAUTH2 tokens ----------------------------------


def test_c36_basic_auth_disabled_explains_xoauth2(certificates, cafile):
    server = FaultSMTPServer(
        tls="starttls",
        certificate=certificates.server,
        basic_auth_disabled=True,
        extensions=Extensions(auth_mechanisms=("LOGIN", "XOAUTH2")),
    )
    with server:
        with pytest.raises(mailkit.AuthenticationError) as caught:
            send(frame(10), _config(server, cafile=cafile), max_workers=3)

    message = str(caught.value)
    assert "5.7.139" in message
    assert "SMTP AUTH" in message
    assert "XOAUTH2" in message
    assert "token_provider=" in message
    assert len(_auth_commands(server)) == 1
    assert server.sessions[0].auth_attempts[0].mechanism == "LOGIN"
    assert not commands(server, "MAIL")


class _TokenSource:
    """Mints tokens that carry their mint time; one call can hand out a stale one."""

    def __init__(self, stale_calls=(), fail_from=None):
        self.calls = 0
        self.issued: list[str] = []
        self.stale_calls = set(stale_calls)
        self.fail_from = fail_from

    def __call__(self) -> str:
        self.calls += 1
        minted = time.time() - (60 if self.calls in self.stale_calls else 0)
        if self.fail_from is not None and self.calls >= self.fail_from:
            minted -= 60
        token = f"ya29.test-{self.calls}-{minted:.3f}"
        self.issued.append(token)
        return token


def _fresh_token(user: str, token: str) -> bool:
    # Accepts tokens for USER that are less than 2 s old.
    minted = float(token.rsplit("-", 1)[1])
    return user == USER and time.time() - minted < 2.0


def test_c36_xoauth2_refreshes_rejected_token(certificates, cafile, caplog):
    caplog.set_level(logging.DEBUG, logger="mailkit")
    tokens = _TokenSource(stale_calls={2})
    server = FaultSMTPServer(
        tls="starttls",
        certificate=certificates.server,
        extensions=Extensions(auth_mechanisms=("LOGIN", "XOAUTH2")),
        xoauth2_validator=_fresh_token,
    )
    with server:
        config = _config(server, cafile=cafile, password=None, token_provider=tokens)
        results = send(frame(10), config, mode="fast", max_messages_per_connection=3)

    assert statuses(results) == {"sent": 10}
    assert accepted_recipients(server) == {f"row{i}@example.com": 1 for i in range(10)}
    sessions = server.sessions
    assert len(sessions) == 4
    assert tokens.calls == len(sessions) + 1
    assert [a.success for a in sessions[1].auth_attempts] == [False, True]
    for session in sessions:
        assert session.auth_mechanism == "XOAUTH2"
        assert session.login == USER
        assert session.xoauth2_string == (
            f"user={USER}\x01auth=Bearer {_token_used(session, tokens)}\x01\x01"
        )
    for token in tokens.issued:
        assert token not in caplog.text
        assert token not in results.to_csv()
        assert token not in repr(results.attrs)
        assert token not in repr(config)


def _token_used(session, tokens):
    for token in tokens.issued:
        if session.xoauth2_string and token in session.xoauth2_string:
            return token
    raise AssertionError("no issued token in the session's XOAUTH2 response")


def test_c36_second_token_rejection_fails_row(certificates, cafile):
    tokens = _TokenSource(fail_from=2)
    server = FaultSMTPServer(
        tls="starttls",
        certificate=certificates.server,
        extensions=Extensions(auth_mechanisms=("XOAUTH2",)),
        xoauth2_validator=_fresh_token,
    )
    with server:
        config = _config(server, cafile=cafile, password=None, token_provider=tokens)
        with pytest.raises(mailkit.BatchStopped) as caught:
            send(frame(10), config, mode="fast", max_messages_per_connection=3)

    results = caught.value.results
    assert statuses(results) == {"sent": 3, "failed": 1, "skipped": 6}
    assert results.loc[3, "status"] == "failed"
    assert "new token" in results.loc[3, "error"]
    assert [a.success for a in server.sessions[1].auth_attempts] == [False, False]
    assert tokens.calls == 3
    assert len(server.sessions) == 2


def test_c36_token_provider_needs_xoauth2_on_server(certificates, cafile):
    server = FaultSMTPServer(tls="starttls", certificate=certificates.server)
    with server:
        config = _config(server, cafile=cafile, password=None, token_provider=lambda: "t")
        with pytest.raises(mailkit.ConfigurationError, match="does not offer AUTH XOAUTH2"):
            send(frame(2), config)
    assert not _auth_commands(server)


def test_c36_token_provider_error_is_configuration_error(certificates, cafile):
    def broken() -> str:
        raise RuntimeError("refresh token expired: secret-refresh-token")

    server = FaultSMTPServer(
        tls="starttls",
        certificate=certificates.server,
        extensions=Extensions(auth_mechanisms=("XOAUTH2",)),
    )
    with server:
        config = _config(server, cafile=cafile, password=None, token_provider=broken)
        with pytest.raises(mailkit.ConfigurationError) as caught:
            send(frame(2), config)

    assert "token_provider raised RuntimeError" in str(caught.value)
    assert "secret-refresh-token" not in str(caught.value)


def test_xoauth2_response_format():
    from mailkit.auth import xoauth2_response

    response = xoauth2_response(USER, "abc")
    assert response == "user=sender@example.com\x01auth=Bearer abc\x01\x01"
    assert base64.b64encode(response.encode()).startswith(b"dXNlcj1")


# -- C39: certificate verification ----------------------------------------------------


def test_c39_self_signed_rejected_before_auth(certificates, cafile):
    server = FaultSMTPServer(tls="starttls", certificate=certificates.self_signed)
    with server:
        with pytest.raises(mailkit.ConfigurationError) as caught:
            send(frame(3), _config(server, cafile=cafile))

    message = str(caught.value)
    assert "could not be verified" in message
    assert "cafile=" in message
    assert not _auth_commands(server)
    assert not commands(server, "MAIL")


def test_c39_self_signed_rejected_by_default_trust(certificates):
    server = FaultSMTPServer(tls="starttls", certificate=certificates.self_signed)
    with server:
        with pytest.raises(mailkit.ConfigurationError, match="could not be verified"):
            send(frame(1), _config(server))
    assert not _auth_commands(server)


def test_c39_wrong_host_name_rejected(certificates, cafile):
    server = FaultSMTPServer(tls="starttls", certificate=certificates.wrong_host)
    with server:
        with pytest.raises(mailkit.ConfigurationError) as caught:
            send(frame(3), _config(server, cafile=cafile))

    assert "could not be verified" in str(caught.value)
    assert "mismatch" in str(caught.value) or "match" in str(caught.value)
    assert not _auth_commands(server)


@pytest.mark.parametrize(("tls", "security"), [("starttls", "starttls"), ("implicit", "tls")])
def test_c39_test_ca_with_cafile_sends_every_row(certificates, cafile, tls, security):
    server = FaultSMTPServer(tls=tls, certificate=certificates.server)
    with server:
        results = send(frame(6), _config(server, security=security, cafile=cafile), max_workers=2)

    assert statuses(results) == {"sent": 6}
    assert results.attrs["tls_verify"] is True
    assert all(session.tls_active for session in server.sessions)
    assert all(session.login == USER for session in server.sessions)


def test_c39_tls_verify_false_warns_and_is_recorded(certificates):
    server = FaultSMTPServer(tls="starttls", certificate=certificates.self_signed)
    with server:
        config = _config(server, tls_verify=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = send(frame(4), config, max_workers=2)

    expected = (
        "TLS certificate verification is off for 127.0.0.1: anyone on the path can "
        "read the messages and the password."
    )
    # Other threads of the test run may add unrelated warnings to the record.
    messages = [str(w.message) for w in caught if "verification" in str(w.message)]
    assert messages == [expected]
    assert results.attrs["tls_verify"] is False
    assert statuses(results) == {"sent": 4}
    assert len(server.sessions) == 2


def test_c39_verification_is_default():
    assert mailkit.SMTPConfig("smtp.example.com").tls_verify is True


def test_tls_context_shared_until_ca_changes(certificates, tmp_path):
    path = tmp_path / "ca.pem"
    certificates.authority.write_certificate(path)
    config = mailkit.SMTPConfig("smtp.example.com", cafile=str(path))
    first = make_ssl_context(config)
    assert make_ssl_context(config) is first
    assert first.verify_mode == ssl.CERT_REQUIRED
    assert first.check_hostname
    # Another CA written to the same path, with a later modification time.
    make_test_certificates().authority.write_certificate(path)
    later = time.time() + 5
    os.utime(path, (later, later))
    replaced = make_ssl_context(config)
    assert replaced is not first
    unverified = mailkit.SMTPConfig("smtp.example.com", cafile=str(path), tls_verify=False)
    for _ in range(2):
        with pytest.warns(UserWarning, match="verification is off"):
            context = make_ssl_context(unverified)
        assert context.verify_mode == ssl.CERT_NONE
        assert not context.check_hostname
    assert make_ssl_context(config).verify_mode == ssl.CERT_REQUIRED


def test_ca_file_replaced_with_same_mtime_is_reloaded(certificates, tmp_path):
    """A CA file replaced by one with the same modification time, as `cp -p`,
    `rsync -t` and `tar -x` write it, gives a new context."""
    path = tmp_path / "ca.pem"
    make_test_certificates().authority.write_certificate(path)
    original = os.stat(path)
    with FaultSMTPServer(tls="starttls", certificate=certificates.server) as server:
        config = _config(server, cafile=str(path))
        with pytest.raises(mailkit.ConfigurationError, match="could not be verified"):
            send(frame(2), config)
        certificates.authority.write_certificate(path)
        os.utime(path, ns=(original.st_atime_ns, original.st_mtime_ns))
        results = send(frame(2, start=10), config)

    assert statuses(results) == {"sent": 2}
    assert sorted(accepted_recipients(server)) == ["row10@example.com", "row11@example.com"]


def test_unreadable_ca_file_is_named_before_any_connection(tmp_path):
    missing = str(tmp_path / "missing.pem")
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate\n")
    for cafile in (missing, str(not_pem)):
        with FaultSMTPServer(tls="starttls") as server:
            with pytest.raises(mailkit.ConfigurationError) as caught:
                send(frame(2), _config(server, cafile=cafile))
            assert not server.sessions
        message = str(caught.value)
        assert f"cafile={cafile!r}" in message
        assert "PEM file" in message
    assert "No such file" in str(
        pytest.raises(
            mailkit.ConfigurationError,
            make_ssl_context,
            mailkit.SMTPConfig("smtp.example.com", cafile=missing),
        ).value
    )


@pytest.mark.parametrize(
    ("tls", "security"), [("none", "none"), ("starttls", "starttls"), ("implicit", "tls")]
)
def test_connections_turn_nagle_off(certificates, cafile, tls, security):
    server = FaultSMTPServer(tls=tls, certificate=certificates.server)
    with server:
        config = _config(
            server, security=security, cafile=cafile, username=None, password=None
        )
        connection = Connection(config)
        connection.open()
        try:
            sock = connection._smtp.sock
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            connection.close()
